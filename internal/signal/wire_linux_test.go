package signal

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// TestWire captures loopback traffic and checks the option against Linux's rules (in
// the SYN of a marked client; in the SYN-ACK of a marked listener only when the SYN
// carried it; in no other packet), and that both sides' Results match the capture.
func TestWire(t *testing.T) {
	s := selfAttach(t)
	cases := []struct {
		name           string
		lnet, laddr    string // listener
		dnet, dhost    string // client
		client, server bool   // marked
		mptcp          bool   // listener left on Go's MPTCP default
	}{
		{"smc-smc/ipv4", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1", true, true, false},
		{"net-net/ipv4", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1", false, false, false},
		{"smc-net/ipv4", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1", true, false, false},
		{"net-smc/ipv4", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1", false, true, false},
		{"smc-smc/ipv6", "tcp6", "[::1]:0", "tcp6", "::1", true, true, false},
		{"net-net/ipv6", "tcp6", "[::1]:0", "tcp6", "::1", false, false, false},
		{"smc-net/ipv6", "tcp6", "[::1]:0", "tcp6", "::1", true, false, false},
		{"net-smc/ipv6", "tcp6", "[::1]:0", "tcp6", "::1", false, true, false},
		{"smc-smc/dual-stack", "tcp", ":0", "tcp4", "127.0.0.1", true, true, false},
		{"smc-smc/dual-stack-ipv6", "tcp", ":0", "tcp6", "::1", true, true, false},
		{"net-smc/dual-stack", "tcp", ":0", "tcp4", "127.0.0.1", false, true, false},
		{"smc-smc/mptcp-listener", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1", true, true, true},
	}
	lns := make([]*net.TCPListener, len(cases))
	servers := map[uint16]bool{}
	var ports []int
	for i, tc := range cases {
		lns[i] = listen(t, s, tc.lnet, tc.laddr, tc.server, tc.mptcp)
		port := lns[i].Addr().(*net.TCPAddr).Port
		servers[uint16(port)] = true
		ports = append(ports, port)
	}
	capture := testenv.StartCapture(t, "lo", portFilter(ports...))
	type sides struct{ client, server Result }
	got := make([]sides, len(cases))
	keys := make([]netip.AddrPort, len(cases))
	for i, tc := range cases {
		port := lns[i].Addr().(*net.TCPAddr).Port
		c := dial(t, s, tc.dnet, net.JoinHostPort(tc.dhost, strconv.Itoa(port)), tc.client, nil)
		sc, err := lns[i].Accept()
		if err != nil {
			t.Fatal(err)
		}
		got[i] = sides{resultOf(t, s, c), acceptedOf(t, s, sc, tc.server)}
		keys[i] = addrPort(c.LocalAddr())
		exchange(t, c, sc, false)
	}
	// Every marked socket here lives in this namespace: each must have been
	// answered from the results cache (unmarked ones have no slot and ask the
	// kernel), accepted sockets of marked listeners by a slot or by the proof that
	// none is recorded (plain clients, and the MPTCP listener's children, which the
	// program never sees).
	marked := 0
	for _, tc := range cases {
		if tc.client {
			marked++
		}
		if tc.server {
			marked++
		}
	}
	if hits := s.cacheHits.Load(); hits != uint64(marked) {
		t.Errorf("ResultAddr answered %d times from the cache, want %d", hits, marked)
	}
	byClient := flows(capture.Stop(), servers)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := byClient[keys[i]]
			if f == nil || len(f.syn) == 0 || len(f.synack) == 0 {
				t.Fatalf("handshake of %v not captured", keys[i])
			}
			all := append(append(append([]testenv.Packet{}, f.syn...), f.synack...), f.others...)
			// Linux's rules, on the wire.
			if allSMC(f.syn) != tc.client || anySMC(f.syn) != tc.client {
				t.Errorf("SYN carries the option: %v, want %v%s", anySMC(f.syn), tc.client, dump(all))
			}
			wantSYNACK := tc.client && tc.server && !tc.mptcp
			if allSMC(f.synack) != wantSYNACK || anySMC(f.synack) != wantSYNACK {
				t.Errorf("SYN-ACK carries the option: %v, want %v%s", anySMC(f.synack), wantSYNACK, dump(all))
			}
			if anySMC(f.others) {
				t.Errorf("option outside SYN and SYN-ACK:%s", dump(f.others))
			}
			// Each side's Result matches the capture.
			var wantClient, wantServer Result
			if tc.client {
				wantClient = Result{Marked: true, Sent: anySMC(f.syn), Received: anySMC(f.synack)}
			}
			if tc.server {
				wantServer = Result{Marked: true, Sent: anySMC(f.synack), Received: anySMC(f.syn)}
			}
			if tc.mptcp {
				// The mark sits on the MPTCP socket, whose TCP subflows the program
				// never sees: it must show up as "not sent, not received", however
				// the accepted socket reports Marked.
				wantServer = Result{Marked: got[i].server.Marked}
			}
			if got[i].client != wantClient {
				t.Errorf("client Result %+v, capture says %+v", got[i].client, wantClient)
			}
			if got[i].server != wantServer {
				t.Errorf("server Result %+v, capture says %+v", got[i].server, wantServer)
			}
			if got[i].client.Negotiated() != got[i].server.Negotiated() {
				t.Errorf("client and server disagree: %+v / %+v", got[i].client, got[i].server)
			}
		})
	}
}
