package smc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// wantPlainReason is the reason a connection to or from a plain-TCP peer must
// report: PEERNOSMC when this process can announce SMC, else
// SIGNALLING_UNAVAILABLE.
func wantPlainReason(t *testing.T) Reason {
	t.Helper()
	if SignallingError() != nil {
		return ReasonSignallingUnavailable
	}
	return ReasonPeerNoSMC
}

// dialers and listeners of both packages, as the tests combine them.
type listenFunc func() (net.Listener, error)
type dialFunc func(addr string) (net.Conn, error)

var (
	listenNet listenFunc = func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	listenSMC listenFunc = func() (net.Listener, error) { return Listen("tcp", "127.0.0.1:0") }
	dialNet   dialFunc   = func(a string) (net.Conn, error) { return net.Dial("tcp", a) }
	dialSMC   dialFunc   = func(a string) (net.Conn, error) { return Dial("tcp", a) }
)

// pair returns a connected (client, server) pair made by the given functions.
func pair(t *testing.T, listen listenFunc, dial dialFunc) (client, server net.Conn) {
	t.Helper()
	return pairAccepting(t, listen, dial, func(c net.Conn) error {
		if sc, ok := c.(*Conn); ok {
			// The server's handshake runs on its first Read or Write; the client's
			// Dial waits for it, so run it here as a server application would.
			return sc.Handshake()
		}
		return nil
	})
}

// pairAccepting is pair with accepted run on the server's connection, while the
// client dials, instead of the handshake; an error from it fails the test.
func pairAccepting(t *testing.T, listen listenFunc, dial dialFunc, accepted func(net.Conn) error) (client, server net.Conn) {
	t.Helper()
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = accepted(c)
		}
		ch <- res{c, err}
	}()
	client, err = dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	return client, r.c
}

// TestFallbackToPlainPeer: smc.Dial to a plain net.Listen server, and net.Dial to an
// smc.Listen server, each with a client-first and a server-first protocol. The
// conn on our side must be exactly *net.TCPConn and report ModeTCP with the reason.
func TestFallbackToPlainPeer(t *testing.T) {
	for _, tc := range []struct {
		name        string
		listen      listenFunc
		dial        dialFunc
		serverFirst bool
		ours        string // which side is this package's: "client" or "server"
	}{
		{"smc-dial/net-listen/client-first", listenNet, dialSMC, false, "client"},
		{"smc-dial/net-listen/server-first", listenNet, dialSMC, true, "client"},
		{"net-dial/smc-listen/client-first", listenSMC, dialNet, false, "server"},
		{"net-dial/smc-listen/server-first", listenSMC, dialNet, true, "server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t, tc.listen, tc.dial)
			defer client.Close()
			defer server.Close()

			ours := client
			if tc.ours == "server" {
				ours = server
			}
			if _, ok := ours.(*net.TCPConn); !ok {
				t.Fatalf("%s conn is %T, want exactly *net.TCPConn", tc.ours, ours)
			}
			st := State(ours)
			if st.Mode != ModeTCP || st.Fallback != wantPlainReason(t) || !st.HandshakeComplete {
				t.Fatalf("State = %+v, want ModeTCP, reason %v, complete", st, wantPlainReason(t))
			}

			first, second := client, server
			if tc.serverFirst {
				first, second = server, client
			}
			exchange(t, first, second, "greeting from the side that speaks first\n")
			exchange(t, second, first, "answer\n")
		})
	}
}

// exchange writes msg on w and reads it back whole on r.
func exchange(t *testing.T, w, r net.Conn, msg string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(w, msg)
		errc <- err
	}()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got != msg {
		t.Fatalf("read %q, want %q", got, msg)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestNettestConn runs golang.org/x/net/nettest.TestConn on pairs made by smc.Dial
// and smc.Listen in every combination with the standard library.
func TestNettestConn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen listenFunc
		dial   dialFunc
	}{
		{"smc-dial/smc-listen", listenSMC, dialSMC},
		{"smc-dial/net-listen", listenNet, dialSMC},
		{"net-dial/smc-listen", listenSMC, dialNet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				c1, c2 = pair(t, tc.listen, tc.dial)
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}

// tcpBehaviour returns the pairs whose TCP behaviour must match the standard
// library's: our package on either side of a plain peer, and on both sides.
func tcpBehaviourPairs() []struct {
	name   string
	listen listenFunc
	dial   dialFunc
} {
	return []struct {
		name   string
		listen listenFunc
		dial   dialFunc
	}{
		{"smc-dial/net-listen", listenNet, dialSMC},
		{"net-dial/smc-listen", listenSMC, dialNet},
		{"smc-dial/smc-listen", listenSMC, dialSMC},
	}
}

type lingerer interface{ SetLinger(int) error }

// TestLingerZeroResets: SetLinger(0) then Close makes the peer see a reset, on
// whichever side this package created the connection.
func TestLingerZeroResets(t *testing.T) {
	for _, tc := range tcpBehaviourPairs() {
		for _, closer := range []string{"client", "server"} {
			t.Run(tc.name+"/"+closer+"-closes", func(t *testing.T) {
				client, server := pair(t, tc.listen, tc.dial)
				defer client.Close()
				defer server.Close()
				c, peer := client, server
				if closer == "server" {
					c, peer = server, client
				}
				exchange(t, c, peer, "x\n") // the connection carried data
				if err := c.(lingerer).SetLinger(0); err != nil {
					t.Fatal(err)
				}
				c.Close()
				peer.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := peer.Read(make([]byte, 1))
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("peer read after linger-0 close: %v, want ECONNRESET", err)
				}
			})
		}
	}
}

type closeWriter interface{ CloseWrite() error }

// TestCloseWriteHalfClose: after CloseWrite the peer reads the data then io.EOF and
// can still answer.
func TestCloseWriteHalfClose(t *testing.T) {
	for _, tc := range tcpBehaviourPairs() {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t, tc.listen, tc.dial)
			defer client.Close()
			defer server.Close()
			if _, err := io.WriteString(client, "request"); err != nil {
				t.Fatal(err)
			}
			if err := client.(closeWriter).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			server.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(server)
			if err != nil || string(got) != "request" {
				t.Fatalf("server read %q, %v; want %q, EOF", got, err, "request")
			}
			if _, err := io.WriteString(server, "response"); err != nil {
				t.Fatal(err)
			}
			server.Close()
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err = io.ReadAll(client)
			if err != nil || string(got) != "response" {
				t.Fatalf("client read %q, %v; want %q", got, err, "response")
			}
		})
	}
}

// TestDeadlines: a read deadline in the past or expiring fails with a timeout that
// satisfies os.ErrDeadlineExceeded; clearing it lets the read succeed.
func TestDeadlines(t *testing.T) {
	for _, tc := range tcpBehaviourPairs() {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t, tc.listen, tc.dial)
			defer client.Close()
			defer server.Close()
			for _, c := range []net.Conn{client, server} {
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				_, err := c.Read(make([]byte, 1))
				var ne net.Error
				if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("read past deadline: %v, want a timeout", err)
				}
				c.SetReadDeadline(time.Time{})
			}
			exchange(t, client, server, "after the deadline\n")
		})
	}
}

// TestSSShowsProcess: `ss -tnp` names this process as the owner of a fallback
// connection made by this package, as it would for any TCP socket.
func TestSSShowsProcess(t *testing.T) {
	ss, err := exec.LookPath("ss")
	if err != nil {
		t.Fatalf("ss (iproute2) is needed: %v", err)
	}
	for _, tc := range tcpBehaviourPairs() {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t, tc.listen, tc.dial)
			defer client.Close()
			defer server.Close()
			ours := client
			if strings.HasPrefix(tc.name, "net-dial/") {
				ours = server
			}
			// A connected socket is named by both ends: tests of other packages
			// running at the same time may hold the same local port towards
			// another peer.
			local, peer := ours.LocalAddr().String(), ours.RemoteAddr().String()
			out, err := exec.Command(ss, "-tnpHO", "state", "established").Output()
			if err != nil {
				t.Fatalf("ss: %v", err)
			}
			pid := "pid=" + strconv.Itoa(os.Getpid()) + ","
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) >= 4 && f[2] == local && f[3] == peer {
					if !strings.Contains(line, pid) {
						t.Fatalf("ss line for %s-%s does not name this process (%s):\n%s", local, peer, pid, line)
					}
					return
				}
			}
			t.Fatalf("ss -tnp shows no established socket %s-%s:\n%s", local, peer, out)
		})
	}
}

// acceptAll accepts on ln until it is closed, runs each connection's handshake as a
// server application's first Read would, and closes the connections at the end of
// the test.
func acceptAll(t *testing.T, ln net.Listener) {
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if sc, ok := c.(*Conn); ok {
				sc.Handshake()
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
}

// TestNetworks: only TCP networks are accepted, with the standard error type.
func TestNetworks(t *testing.T) {
	for _, network := range []string{"udp", "unix", "ip4", ""} {
		if _, err := Dial(network, "127.0.0.1:1"); err == nil {
			t.Errorf("Dial(%q) succeeded", network)
		} else if !errors.As(err, new(net.UnknownNetworkError)) {
			t.Errorf("Dial(%q) error %v is not an UnknownNetworkError", network, err)
		}
		if _, err := Listen(network, "127.0.0.1:0"); err == nil {
			t.Errorf("Listen(%q) succeeded", network)
		}
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		ln, err := Listen(network, addr)
		if err != nil {
			t.Fatalf("Listen(%q): %v", network, err)
		}
		acceptAll(t, ln)
		c, err := (&Dialer{}).DialContext(context.Background(), network, ln.Addr().String())
		if err != nil {
			t.Fatalf("Dial(%q): %v", network, err)
		}
		c.Close()
	}
}

// TestControlChained: the caller's Control hooks run on every socket.
func TestControlChained(t *testing.T) {
	var dialCalls, listenCalls int
	lc := ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		listenCalls++
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptAll(t, ln)
	d := Dialer{ControlContext: func(ctx context.Context, network, address string, c syscall.RawConn) error {
		dialCalls++
		return nil
	}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if dialCalls != 1 || listenCalls != 1 {
		t.Fatalf("control calls: dial %d, listen %d; want 1 and 1", dialCalls, listenCalls)
	}
	// A failing hook fails the dial, as with net.Dialer.
	hookErr := errors.New("hook says no")
	d = Dialer{Control: func(string, string, syscall.RawConn) error { return hookErr }}
	if _, err := d.Dial("tcp", ln.Addr().String()); !errors.Is(err, hookErr) {
		t.Fatalf("dial with failing hook: %v, want %v", err, hookErr)
	}
}
