package shm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The client binds its side and reports SMC before the server has bound (no BIND,
// no BINDACK): these tests hold the server to what that needs. Whatever a live,
// well-behaved server refuses fails the client's Connect (it can still decline); a
// server that gives up later costs the client's stream a reset, never a hang or data
// in another connection's slot; a Confirm naming a slot the client did not bind to
// the offer costs that connection only.

// isReset reports whether err is a reset (the peer aborted, vanished or broke the
// protocol).
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// slotsSettle waits until the process's slots in use are back to n: the slots of a
// withdrawn offer are freed once the client released them.
func slotsSettle(t *testing.T, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("slots in use back to %d", n), func() bool { return ReadCounters().SlotsInUse == n })
}

// TestCancelAfterAccept withdraws an offer whose Accept went out, at each point of the
// client's progress: the client's Connect fails (it declines), or its stream fails with
// a reset; both slots are freed once the client let go.
func TestCancelAfterAccept(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const size = MinRingSize
	for i, tc := range []struct {
		name string
		run  func(t *testing.T, o *Offer) // cancels o at some point of the client's progress
	}{
		{"before the client's Connect", func(t *testing.T, o *Offer) {
			o.Cancel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if c, err := Connect(ctx, "", o.LinkID(), o.Token(), size, size, MaxRingSize); !errors.Is(err, ErrOfferClosed) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("Connect to a withdrawn offer: %v, want ErrOfferClosed", err)
			}
		}},
		{"while the client waits to read", func(t *testing.T, o *Offer) {
			c := connect(t, o)
			defer c.Close()
			errc := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				errc <- err
			}()
			time.Sleep(10 * time.Millisecond) // let the Read park
			o.Cancel()
			if err := <-errc; !isReset(err) {
				t.Fatalf("Read of a stream whose offer was withdrawn: %v, want a reset", err)
			}
			if _, err := c.Write([]byte("x")); !isReset(err) {
				t.Fatalf("Write after the withdrawal: %v, want a reset", err)
			}
		}},
		{"after the client wrote", func(t *testing.T, o *Offer) {
			c := connect(t, o)
			defer c.Close()
			if _, err := c.Write(make([]byte, 3000)); err != nil {
				t.Fatal(err)
			}
			o.Cancel()
			// The writer sees the abort in the server slot's consumer line at once.
			if _, err := c.Write([]byte("x")); !isReset(err) {
				t.Fatalf("Write after the withdrawal: %v, want a reset", err)
			}
			if _, err := c.Read(make([]byte, 1)); !isReset(err) {
				t.Fatalf("Read after the withdrawal: %v, want a reset", err)
			}
		}},
		{"after the client closed", func(t *testing.T, o *Offer) {
			c := connect(t, o)
			c.Write([]byte("request"))
			c.Close()
			o.Cancel()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := PeerID{40, byte(i)}
			quiesce(t)                             // the slots of the subtest before are freed
			a, b := pairOn(t, e, peer, size, size) // the link, and a stream that must survive
			n0 := ReadCounters().SlotsInUse
			o, err := e.Offer(context.Background(), peer, size, MaxRingSize)
			if err != nil {
				t.Fatal(err)
			}
			tc.run(t, o)
			slotsSettle(t, n0)
			exchangeOn(t, a, b) // the link and its other streams are unharmed
		})
	}
}

// connect runs the client's Connect for o with MinRingSize rings on both sides.
func connect(t *testing.T, o *Offer) *Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Connect(ctx, "", o.LinkID(), o.Token(), MinRingSize, o.size, MaxRingSize)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second)) // a hang fails with a timeout, not a reset
	return c
}

// TestLyingConfirm binds offers to client slots the client did not bind to them. Each
// Confirm is refused as a violation, and withdraws its offer: the client stream bound to
// it fails with a reset. Nothing else does: the Confirm travels over TCP, so it may come
// from a process that claims the client's PeerID, and must not end the client's link.
func TestLyingConfirm(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const size = MinRingSize
	for i, tc := range []struct {
		name string
		tok  func(c, other *Stream) uint64 // the client slot the Confirm names
		size int                           // the ring size it announces
	}{
		{"another connection's slot", func(c, other *Stream) uint64 { return other.Token() }, size},
		{"a stale generation of its slot", func(c, other *Stream) uint64 { return c.Token() - 1<<32 }, size},
		{"a later generation of its slot", func(c, other *Stream) uint64 { return c.Token() + 1<<32 }, size},
		{"a slot of an unmapped segment", func(c, other *Stream) uint64 { return makeToken(1, 999, 0) }, size},
		{"a slot beyond its segment", func(c, other *Stream) uint64 { return c.Token() + 100 }, size},
		{"another ring size", func(c, other *Stream) uint64 { return c.Token() }, 2 * size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := PeerID{41, byte(i)}
			quiesce(t)
			a, b := pairOn(t, e, peer, size, size)
			n0 := ReadCounters().SlotsInUse
			o, err := e.Offer(context.Background(), peer, size, MaxRingSize)
			if err != nil {
				t.Fatal(err)
			}
			c := connect(t, o)
			if s, err := o.Bind(tc.tok(c, b), tc.size); !isViolation(err) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Bind: %v, want a violation", err)
			}
			if _, err := c.Read(make([]byte, 1)); !isReset(err) {
				t.Fatalf("the stream bound to the refused offer: Read %v, want a reset", err)
			}
			c.Close()
			slotsSettle(t, n0)
			exchangeOn(t, a, b)
		})
	}
	// Two offers, each client slot bound to one: a Confirm that names the other's
	// slot is refused, and that other offer still binds to its own.
	t.Run("two offers, crossed", func(t *testing.T) {
		peer := PeerID{42}
		pairOn(t, e, peer, size, size)
		o1, err := e.Offer(context.Background(), peer, size, MaxRingSize)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := e.Offer(context.Background(), peer, size, MaxRingSize)
		if err != nil {
			t.Fatal(err)
		}
		c1, c2 := connect(t, o1), connect(t, o2)
		defer c1.Close()
		defer c2.Close()
		if s, err := o1.Bind(c2.Token(), size); !isViolation(err) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("Bind to the slot bound to another offer: %v, want a violation", err)
		}
		s2, err := o2.Bind(c2.Token(), size)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		exchangeOn(t, s2, c2)
	})
}

// exchangeOn checks that b's bytes reach a.
func exchangeOn(t *testing.T, a, b *Stream) {
	t.Helper()
	if _, err := b.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("the link's other stream: %q, %v", buf, err)
	}
}

// TestConfirmAfterGrowth binds each offer as soon as the client's Connect returned,
// while the client's pool grows segment after segment: the server has mapped every
// segment whose slot a Confirm can name (the client hands out a new segment's slots
// only after the server's SEGACK).
func TestConfirmAfterGrowth(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	peer := PeerID{43}
	var open []*Stream
	defer func() {
		for _, s := range open {
			s.Close()
		}
	}()
	for range 40 { // segments of 1, 2, 4, 8, 16 and more slots
		a, b := pairOn(t, e, peer, MinRingSize, MinRingSize)
		open = append(open, a, b)
		if _, err := b.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServerKilledAfterAccept connects to an offer of a child process and kills the
// child before it read the Confirm: the client's stream, in SMC mode already, fails
// with a reset, and everything of the link goes.
func TestServerKilledAfterAccept(t *testing.T) {
	defer checkLeaks(t)()
	c0 := quiesce(t)
	cmd, out := startHelper(t, "offer", nil, "SMC_SHM_SIZE="+strconv.Itoa(MinRingSize))
	defer stopHelper(cmd)
	if !out.Scan() {
		t.Fatal("the child offered nothing")
	}
	var id uint32
	var tok uint64
	if _, err := fmt.Sscan(out.Text(), &id, &tok); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Connect(ctx, "", id, tok, MinRingSize, MinRingSize, MaxRingSize)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	stopHelper(cmd)
	if err := <-errc; !isReset(err) {
		t.Fatalf("Read after the server died: %v, want a reset", err)
	}
	c.Close()
	waitFor(t, "the link's end", func() bool {
		c := ReadCounters()
		return c.Links == c0.Links && c.SlotsInUse == c0.SlotsInUse && c.PeerSegments == c0.PeerSegments
	})
}
