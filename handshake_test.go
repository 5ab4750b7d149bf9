package smc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// tcpPair returns a connected pair of kernel TCP connections on loopback.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	c, s := pair(t, listenNet, dialNet)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// advertised is the handshake record of a connection both sides offered SMC on.
var advertised = sigResult{Marked: true, Sent: true, Received: true}

// smcPair runs both handshakes over a fresh TCP connection, as Dial and Accept do
// once the TCP handshake carried the option on both sides.
func smcPair(t *testing.T, cc, sc *Config) (client, server *Conn) {
	t.Helper()
	ct, st := tcpPair(t)
	client, server = newConn(ct, true, cc, advertised), newConn(st, false, sc, advertised)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestHandshakeSMCD(t *testing.T) {
	checkLeaks(t)
	client, server := smcPair(t, nil, nil)
	for _, c := range []*Conn{client, server} {
		st := c.ConnectionState()
		if st.Mode != ModeSMCD || st.Fallback != ReasonNone || !st.HandshakeComplete {
			t.Fatalf("state %+v, want ModeSMCD without fallback", st)
		}
		if State(c) != st {
			t.Fatal("State(conn) differs from ConnectionState()")
		}
	}
	exchange(t, client, server, "over shared memory\n")
	exchange(t, server, client, "and back\n")
}

// rawServer plays a server by hand: it reads the client's first CLC message and
// answers with reply (nil: nothing).
func rawServer(t *testing.T, raw *net.TCPConn, reply []byte) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		msg, _ := wire.ReadMessage(raw, nil)
		got <- msg
		if reply != nil {
			raw.Write(reply)
		}
	}()
	return got
}

// TestServerTakesDeclineFirst: a Linux client without an SMC device sends a 28-byte
// v1 Decline instead of a Proposal, then plain data; the server falls back with
// PEERDECL, keeps the peer's diagnosis and loses no byte.
func TestServerTakesDeclineFirst(t *testing.T) {
	checkLeaks(t)
	// As seen from Debian's Linux 6.1 (see internal/kernelvm).
	linuxDecline := []byte{0xe2, 0xd4, 0xc3, 0xd9, 0x04, 0x00, 0x1c, 0x10, 0, 0, 0, 0, 0, 0, 0, 0,
		0x03, 0x03, 0x00, 0x00, 0, 0, 0, 0, 0xe2, 0xd4, 0xc3, 0xd9}
	ct, st := tcpPair(t)
	server := newConn(st, false, nil, advertised)
	if _, err := ct.Write(append(linuxDecline, "ping"...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.ReadAtLeast(server, buf, 4)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("server read %q, %v; want \"ping\"", buf[:n], err)
	}
	s := server.ConnectionState()
	if s.Mode != ModeTCP || s.Fallback != ReasonPeerDecl || s.PeerDiagnosis != ReasonNoSMCDev {
		t.Fatalf("state %+v, want TCP, PEERDECL, peer NOSMCDEV", s)
	}
	exchange(t, server, ct, "pong\n")
}

// TestClientTakesDecline: a server that declines the Proposal leaves the client on
// the same TCP connection with PEERDECL; what the server wrote right after its
// Decline, which the client's read of the Decline took too, reaches the application.
func TestClientTakesDecline(t *testing.T) {
	checkLeaks(t)
	ct, st := tcpPair(t)
	d := &wire.Decline{Version: wire.Version2, Diagnosis: wire.CodeNoSMCDev, OSType: wire.OSLinux}
	got := rawServer(t, st, append(d.Append(nil), "greeting\n"...))
	client := newConn(ct, true, nil, advertised)
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if p, err := wire.ParseProposal(<-got); err != nil || p.TypeV2 != wire.SMCTypeD {
		t.Fatalf("server got %v, %v; want an SMC-D v2 proposal", p, err)
	}
	s := client.ConnectionState()
	if s.Mode != ModeTCP || s.Fallback != ReasonPeerDecl || s.PeerDiagnosis != ReasonNoSMCDev {
		t.Fatalf("state %+v, want TCP, PEERDECL, peer NOSMCDEV", s)
	}
	greeting := make([]byte, len("greeting\n"))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, greeting); err != nil || string(greeting) != "greeting\n" {
		t.Fatalf("client read %q, %v; want the server's greeting", greeting, err)
	}
	exchange(t, client, st, "data after the decline\n")
	exchange(t, st, client, "answer\n")
}

// proposalFrom returns a Proposal like ours, changed by edit.
func proposalFrom(t *testing.T, edit func(p *wire.Proposal)) []byte {
	gid, err := localGID()
	if err != nil {
		t.Fatal(err)
	}
	p := &wire.Proposal{TypeV1: wire.SMCTypeN, TypeV2: wire.SMCTypeD, Release: 1, UEIDs: []wire.EID{localEID},
		FeatureMask: 1, GIDs: wire.GIDEntries(wire.ISMDevice{CHID: localCHID, GID: gid[0], GIDExt: gid[1]})}
	if edit != nil {
		edit(p)
	}
	return p.Append(nil)
}

// TestServerDeclines: each reason the server declines a Proposal for, with the
// code on the wire, the Decline's version matching the Proposal's, and the
// connection left working as plain TCP.
func TestServerDeclines(t *testing.T) {
	loopbackISM := []wire.GIDCHID{{GID: 1, CHID: 0xFFFF}, {GID: 2, CHID: 0xFFFF}}
	for _, tc := range []struct {
		name        string
		proposal    []byte
		want        Reason
		wantVersion uint8
	}{
		{"v1-only", proposalFrom(t, func(p *wire.Proposal) {
			p.Version, p.TypeV1, p.ISMGID, p.ISMCHID = wire.Version1, wire.SMCTypeD, 7, 0x0101
		}), ReasonVersMismatch, wire.Version1},
		{"no-v2-offer", proposalFrom(t, func(p *wire.Proposal) { p.TypeV1, p.TypeV2 = wire.SMCTypeR, wire.SMCTypeN }), ReasonNoV2Ext, wire.Version2},
		{"smc-r-only", proposalFrom(t, func(p *wire.Proposal) { p.TypeV2, p.GIDs = wire.SMCTypeR, nil }), ReasonNoSMCDDev, wire.Version2},
		{"loopback-ism", proposalFrom(t, func(p *wire.Proposal) { p.GIDs = loopbackISM }), ReasonNoSMCD2Dev, wire.Version2},
		{"misaligned-halves", proposalFrom(t, func(p *wire.Proposal) {
			// Read in pairs as Linux does, our GID's halves belong to two devices.
			p.GIDs = append([]wire.GIDCHID{{GID: 5, CHID: localCHID}}, p.GIDs...)
		}), ReasonNoSMCD2Dev, wire.Version2},
		{"other-host", proposalFrom(t, func(p *wire.Proposal) { p.GIDs[1].GID++ }), ReasonNoSMCD2Dev, wire.Version2},
		{"no-common-eid", proposalFrom(t, func(p *wire.Proposal) { p.UEIDs = nil }), ReasonNoUEID, wire.Version2},
		{"malformed", func() []byte {
			b := proposalFrom(t, nil)
			b[len(b)-1] = 0 // broken trailer
			return b
		}(), Reason(wire.CodeCnfErr), wire.Version2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			ct, st := tcpPair(t)
			server := newConn(st, false, nil, advertised)
			if _, err := ct.Write(tc.proposal); err != nil {
				t.Fatal(err)
			}
			if err := server.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			s := server.ConnectionState()
			if s.Mode != ModeTCP || s.Fallback != tc.want {
				t.Fatalf("state %+v, want TCP with %v", s, tc.want)
			}
			ct.SetReadDeadline(time.Now().Add(5 * time.Second))
			raw, err := wire.ReadMessage(ct, nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err := wire.ParseDecline(raw)
			if err != nil || Reason(d.Diagnosis) != tc.want || d.Version != tc.wantVersion {
				t.Fatalf("client got %+v, %v; want a v%d Decline with %v", d, err, tc.wantVersion, tc.want)
			}
			exchange(t, ct, server, "plain tcp\n")
		})
	}
}

// TestServerReplaysNonCLC: a client that advertised SMC but sends application data
// (a replayed option, a foreign stack) gets plain TCP and the server application
// reads every byte, in order, nothing added.
func TestServerReplaysNonCLC(t *testing.T) {
	checkLeaks(t)
	for _, first := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"\xe2\xd4\xc3",             // a prefix of the eyecatcher, then not CLC
		"\xe2\xd4\xc3\xd9\x09rest", // eyecatcher, then an unknown type
	} {
		ct, st := tcpPair(t)
		server := newConn(st, false, nil, advertised)
		go func() {
			ct.Write([]byte(first))
			time.Sleep(20 * time.Millisecond)
			ct.Write([]byte("tail"))
		}()
		want := first + "tail"
		got := make([]byte, len(want))
		server.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(server, got); err != nil || string(got) != want {
			t.Fatalf("server read %q, %v; want %q", got, err, want)
		}
		if s := server.ConnectionState(); s.Mode != ModeTCP || s.Fallback != ReasonPeerNotCLC {
			t.Fatalf("state %+v, want TCP with PEER_NOT_CLC", s)
		}
	}
}

// TestClientNonCLCAnswer: a server that answers the Proposal with non-CLC bytes
// fails the client's handshake with a clear error and puts the destination in the
// negative cache.
func TestClientNonCLCAnswer(t *testing.T) {
	checkLeaks(t)
	ct, st := tcpPair(t)
	policy := NewPolicy(Rules{})
	rawServer(t, st, []byte("220 smtp.example ESMTP\r\n"))
	client := newConn(ct, true, &Config{Policy: policy}, advertised)
	err := client.Handshake()
	var de *DeclineError
	if !errors.As(err, &de) || de.Reason != ReasonPeerNotCLC {
		t.Fatalf("handshake error %v, want a DeclineError with PEER_NOT_CLC", err)
	}
	if policy.OfferDial(client.remoteAddrPort()) {
		t.Fatal("destination not in the negative cache")
	}
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, de) {
		t.Fatalf("Read after failed handshake: %v, want the sticky handshake error", err)
	}
}

// TestClientBytesAfterAccept: a server that sends more after its Accept, before the
// client answered, breaks CLC: the client's handshake fails instead of guessing
// whose bytes they are.
func TestClientBytesAfterAccept(t *testing.T) {
	checkLeaks(t)
	gid, err := localGID()
	if err != nil {
		t.Fatal(err)
	}
	ct, st := tcpPair(t)
	a := &wire.AcceptConfirm{Type: wire.TypeAccept, GID: gid[0], GIDExt: gid[1], DMBToken: 1, LinkID: 1 << 16,
		CHID: localCHID, EID: localEID, FCE: firstContact()}
	rawServer(t, st, append(a.Append(nil), "more"...))
	client := newConn(ct, true, nil, advertised)
	err = client.Handshake()
	var de *DeclineError
	if !errors.As(err, &de) || de.Reason != ReasonIntErr || !strings.Contains(err.Error(), "after the peer's CLC accept") {
		t.Fatalf("handshake error %v, want a DeclineError with INTERR for bytes after the accept", err)
	}
}

// TestHandshakeTimeout: a client that advertised SMC and then stays silent fails
// the server's handshake after Config.HandshakeTimeout, as in Linux.
func TestHandshakeTimeout(t *testing.T) {
	checkLeaks(t)
	_, st := tcpPair(t)
	server := newConn(st, false, &Config{HandshakeTimeout: 100 * time.Millisecond}, advertised)
	start := time.Now()
	err := server.Handshake()
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("handshake: %v, want a timeout", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not applied")
	}
	// ctx bounds it too.
	_, st = tcpPair(t)
	server = newConn(st, false, nil, advertised)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := server.HandshakeContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handshake with expiring ctx: %v, want context.DeadlineExceeded", err)
	}
}

// TestHandshakeLimit: beyond Config.MaxHandshakes concurrent server handshakes, a
// new connection is declined (MEM on the wire, HANDSHAKE_LIMIT locally).
func TestHandshakeLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := &listener{tl: ln.(*net.TCPListener), config: &Config{MaxHandshakes: 1}}
	l.handshakes.Add(1) // one handshake in progress
	ct, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	st, err := l.tl.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	server := newConn(st, false, l.config, advertised)
	server.limit = &l.handshakes
	defer server.Close()
	ct.Write(proposalFrom(t, nil))
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if s := server.ConnectionState(); s.Fallback != ReasonHandshakeLimit {
		t.Fatalf("state %+v, want HANDSHAKE_LIMIT", s)
	}
	raw, err := wire.ReadMessage(ct, nil)
	if d, perr := wire.ParseDecline(raw); err != nil || perr != nil || d.Diagnosis != wire.CodeMem {
		t.Fatalf("client got %x (%v, %v), want a Decline with MEM", raw, err, perr)
	}
	if n := l.handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes counted after the declined one, want 1", n)
	}
}

// TestCloseDuringHandshake: Close unblocks a handshake waiting for the peer.
func TestCloseDuringHandshake(t *testing.T) {
	checkLeaks(t)
	_, st := tcpPair(t)
	server := newConn(st, false, nil, advertised)
	errc := make(chan error, 1)
	go func() { _, err := server.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	server.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read during Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read blocked after Close")
	}
	if _, err := server.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

// TestMaxDMB: beyond the process's shared-memory bound the server declines with
// MAX_DMB (Linux's SMC-D DMB limit) and both sides go on over TCP.
func TestMaxDMB(t *testing.T) {
	checkLeaks(t)
	prev := shm.SetMemoryLimit(shm.MemoryInUse()) // nothing more fits
	defer shm.SetMemoryLimit(prev)
	client, server := smcPair(t, nil, nil)
	if s := server.ConnectionState(); s.Mode != ModeTCP || s.Fallback != ReasonMaxDMB {
		t.Fatalf("server state %+v, want TCP with MAX_DMB", s)
	}
	if s := client.ConnectionState(); s.Mode != ModeTCP || s.Fallback != ReasonPeerDecl || s.PeerDiagnosis != ReasonMaxDMB {
		t.Fatalf("client state %+v, want TCP with PEERDECL and peer MAX_DMB", s)
	}
	exchange(t, client, server, "still a working connection\n")
}

// TestEndpointDir: with Config.EndpointDir both sides find each other's shared-
// memory endpoint through a socket file in that directory (the way peers in two
// network namespaces that share it do) instead of the abstract namespace.
func TestEndpointDir(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{EndpointDir: dir}
	client, server := smcPair(t, cfg, cfg)
	if client.ConnectionState().Mode != ModeSMCD || server.ConnectionState().Mode != ModeSMCD {
		t.Fatalf("modes %v / %v, want SMC-D", client.ConnectionState().Mode, server.ConnectionState().Mode)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
		t.Fatalf("no endpoint socket in %s (%v)", dir, err)
	}
	exchange(t, client, server, "through a shared directory\n")
	// A client looking in another directory cannot attach, and declines.
	client2, server2 := smcPair(t, &Config{EndpointDir: t.TempDir()}, cfg)
	if s := client2.ConnectionState(); s.Mode != ModeTCP || s.Fallback != ReasonPeerUnreachable {
		t.Fatalf("client state %+v, want TCP with PEER_UNREACHABLE", s)
	}
	if s := server2.ConnectionState(); s.Mode != ModeTCP || s.Fallback != ReasonPeerDecl || s.PeerDiagnosis != ReasonNoSMCDDev {
		t.Fatalf("server state %+v, want TCP with PEERDECL (NOSMCDDEV)", s)
	}
	exchange(t, client2, server2, "plain tcp\n")
}

// propose plays a client that writes proposal on ct and returns the server's Accept.
func propose(t *testing.T, ct *net.TCPConn, proposal []byte) *wire.AcceptConfirm {
	t.Helper()
	ct.Write(proposal)
	ct.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, err := wire.ReadMessage(ct, nil)
	if err != nil {
		t.Fatalf("reading the accept: %v", err)
	}
	a, err := wire.ParseAccept(raw)
	if err != nil {
		t.Fatalf("parsing the accept: %v", err)
	}
	return a
}

// confirmWithoutAttach plays a client that proposes, reads the Accept and
// confirms it without ever attaching to the offered shared memory.
func confirmWithoutAttach(t *testing.T, ct *net.TCPConn) {
	confirm := *propose(t, ct, proposalFrom(t, nil))
	confirm.Type = wire.TypeConfirm
	ct.Write(confirm.Append(nil))
}

// TestConfirmWithoutAttach: a client that confirms but never bound a slot to the
// offered one fails the server's handshake at once, whatever its HandshakeTimeout;
// the offer's slot and the listener's handshake slot are released.
func TestConfirmWithoutAttach(t *testing.T) {
	inUse := shm.ReadCounters().SlotsInUse
	for _, how := range []string{"timeout", "close"} {
		t.Run(how, func(t *testing.T) {
			checkLeaks(t)
			ct, st := tcpPair(t)
			cfg := &Config{HandshakeTimeout: time.Hour}
			if how == "timeout" {
				cfg.HandshakeTimeout = 200 * time.Millisecond
			}
			var slots atomic.Int64
			server := newConn(st, false, cfg, advertised)
			server.limit = &slots
			errc := make(chan error, 1)
			go func() { errc <- server.Handshake() }()
			confirmWithoutAttach(t, ct)
			if how == "close" {
				time.Sleep(50 * time.Millisecond)
				server.Close()
			}
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("handshake succeeded without the client attaching")
				}
				if how == "close" && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "protocol violation") {
					t.Fatalf("handshake: %v, want it to fail for the confirm without a bind, or net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("handshake still blocked")
			}
			if n := slots.Load(); n != 0 {
				t.Fatalf("%d handshake slots still taken", n)
			}
			waitSlotsInUse(t, inUse)
		})
	}
}

// TestSetDeadlineDuringHandshake: clearing the deadlines while a handshake waits
// does not lift the handshake's own bound, and the caller's deadline is in force
// (and only it) once the handshake is over.
func TestSetDeadlineDuringHandshake(t *testing.T) {
	checkLeaks(t)
	_, st := tcpPair(t)
	server := newConn(st, false, &Config{HandshakeTimeout: 200 * time.Millisecond}, advertised)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	time.Sleep(50 * time.Millisecond)
	server.SetDeadline(time.Time{})
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("handshake with a silent client succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SetDeadline during the handshake lifted its bound")
	}
}

// TestDeadlinesRestoredAfterHandshake: a handshake that ends in TCP mode leaves the
// caller's deadlines, not its own, on the connection, even when the context that
// bounded it ends right after.
func TestDeadlinesRestoredAfterHandshake(t *testing.T) {
	checkLeaks(t)
	ct, st := tcpPair(t)
	d := &wire.Decline{Version: wire.Version2, Diagnosis: wire.CodeNoSMCDev, OSType: wire.OSLinux}
	rawServer(t, st, d.Append(nil))
	client := newConn(ct, true, nil, advertised)
	ctx, cancel := context.WithCancel(context.Background())
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	cancel() // must not reach the connection any more
	time.Sleep(20 * time.Millisecond)
	exchange(t, st, client, "read with no deadline set\n")
}

// TestCancelThenSetDeadline: a handshake whose context was cancelled stays
// interrupted even if the caller then clears the deadlines.
func TestCancelThenSetDeadline(t *testing.T) {
	checkLeaks(t)
	_, st := tcpPair(t)
	server := newConn(st, false, &Config{HandshakeTimeout: time.Hour}, advertised)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- server.HandshakeContext(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	server.SetDeadline(time.Time{})
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handshake: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("clearing the deadlines revived a cancelled handshake")
	}
}

// TestServerHandshakeReleases: every way a server handshake ends after it offered a
// DMB gives back the offer's slot and the listener's handshake slot, whichever
// message (or none) the client answers the Accept with.
func TestServerHandshakeReleases(t *testing.T) {
	inUse := shm.ReadCounters().SlotsInUse
	for _, tc := range []struct {
		name    string
		answer  func(a *wire.AcceptConfirm) []byte // nil: the client closes
		wantErr bool
		want    Reason // the server's fallback reason when it does not fail
	}{
		{"decline", func(*wire.AcceptConfirm) []byte {
			d := &wire.Decline{Version: wire.Version2, Diagnosis: wire.CodeNoSMCDDev, OSType: wire.OSLinux}
			return d.Append(nil)
		}, false, ReasonPeerDecl},
		{"wrong-token", func(a *wire.AcceptConfirm) []byte {
			c := *a
			c.Type, c.DMBToken = wire.TypeConfirm, a.DMBToken+1
			return c.Append(nil)
		}, true, 0},
		{"accept-again", func(a *wire.AcceptConfirm) []byte { return a.Append(nil) }, true, 0},
		{"proposal", func(*wire.AcceptConfirm) []byte { return proposalFrom(t, nil) }, true, 0},
		{"malformed", func(a *wire.AcceptConfirm) []byte {
			b := a.Append(nil)
			b[len(b)-1] = 0 // broken trailer
			return b
		}, true, 0},
		{"close", nil, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			ct, st := tcpPair(t)
			var slots atomic.Int64
			server := newConn(st, false, nil, advertised)
			server.limit = &slots
			errc := make(chan error, 1)
			go func() { errc <- server.Handshake() }()
			a := propose(t, ct, proposalFrom(t, nil))
			if tc.answer == nil {
				ct.Close()
			} else {
				ct.Write(tc.answer(a))
			}
			var err error
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				t.Fatal("handshake still blocked")
			}
			if tc.wantErr != (err != nil) {
				t.Fatalf("handshake: %v, want error %v", err, tc.wantErr)
			}
			if s := server.ConnectionState(); !tc.wantErr && (s.Mode != ModeTCP || s.Fallback != tc.want) {
				t.Fatalf("state %+v, want TCP with %v", s, tc.want)
			}
			if n := slots.Load(); n != 0 {
				t.Fatalf("%d handshake slots still taken", n)
			}
			if got := shm.ReadCounters().SlotsInUse; got > inUse {
				t.Fatalf("shared-memory slots in use %d, was %d: the offer leaked", got, inUse)
			}
		})
	}
}

// TestHandshakeLimitAnswers: a server beyond its handshake limit offers nothing and
// answers the client's first message as it would otherwise, except that a CLC
// message other than a Decline is declined with MEM (HANDSHAKE_LIMIT locally).
func TestHandshakeLimitAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    []byte
		want     Reason // the server's fallback reason
		wantCode wire.Code
		version  uint8 // of the Decline the client gets; 0: none
	}{
		{"proposal", proposalFrom(t, nil), ReasonHandshakeLimit, wire.CodeMem, wire.Version2},
		{"v1-proposal", proposalFrom(t, func(p *wire.Proposal) {
			p.Version, p.TypeV1, p.ISMGID, p.ISMCHID = wire.Version1, wire.SMCTypeD, 7, 0x0101
		}), ReasonHandshakeLimit, wire.CodeMem, wire.Version1},
		{"malformed", func() []byte {
			b := proposalFrom(t, nil)
			b[len(b)-1] = 0
			return b
		}(), ReasonHandshakeLimit, wire.CodeMem, wire.Version2},
		{"decline", (&wire.Decline{Diagnosis: wire.CodeNoSMCDev}).Append(nil), ReasonPeerDecl, 0, 0},
		{"not-clc", []byte("GET / HTTP/1.0\r\n\r\n"), ReasonPeerNotCLC, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			ct, st := tcpPair(t)
			var slots atomic.Int64
			slots.Add(1) // one handshake in progress
			server := newConn(st, false, &Config{MaxHandshakes: 1}, advertised)
			server.limit = &slots
			ct.Write(tc.first)
			if err := server.Handshake(); err != nil {
				t.Fatal(err)
			}
			if s := server.ConnectionState(); s.Mode != ModeTCP || s.Fallback != tc.want {
				t.Fatalf("state %+v, want TCP with %v", s, tc.want)
			}
			if n := slots.Load(); n != 1 {
				t.Fatalf("%d handshakes counted after this one, want 1", n)
			}
			if tc.want == ReasonPeerNotCLC { // the server application reads the client's bytes
				got := make([]byte, len(tc.first))
				server.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, tc.first) {
					t.Fatalf("server read %q, %v; want %q", got, err, tc.first)
				}
			}
			if tc.version != 0 {
				ct.SetReadDeadline(time.Now().Add(5 * time.Second))
				raw, err := wire.ReadMessage(ct, nil)
				d, perr := wire.ParseDecline(raw)
				if err != nil || perr != nil || d.Diagnosis != tc.wantCode || d.Version != tc.version {
					t.Fatalf("client got %x (%v, %v), want a v%d Decline with %v", raw, err, perr, tc.version, tc.wantCode)
				}
			}
			exchange(t, ct, server, "plain tcp\n")
		})
	}
}

// TestReadErrorReason: what each kind of CLC read error makes of the handshake,
// with errors as wire and the TCP connection return them.
func TestReadErrorReason(t *testing.T) {
	readErr := func(b []byte) error {
		_, err := wire.ReadMessage(bytes.NewReader(b), nil)
		return err
	}
	parseErr := func(b []byte) error {
		_, err := wire.Parse(b)
		return err
	}
	brokenTrailer := proposalFrom(t, nil)
	brokenTrailer[len(brokenTrailer)-1] = 0
	for _, tc := range []struct {
		name string
		err  error
		want Reason
	}{
		{"none", nil, ReasonNone},
		{"not-clc", readErr([]byte("GET / HTTP/1.1\r\n")), ReasonPeerNotCLC},
		{"malformed", parseErr(brokenTrailer), Reason(wire.CodeCnfErr)},
		{"unsupported", fmt.Errorf("reading: %w", &wire.ParseError{Code: wire.CodeModeUnsupp, Err: wire.ErrUnsupported}), ReasonModeUnsupp},
		{"eof", readErr(brokenTrailer[:10]), ReasonIntErr},
		{"deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ReasonIntErr},
		{"closed", net.ErrClosed, ReasonIntErr},
	} {
		if got := readErrorReason(tc.err); got != tc.want {
			t.Errorf("%s: readErrorReason(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestOversizedBuffer: a peer whose buffer is larger than this side accepts (the
// larger of its own BufferSize and DefaultBufferSize) gets no SMC-D: one side
// declines with MAX_DMB, and the connection goes on as TCP. Which side depends on
// whether the two processes have a link already: the client refuses the size in a
// new link's Accept, and a side refuses an oversized segment on an existing link.
func TestOversizedBuffer(t *testing.T) {
	big := &Config{BufferSize: 1 << 20}
	for _, tc := range []struct {
		name   string
		cc, sc *Config
	}{{"server's", nil, big}, {"client's", big, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := smcPair(t, tc.cc, tc.sc)
			cs, ss := client.ConnectionState(), server.ConnectionState()
			declined := func(a, b ConnectionState) bool {
				return a.Mode == ModeTCP && a.Fallback == ReasonMaxDMB &&
					b.Mode == ModeTCP && b.Fallback == ReasonPeerDecl && b.PeerDiagnosis == ReasonMaxDMB
			}
			if !declined(cs, ss) && !declined(ss, cs) {
				t.Fatalf("client %+v, server %+v: want one side MAX_DMB, the other PEERDECL (MAX_DMB)", cs, ss)
			}
			exchange(t, client, server, "plain tcp\n")
		})
	}
	// Within what each side accepts, large buffers are fine.
	client, server := smcPair(t, big, big)
	if client.ConnectionState().Mode != ModeSMCD || client.stream.RingSize() != 1<<20 || client.stream.PeerRingSize() != 1<<20 {
		t.Fatalf("both sides at 1 MiB: %+v", client.ConnectionState())
	}
	exchange(t, client, server, "through 1 MiB rings\n")
}

// TestServerGivesUpAfterAccept: the client is in SMC mode once its Confirm is sent,
// with no acknowledgement from the server. A server whose handshake then fails
// before it read the Confirm (here: it is closed, the Confirm held back) withdraws
// its offer: the client's Read and Write fail with a reset, as over TCP when a
// server accepts and then resets, and no slot stays in use.
func TestServerGivesUpAfterAccept(t *testing.T) {
	checkLeaks(t)
	inUse := shm.ReadCounters().SlotsInUse
	ct, rc := tcpPair(t) // client ↔ relay
	rs, st := tcpPair(t) // relay ↔ server
	client, server := newConn(ct, true, nil, advertised), newConn(st, false, nil, advertised)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	relayed := make(chan error, 1)
	go func() {
		// Proposal and Accept go through; the Confirm does not.
		for _, dir := range [][2]*net.TCPConn{{rc, rs}, {rs, rc}} {
			dir[0].SetReadDeadline(time.Now().Add(5 * time.Second))
			m, err := wire.ReadMessage(dir[0], nil)
			if err != nil {
				relayed <- err
				return
			}
			dir[1].Write(m)
		}
		rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := wire.ReadMessage(rc, nil)
		relayed <- err
	}()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	defer client.Close()
	if m := client.ConnectionState().Mode; m != ModeSMCD {
		t.Fatalf("client mode %v, want SMC-D once its Confirm is sent", m)
	}
	if err := <-relayed; err != nil {
		t.Fatalf("relay: %v", err)
	}
	if _, err := client.Write([]byte("request")); err != nil {
		t.Fatalf("Write before the server gave up: %v", err)
	}
	server.Close()
	if err := <-errc; err == nil {
		t.Fatal("server handshake succeeded without the Confirm")
	}
	client.SetDeadline(time.Now().Add(5 * time.Second)) // a hang fails as a timeout, not a reset
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the server gave up: %v, want a reset", err)
	}
	if _, err := client.Write([]byte("more")); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Write after the server gave up: %v, want a reset", err)
	}
	client.Close()
	waitSlotsInUse(t, inUse)
}
