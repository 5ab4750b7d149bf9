package smc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// A hostile peer writes its own CLC messages with the wire codec and announces a
// ring larger than this side accepts (its BufferSize, at least DefaultBufferSize).
// TestOversizedBuffer and TestLinkOversizedRing cover honest peers configured with
// large buffers; these tests cover peers that lie or push on regardless.

// TestHostileAcceptOversizedRing: a server whose Accept announces a ring larger
// than the client accepts is declined with MAX_DMB before the client touches the
// link: the Decline on the wire carries MAX_DMB, the client falls back to TCP with
// MAX_DMB, maps nothing of the server's, and the connection goes on as TCP. The
// Accept names a real offer of this process's endpoint, so that a client that
// skipped the check would find a ring to map: either one as large as announced, or
// a 64 KiB one behind the largest size the 4-bit field can say.
func TestHostileAcceptOversizedRing(t *testing.T) {
	ep, err := endpoint("")
	if err != nil {
		t.Fatal(err)
	}
	gid, err := localGID()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		ring     int   // the ring of the server's real offer
		announce uint8 // the Accept's compressed DMBE size
	}{
		{"1 MiB offered and announced", 1 << 20, 6},
		{"64 KiB offered, 512 MiB announced", DefaultBufferSize, wire.MaxCompressedSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inUse := shm.ReadCounters().SlotsInUse
			defer waitSlotsInUse(t, inUse)
			o, err := ep.Offer(context.Background(), shm.ProcessID(), tc.ring, tc.ring)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Cancel()
			a := &wire.AcceptConfirm{Type: wire.TypeAccept, GID: gid[0], GIDExt: gid[1], DMBToken: o.Token(),
				DMBESize: tc.announce, LinkID: o.LinkID(), CHID: localCHID, EID: localEID, FCE: firstContact()}
			ct, st := tcpPair(t)
			got := rawServer(t, st, a.Append(nil))
			before := shm.ReadCounters()
			client := newConn(ct, true, nil, advertised)
			if err := client.Handshake(); err != nil {
				t.Fatalf("client handshake: %v, want a fallback", err)
			}
			if _, err := wire.ParseProposal(<-got); err != nil {
				t.Fatalf("server got no proposal: %v", err)
			}
			st.SetReadDeadline(time.Now().Add(5 * time.Second))
			raw, err := wire.ReadMessage(st, nil)
			if err != nil {
				t.Fatalf("reading the client's answer to the accept: %v", err)
			}
			d, err := wire.ParseDecline(raw)
			if err != nil || d.Diagnosis != wire.CodeMaxDMB {
				t.Fatalf("client answered %+v (%v), want a Decline with MAX_DMB", d, err)
			}
			if s := client.ConnectionState(); s.Mode != ModeTCP || s.Fallback != ReasonMaxDMB {
				t.Fatalf("client state %+v, want TCP with MAX_DMB", s)
			}
			after := shm.ReadCounters()
			if after.LinksOpened != before.LinksOpened || after.PeerSegmentsMapped != before.PeerSegmentsMapped {
				t.Fatalf("the client used the link: counters %+v before, %+v after", before, after)
			}
			exchange(t, client, st, "plain tcp\n")
			exchange(t, st, client, "and back\n")
		})
	}
}

// TestHostileClientOversizedRing: a client that proposes by hand and then, instead
// of declining, pushes an oversized ring on the server gets no SMC-D. Binding a
// 1 MiB slot to the server's 64 KiB offer is refused as too large (the Connect
// fails with ErrBadSize, for which the library declines with MAX_DMB), and the
// Confirm it sends anyway, announcing that ring, fails the server's handshake: the
// offer was never bound. A client that bound a 64 KiB slot but announces 512 MiB in
// its Confirm fails it too. A connection with 1 MiB rings on both sides comes first,
// so that the link maps 1 MiB rings and the offer's own bound is what refuses.
func TestHostileClientOversizedRing(t *testing.T) {
	big := &Config{BufferSize: 1 << 20}
	if c, _ := smcPair(t, big, big); c.ConnectionState().Mode != ModeSMCD {
		t.Fatalf("1 MiB rings on both sides: %+v", c.ConnectionState())
	}
	for _, tc := range []struct {
		name     string
		ring     int   // the ring the client binds
		announce uint8 // the Confirm's compressed DMBE size
		wantBind error // what binding the ring gives
	}{
		{"binds 1 MiB", 1 << 20, 6, shm.ErrBadSize},
		{"binds 64 KiB, announces 512 MiB", DefaultBufferSize, wire.MaxCompressedSize, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inUse := shm.ReadCounters().SlotsInUse
			defer waitSlotsInUse(t, inUse)
			ct, st := tcpPair(t)
			server := newConn(st, false, nil, advertised)
			errc := make(chan error, 1)
			go func() { errc <- server.Handshake() }()
			a := propose(t, ct, proposalFrom(t, func(p *wire.Proposal) { p.PeerID = [8]byte(shm.ProcessID()) }))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := shm.Connect(ctx, "", a.LinkID, a.DMBToken, tc.ring, wire.BufferSize(a.DMBESize), tc.ring)
			if !errors.Is(err, tc.wantBind) || (err != nil && shmReason(err) != ReasonMaxDMB) {
				t.Fatalf("binding a %d-byte ring: %v, want %v (MAX_DMB)", tc.ring, err, tc.wantBind)
			}
			confirm := *a
			confirm.Type, confirm.DMBESize = wire.TypeConfirm, tc.announce
			if s != nil {
				defer s.Abort()
				confirm.DMBToken = s.Token()
			}
			ct.Write(confirm.Append(nil))
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				t.Fatal("server handshake still blocked")
			}
			var de *DeclineError
			if !errors.As(err, &de) || de.Reason != ReasonIntErr {
				t.Fatalf("server handshake: %v, want it to fail with INTERR", err)
			}
			if m := server.ConnectionState().Mode; m == ModeSMCD {
				t.Fatal("server runs SMC-D on the hostile client's ring")
			}
		})
	}
}

// waitSlotsInUse fails the test unless the process's shared-memory slots in use
// fall back to n within 2 s: a slot closed on both sides is freed once its owner sees
// the peer's release (at its own close, or by the link's sweep).
func waitSlotsInUse(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); shm.ReadCounters().SlotsInUse > n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("shared-memory slots in use %d, was %d: a slot leaked", shm.ReadCounters().SlotsInUse, n)
		}
	}
}
