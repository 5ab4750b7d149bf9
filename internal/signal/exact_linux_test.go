package signal

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc/internal/testenv"
)

// enterNetns moves the calling test goroutine's thread into a new network namespace
// with loopback up. The thread stays locked, so the runtime discards it when the
// test ends; sockets the test creates, and processes it starts, live in the
// namespace.
func enterNetns(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	runtime.LockOSThread() // never unlocked: see above
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		testenv.Require(t, "a new network namespace", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("bringing lo up: %v", err)
	}
}

// TestSYNCookies forces SYN cookies (net.ipv4.tcp_syncookies=2, in a private network
// namespace): a cookie SYN-ACK must not carry the option, the client must see "not
// received", and the server, whose child comes from no request and so has no
// record, must report it as a plain client: Marked, neither sent nor received.
func TestSYNCookies(t *testing.T) {
	s := selfAttach(t)
	enterNetns(t)
	// Before cookies are forced: a marked pair negotiates inside the namespace too
	// (SYN-ACK records are keyed by the namespace's cookie).
	{
		ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
		c := dial(t, s, "tcp4", ln.Addr().String(), true, nil)
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if cr, sr := resultOf(t, s, c), acceptedOf(t, s, sc, true); !cr.Negotiated() || !sr.Negotiated() {
			t.Errorf("in a new namespace without cookies: client %+v server %+v, want both negotiated", cr, sr)
		}
		exchange(t, c, sc, false)
		ln.Close()
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_syncookies", []byte("2"), 0); err != nil {
		t.Fatalf("forcing SYN cookies: %v", err)
	}
	cases := []struct {
		name         string
		network, lis string
		host         string
		client       bool
	}{
		{"smc-smc/ipv4", "tcp4", "127.0.0.1:0", "127.0.0.1", true},
		{"net-smc/ipv4", "tcp4", "127.0.0.1:0", "127.0.0.1", false},
		{"smc-smc/ipv6", "tcp6", "[::1]:0", "::1", true},
	}
	before, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	servers := map[uint16]bool{}
	var ports []int
	lns := make([]*net.TCPListener, len(cases))
	for i, tc := range cases {
		lns[i] = listen(t, s, tc.network, tc.lis, true, false)
		ports = append(ports, lns[i].Addr().(*net.TCPAddr).Port)
		servers[uint16(ports[i])] = true
	}
	capture := testenv.StartCapture(t, "lo", portFilter(ports...))
	type sides struct{ client, server Result }
	got := make([]sides, len(cases))
	keys := make([]netip.AddrPort, len(cases))
	for i, tc := range cases {
		c := dial(t, s, tc.network, net.JoinHostPort(tc.host, strconv.Itoa(ports[i])), tc.client, nil)
		sc, err := lns[i].Accept()
		if err != nil {
			t.Fatal(err)
		}
		got[i] = sides{resultOf(t, s, c), acceptedOf(t, s, sc, true)}
		keys[i] = addrPort(c.LocalAddr())
		exchange(t, c, sc, false)
	}
	byClient := flows(capture.Stop(), servers)
	for i, tc := range cases {
		if f := byClient[keys[i]]; f == nil || allSMC(f.syn) != tc.client || anySMC(f.syn) != tc.client {
			t.Errorf("%s: SYN does not carry the option as marked (%v): %+v", tc.name, tc.client, f)
		}
	}
	if len(byClient) != len(cases) {
		t.Fatalf("captured %d connections, want %d", len(byClient), len(cases))
	}
	for _, f := range byClient {
		if anySMC(f.synack) || anySMC(f.others) {
			t.Errorf("a SYN-cookie connection carried the option outside the SYN:%s", dump(append(f.synack, f.others...)))
		}
	}
	for i, tc := range cases {
		wantClient := Result{}
		if tc.client {
			wantClient = Result{Marked: true, Sent: true}
		}
		wantServer := plainChild
		if got[i].client != wantClient || got[i].server != wantServer {
			t.Errorf("%s: client %+v server %+v, want %+v and %+v", tc.name, got[i].client, got[i].server, wantClient, wantServer)
		}
	}
	after, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if d := after["syncookie_not_echoed"] - before["syncookie_not_echoed"]; d != 2 {
		t.Errorf("syncookie_not_echoed grew by %d, want 2", d)
	}
	if d := after["peer_unknown"] - before["peer_unknown"]; d != 0 {
		t.Errorf("peer_unknown grew by %d, want 0 (it counts Fast Open children only)", d)
	}
}

// TestTupleReuse reuses one 4-tuple back to back (the server closes first, so the new
// SYN meets its TIME_WAIT socket), alternating marked and unmarked clients against a
// marked listener: no result may leak from one connection into the next.
func TestTupleReuse(t *testing.T) {
	s := selfAttach(t)
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	port := ln.Addr().(*net.TCPAddr).Port
	// Find a free local port to reuse.
	probe, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := probe.Addr().(*net.TCPAddr)
	probe.Close()

	capture := testenv.StartCapture(t, "lo", portFilter(port))
	const rounds = 8
	for i := range rounds {
		marked := i%2 == 0
		c := dial(t, s, "tcp4", ln.Addr().String(), marked, local)
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		cr, sr := resultOf(t, s, c), acceptedOf(t, s, sc, true)
		wantClient, wantServer := Result{}, Result{Marked: true}
		if marked {
			wantClient = Result{Marked: true, Sent: true, Received: true}
			wantServer = Result{Marked: true, Sent: true, Received: true}
		}
		if cr != wantClient || sr != wantServer {
			t.Errorf("round %d (marked %v): client %+v server %+v, want %+v and %+v", i, marked, cr, sr, wantClient, wantServer)
		}
		exchange(t, c, sc, true)
	}
	f := flows(capture.Stop(), map[uint16]bool{uint16(port): true})[addrPortOf(local)]
	if f == nil || len(f.syn) != rounds || len(f.synack) != rounds {
		t.Fatalf("captured handshakes: %+v, want %d", f, rounds)
	}
	for i := range rounds {
		marked := i%2 == 0
		if f.syn[i].HasSMC() != marked || f.synack[i].HasSMC() != marked {
			t.Errorf("round %d (marked %v): SYN %v SYN-ACK %v", i, marked, f.syn[i], f.synack[i])
		}
	}
	if anySMC(f.others) {
		t.Errorf("option outside SYN and SYN-ACK:%s", dump(f.others))
	}
}

func addrPortOf(a *net.TCPAddr) netip.AddrPort { return norm(a.AddrPort()) }

// TestAcceptQueueOverflow lets handshakes of marked and unmarked clients complete
// against a marked listener whose accept queue is full, so that final ACKs are
// dropped and SYN-ACKs and SYNs retransmitted: both ends must still agree, with the
// wire, on every connection.
func TestAcceptQueueOverflow(t *testing.T) {
	s := selfAttach(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Mark(fd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ln := l.(*net.TCPListener)
	port := ln.Addr().(*net.TCPAddr).Port
	before, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	capture := testenv.StartCapture(t, "lo", portFilter(port))

	const clients = 5
	type client struct {
		c      *net.TCPConn
		marked bool
		r      Result
		err    error
	}
	cs := make([]client, clients)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 20 * time.Second, Control: markControl(nil)}
			cs[i].marked = i%2 == 0
			if cs[i].marked {
				d.Control = markControl(s)
			}
			c, err := d.Dial("tcp4", ln.Addr().String())
			if err != nil {
				cs[i].err = err
				return
			}
			cs[i].c = c.(*net.TCPConn)
			rc, _ := cs[i].c.SyscallConn()
			rc.Control(func(fd uintptr) { cs[i].r, cs[i].err = s.Result(int(fd)) })
			// A byte makes a client whose handshake ended in a SYN cookie that the
			// full queue dropped retry it until it is accepted.
			if _, err := c.Write([]byte{'x'}); err != nil {
				cs[i].err = err
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // let the queue overflow before accepting
	servers := map[string]Result{}
	for range clients {
		ln.SetDeadline(time.Now().Add(20 * time.Second))
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers[addrPort(sc.RemoteAddr()).String()] = acceptedOf(t, s, sc, true)
		defer sc.Close()
		sc.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := sc.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	byClient := flows(capture.Stop(), map[uint16]bool{uint16(port): true})
	retransmits, cookies := 0, 0
	for _, c := range cs {
		if c.err != nil {
			t.Fatal(c.err)
		}
		defer c.c.Close()
		key := addrPort(c.c.LocalAddr())
		sr, fl := servers[key.String()], byClient[key]
		if fl == nil {
			t.Fatalf("no capture for %v", key)
		}
		retransmits += len(fl.syn) - 1 + len(fl.synack) - 1
		if len(fl.synack) == 0 {
			t.Fatalf("%v: no SYN-ACK captured", key)
		}
		// The client acts on the first SYN-ACK it receives (loopback loses none).
		wantClient := Result{}
		if c.marked {
			wantClient = Result{Marked: true, Sent: anySMC(fl.syn), Received: fl.synack[0].HasSMC()}
		}
		wantServer := Result{Marked: true, Sent: fl.synack[0].HasSMC(), Received: anySMC(fl.syn)}
		if wantServer.Received && !anySMC(fl.synack) && sr == plainChild {
			// Completed by a SYN cookie: the child comes from no request, so it has
			// no record and reports as a plain client. A request whose SYN-ACKs
			// were all sent without the option but which did make a record would
			// report Received instead.
			cookies++
			wantServer = plainChild
		} else if allSMC(fl.synack) != anySMC(fl.synack) {
			t.Errorf("%v: SYN-ACK retransmissions disagree:%s", key, dump(fl.synack))
		}
		if c.r != wantClient || sr != wantServer {
			t.Errorf("%v (marked %v): client %+v server %+v, capture says %+v and %+v%s",
				key, c.marked, c.r, sr, wantClient, wantServer, dump(append(fl.syn, fl.synack...)))
		}
		if c.marked && c.r.Negotiated() != sr.Negotiated() {
			t.Errorf("%v: client %+v and server %+v disagree", key, c.r, sr)
		}
	}
	if retransmits == 0 {
		t.Errorf("no SYN or SYN-ACK was retransmitted: the accept queue did not overflow")
	}
	after, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if sent := after["syncookie_not_echoed"] - before["syncookie_not_echoed"]; uint64(cookies) > sent {
		t.Errorf("%d connections look completed by SYN cookies, but only %d cookie SYN-ACKs answered an SMC SYN", cookies, sent)
	}
	t.Logf("%d SYN/SYN-ACK retransmissions, %d connections completed by SYN cookies", retransmits, cookies)
}

// TestSYNACKRetransmit makes a marked listener retransmit its SYN-ACK to a marked
// client and to a plain one (TCP_DEFER_ACCEPT keeps a request whose final ACK
// carried no data, and retransmits its SYN-ACK): a retransmission has no SYN to
// read, so it must follow the first SYN-ACK's record, found by the request's
// socket cookie, and the child, created only when the data arrives, must find
// that record too.
func TestSYNACKRetransmit(t *testing.T) {
	s := selfAttach(t)
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		if err := markControl(s)(network, address, c); err != nil {
			return err
		}
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1) })
		return err
	}}
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(t.Context(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ln := l.(*net.TCPListener)
	port := ln.Addr().(*net.TCPAddr).Port
	capture := testenv.StartCapture(t, "lo", portFilter(port))
	for _, marked := range []bool{true, false} {
		c := dial(t, s, "tcp4", ln.Addr().String(), marked, nil)
		cr := resultOf(t, s, c)
		// The first SYN-ACK retransmission is due a second after the first.
		time.Sleep(1500 * time.Millisecond)
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		ln.SetDeadline(time.Now().Add(10 * time.Second))
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		sr := acceptedOf(t, s, sc, true)
		want := plainChild
		if marked {
			want = Result{Marked: true, Sent: true, Received: true}
		}
		if sr != want || cr.Negotiated() != marked {
			t.Errorf("marked client %v: client %+v server %+v, want server %+v", marked, cr, sr, want)
		}
		buf := make([]byte, 1)
		if _, err := sc.Read(buf); err != nil {
			t.Fatal(err)
		}
		sc.Close()
		c.Close()
	}
	for key, f := range flows(capture.Stop(), map[uint16]bool{uint16(port): true}) {
		marked := anySMC(f.syn)
		if len(f.synack) < 2 {
			t.Errorf("%v: %d SYN-ACKs captured, want a retransmission", key, len(f.synack))
		}
		if allSMC(f.synack) != marked || anySMC(f.synack) != marked {
			t.Errorf("%v: SYN-ACKs do not all follow the SYN (option %v):%s", key, marked, dump(f.synack))
		}
	}
}
