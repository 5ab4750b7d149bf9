package signal

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
)

// selfAttach moves the test into a fresh child cgroup and opens a self-attached
// Signaller there; cleanups close it (detaching) and then remove the cgroup.
func selfAttach(t testing.TB) *Signaller {
	t.Helper()
	testenv.RequireBPF(t)
	testenv.ChildCgroup(t)
	s, err := Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if !strings.HasPrefix(s.Mode(), "self-attached") {
		t.Fatalf("Open mode %q, want self-attached", s.Mode())
	}
	return s
}

// markControl returns a Control hook that marks the socket when s is not nil.
func markControl(s *Signaller) func(string, string, syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		if s == nil {
			return nil
		}
		var err error
		if cerr := c.Control(func(fd uintptr) { err = s.Mark(int(fd)) }); cerr != nil {
			return cerr
		}
		return err
	}
}

// listen listens on addr; marked listeners get s's mark. MPTCP is off unless
// mptcp is set (Go listeners default to MPTCP when the kernel allows it).
func listen(t testing.TB, s *Signaller, network, addr string, marked, mptcp bool) *net.TCPListener {
	t.Helper()
	lc := net.ListenConfig{}
	if marked {
		lc.Control = markControl(s)
	}
	lc.SetMultipathTCP(mptcp)
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// dial connects to addr; a marked client gets s's mark.
func dial(t testing.TB, s *Signaller, network, addr string, marked bool, local *net.TCPAddr) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = local
	}
	mark := markControl(nil)
	if marked {
		mark = markControl(s)
	}
	d.Control = func(network, address string, c syscall.RawConn) error {
		if local != nil {
			c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
		}
		return mark(network, address, c)
	}
	c, err := d.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	return c.(*net.TCPConn)
}

// resultOf reads c's Result: Result (the kernel) and ResultAddr (the cache first)
// must agree.
func resultOf(t testing.TB, s *Signaller, c net.Conn) Result {
	t.Helper()
	return readBoth(t, s, c, "ResultAddr", s.ResultAddr, func(r Result) Result { return r })
}

// acceptedOf reads the Result of sc, accepted from a listener that is marked when
// marked is set: the kernel's record (a child without one is a plain client,
// reported as plainChild) must match [Signaller.AcceptedResult].
func acceptedOf(t testing.TB, s *Signaller, sc net.Conn, marked bool) Result {
	t.Helper()
	if !marked {
		return resultOf(t, s, sc)
	}
	return readBoth(t, s, sc, "AcceptedResult", s.AcceptedResult, func(r Result) Result {
		if !r.Marked {
			return plainChild
		}
		return r
	})
}

// readBoth reads c's Result from the kernel (Result, then normalised by kernel)
// and with the address-based reader name, and fails unless they agree.
func readBoth(t testing.TB, s *Signaller, c net.Conn, name string,
	read func(fd int, local, remote netip.AddrPort) (Result, error), kernel func(Result) Result) Result {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var r, ra Result
	var errA error
	local, remote := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
	if cerr := rc.Control(func(fd uintptr) {
		r, err = s.Result(int(fd))
		ra, errA = read(int(fd), local, remote)
	}); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || errA != nil {
		t.Fatalf("Result: %v; %s: %v", err, name, errA)
	}
	if r = kernel(r); ra != r {
		t.Fatalf("%s %+v differs from Result %+v (%v -> %v)", name, ra, r, local, remote)
	}
	return r
}

// exchange sends one byte each way and closes both ends, the server first when
// serverFirst is set (leaving the TIME_WAIT state on the server side).
func exchange(t testing.TB, c, sc net.Conn, serverFirst bool) {
	t.Helper()
	buf := make([]byte, 1)
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Write([]byte{'y'}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if serverFirst {
		sc.Close()
		c.Read(buf) // EOF
		c.Close()
	} else {
		c.Close()
		sc.Read(buf)
		sc.Close()
	}
}

// flow is one TCP connection's captured handshake.
type flow struct {
	syn, synack []testenv.Packet // in capture order
	others      []testenv.Packet
}

// flows groups captured packets by connection, keyed by the client's address; servers
// holds the listeners' ports.
func flows(pkts []testenv.Packet, servers map[uint16]bool) map[netip.AddrPort]*flow {
	m := map[netip.AddrPort]*flow{}
	get := func(k netip.AddrPort) *flow {
		if m[k] == nil {
			m[k] = &flow{}
		}
		return m[k]
	}
	for _, p := range pkts {
		switch {
		case servers[p.Dst.Port()] && p.Is(testenv.FlagSYN):
			f := get(norm(p.Src))
			f.syn = append(f.syn, p)
		case servers[p.Src.Port()] && p.Is(testenv.FlagSYN|testenv.FlagACK):
			f := get(norm(p.Dst))
			f.synack = append(f.synack, p)
		case servers[p.Dst.Port()]:
			get(norm(p.Src)).others = append(get(norm(p.Src)).others, p)
		case servers[p.Src.Port()]:
			get(norm(p.Dst)).others = append(get(norm(p.Dst)).others, p)
		}
	}
	return m
}

// norm unmaps IPv4-mapped IPv6 addresses.
func norm(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func addrPort(a net.Addr) netip.AddrPort { return norm(a.(*net.TCPAddr).AddrPort()) }

// allSMC reports whether every packet carries the option; anySMC whether one does.
func allSMC(ps []testenv.Packet) bool {
	for _, p := range ps {
		if !p.HasSMC() {
			return false
		}
	}
	return len(ps) > 0
}

func anySMC(ps []testenv.Packet) bool {
	for _, p := range ps {
		if p.HasSMC() {
			return true
		}
	}
	return false
}

func dump(ps []testenv.Packet) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n\t%v", p)
	}
	return b.String()
}

// portFilter is a pcap filter for TCP traffic to or from any of the ports.
func portFilter(ports ...int) string {
	var parts []string
	for _, p := range ports {
		parts = append(parts, fmt.Sprintf("tcp port %d", p))
	}
	return strings.Join(parts, " or ")
}
