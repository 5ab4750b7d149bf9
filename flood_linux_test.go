package smc

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc/internal/testenv"
)

// Addresses of the flood test's two network namespaces, joined by veth: the server's
// and the flooder's, and the subnet the flood's SYNs claim to come from (routed to
// the flooder, which drops the SYN-ACKs: nothing answers them with a reset, so every
// request lives as long as the kernel keeps it).
var (
	floodServerIP = netip.MustParseAddr("10.98.0.1")
	floodPeerIP   = netip.MustParseAddr("10.98.0.2")
	floodSpoofNet = "10.99.0.0/16"
)

const (
	floodCount    = 70000 // more than the 65,536 records the earlier design could hold
	floodDeadline = 10 * time.Second
)

// TestSYNFlood: SYNs announcing SMC from another host, whose handshakes never
// complete, must not deny SMC to other clients for longer than the kernel itself
// keeps such requests. The signalling records nothing per request, so the bound is
// the kernel's: while the flooded SYN queue answers with SYN cookies, new
// connections are plain TCP on both ends (a cookie SYN-ACK never carries the
// option), and once the flooded requests expire (tcp_synack_retries, set to 1 in
// the server's namespace: about 3 s), a client gets SMC-D again.
func TestSYNFlood(t *testing.T) {
	requireProcs(t)
	ip := testenv.RequireTool(t, "ip")
	srv, atk := testenv.NewNetns(t), testenv.NewNetns(t)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	veth := fmt.Sprintf("smcf%d", os.Getpid()%100000)
	run("link", "add", veth+"s", "netns", srv, "type", "veth", "peer", "name", veth+"a", "netns", atk)
	run("-n", srv, "addr", "add", floodServerIP.String()+"/24", "dev", veth+"s")
	run("-n", atk, "addr", "add", floodPeerIP.String()+"/24", "dev", veth+"a")
	run("-n", srv, "link", "set", veth+"s", "up")
	run("-n", atk, "link", "set", veth+"a", "up")
	run("-n", srv, "route", "add", floodSpoofNet, "via", floodPeerIP.String())
	exec.Command(ip, "netns", "exec", srv, "sysctl", "-qw", "net.ipv4.tcp_synack_retries=1").Run()

	cg := testenv.NewCgroup(t, "")
	inSrv := procOptions{wrap: []string{ip, "netns", "exec", srv}}
	server := startProc(t, "server", cg, inSrv)
	client := startProc(t, "client", cg, inSrv)
	addr := server.listen("0.0.0.0:0")
	port := netip.MustParseAddrPort(addr).Port()
	target := netip.AddrPortFrom(floodServerIP, port).String()
	echoSMCD(t, client, server, target)

	start := time.Now()
	sent := floodSYNs(t, atk, netip.AddrPortFrom(floodServerIP, port))
	flooded := time.Since(start)
	t.Logf("sent %d SYNs announcing SMC in %v", sent, flooded.Round(time.Millisecond))

	// Both ends agree on every connection, during and after the flood, and SMC-D
	// comes back within the bound.
	deadline := time.Now().Add(floodDeadline)
	for i := 0; ; i++ {
		got := client.do("dial "+target+" 20000", "dial ")
		acc := server.expect("accepted ")
		mode := strings.Fields(got)
		if !strings.HasSuffix(got, " ok") || len(mode) < 2 || "accepted "+mode[1] != strings.Join(strings.Fields(acc)[:2], " ") {
			t.Fatalf("after the flood, dial %d: client %q, server %q: the ends disagree or the echo broke", i, got, acc)
		}
		if mode[1] == "SMCD" {
			t.Logf("SMC-D again %v after the flood ended (dial %d)", time.Since(start.Add(flooded)).Round(time.Millisecond), i)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SMC-D within %v of the flood's end: last dial %q", floodDeadline, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// floodSYNs sends floodCount raw SYNs carrying the SMC option to dst from the
// network namespace ns, from addresses in floodSpoofNet, and returns how many it
// sent.
func floodSYNs(t *testing.T, ns string, dst netip.AddrPort) int {
	t.Helper()
	sent := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread enters ns and is discarded after
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Addr: dst.Addr().As4()}
		n := 0
		for i := range floodCount {
			src := netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)})
			pkt := synPacket(src, uint16(1024+i%60000), dst, uint32(i)*2654435761)
			if unix.Sendto(fd, pkt, 0, to) == nil {
				n++
			}
		}
		sent <- n
	}()
	select {
	case n := <-sent:
		return n
	case err := <-errc:
		t.Fatalf("flooding from %s: %v", ns, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the flood did not finish within 30 s")
	}
	return 0
}

// synPacket builds an IPv4 SYN from src:sport to dst with MSS and the SMC option
// (the kernel fills in the IP checksum and length of a raw IPPROTO_RAW packet).
func synPacket(src netip.Addr, sport uint16, dst netip.AddrPort, seq uint32) []byte {
	opts := []byte{2, 4, 0x05, 0xb4, 254, 6, 0xE2, 0xD4, 0xC3, 0xD9, 1, 1}
	tcpLen := 20 + len(opts)
	p := make([]byte, 20+tcpLen)
	p[0], p[8], p[9] = 0x45, 64, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s4, d4 := src.As4(), dst.Addr().As4()
	copy(p[12:], s4[:])
	copy(p[16:], d4[:])
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	copy(tcp[20:], opts)
	// The TCP checksum covers a pseudo-header: addresses, protocol, length.
	sum := uint32(0)
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(s4[:])
	add(d4[:])
	sum += unix.IPPROTO_TCP + uint32(tcpLen)
	add(tcp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
	return p
}
