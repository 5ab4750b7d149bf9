package shm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// leads reports whether w holds its link's role.
func leads(w *waiter) bool { return w.s.link.lead.Load() == w }

// readOne reads n bytes from s in a goroutine and sends the result.
func readOne(s *Stream, n int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(s, make([]byte, n))
		errc <- err
	}()
	return errc
}

// TestBellWakesParked makes round trips to a child that thinks 200 µs before it echoes,
// with spinning off in both processes, so that our Read parks every time: every wake-up
// we receive rings our link's bell, read by the waiting Read itself, and none comes as a
// WAKE message through the link's reader.
func TestBellWakesParked(t *testing.T) {
	if !bellsRing() {
		t.Fatal("this kernel's pipes refuse RWF_NOWAIT writes (Linux 6.6 or later rings bells)")
	}
	defer checkLeaks(t)()
	defer SetSpin(SetSpin(0))
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, cmd := startChild(t, e, "slowecho", MinRingSize)
	defer cmd.Wait()
	defer s.Close()
	buf := make([]byte, 64)
	roundTrip := func(i int) {
		t.Helper()
		s.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Write(buf); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
	}
	// Until the child mapped our poller page and took our bell (its first ring says
	// so), it wakes our Read with WAKEs.
	rings0 := ReadCounters().BellRings
	waitFor(t, "the child's first ring", func() bool {
		roundTrip(-1)
		return ReadCounters().BellRings > rings0
	})
	c0 := ReadCounters()
	const n = 500
	for i := range n {
		roundTrip(i)
	}
	c := ReadCounters()
	rings, received, sent := c.BellRings-c0.BellRings, c.WakeupsReceived-c0.WakeupsReceived, c.WakeupsSent-c0.WakeupsSent
	t.Logf("%d round trips: %d wake-ups received, %d of them rings; %d sent", n, received, rings, sent)
	if rings < n/2 {
		t.Errorf("%d bell rings received over %d parked round trips, want about one each", rings, n)
	}
	if received != rings {
		t.Errorf("%d wake-ups came as WAKE messages through the link's reader, want none", received-rings)
	}
	s.CloseWrite()
}

// TestLeaderHandOff has 16 streams of one link to a child wait in Read at once, spin
// off, and sends data each time to the stream whose Read leads the link: the leader
// leaves, hands the role on, and every stream gets its data.
func TestLeaderHandOff(t *testing.T) {
	defer checkLeaks(t)()
	defer SetSpin(SetSpin(0))
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 16
	m := startMulti(t, e, PeerID{22}, n)
	defer m.stop()
	streams := m.streams
	got := make([]chan error, n)
	for i, s := range streams {
		got[i] = make(chan error, 1)
		go func() {
			s.SetReadDeadline(time.Now().Add(30 * time.Second))
			b := make([]byte, 8)
			_, err := io.ReadFull(s, b)
			if err == nil && string(b) != fmt.Sprintf("%08d", i) {
				err = fmt.Errorf("read %q", b)
			}
			got[i] <- err
		}()
	}
	waitReadsParked(t, streams)
	l := streams[0].link
	left := make(map[*Stream]int)
	for i, s := range streams {
		left[s] = i
	}
	for len(left) > 0 {
		var i int
		waitFor(t, "a leader among the waiting Reads", func() bool {
			w := l.lead.Load()
			if w == nil {
				return false
			}
			var ok bool
			i, ok = left[w.s]
			return ok && w == &w.s.rw
		})
		s := streams[i]
		delete(left, s)
		if _, err := s.Write([]byte(fmt.Sprintf("%08d", i))); err != nil {
			t.Fatal(err)
		}
		if err := <-got[i]; err != nil {
			t.Fatalf("stream %d, the leader: %v", i, err)
		}
	}
}

// TestLeaderDeadline: a Read that leads its link returns at its deadline, and at once
// when the deadline is moved into the past.
func TestLeaderDeadline(t *testing.T) {
	defer checkLeaks(t)()
	defer SetSpin(SetSpin(0))
	a, b := socketPair(t, MinRingSize, MinRingSize)
	defer b.Close()
	defer a.Close()
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := a.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read past its deadline: %v, want a timeout", err)
	}
	a.SetReadDeadline(time.Time{})
	errc := readOne(a, 1)
	waitFor(t, "the Read to lead its link", func() bool { return leads(&a.rw) })
	a.SetReadDeadline(time.Now())
	if err := <-errc; !isTimeout(err) {
		t.Fatalf("Read whose deadline passed while it led: %v, want a timeout", err)
	}
	if leads(&a.rw) {
		t.Fatal("the Read returned and still leads its link")
	}
}

// TestLeaderClosed closes a stream whose Read leads its link: the Read fails with
// net.ErrClosed, and another stream's Read waiting on the link takes the role and gets
// its data.
func TestLeaderClosed(t *testing.T) {
	defer checkLeaks(t)()
	defer SetSpin(SetSpin(0))
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, b := pairOn(t, e, PeerID{23}, MinRingSize, MinRingSize)
	c, d := pairOn(t, e, PeerID{23}, MinRingSize, MinRingSize)
	for _, s := range []*Stream{a, b, c, d} {
		s.local.Store(nil) // wake-ups over the link, as between two processes
		defer s.Close()
	}
	if a.link != c.link {
		t.Fatal("the two streams do not share a link")
	}
	errA := readOne(a, 1)
	waitFor(t, "a's Read to lead its link", func() bool { return leads(&a.rw) })
	errC := readOne(c, 1)
	waitFor(t, "c's Read to wait", func() bool { return c.rxh.consCtl.sleep.Load() != 0 })
	a.Close()
	if err := <-errA; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read of a stream closed while it led: %v, want net.ErrClosed", err)
	}
	waitFor(t, "c's Read to take the role", func() bool { return leads(&c.rw) })
	if _, err := d.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := <-errC; err != nil {
		t.Fatalf("the new leader's Read: %v", err)
	}
}

// TestLeaderLinkDeath kills the peer process while our Read leads the link: the Read
// fails with a reset.
func TestLeaderLinkDeath(t *testing.T) {
	defer checkLeaks(t)()
	defer SetSpin(SetSpin(0))
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, cmd := startChild(t, e, "echo", MinRingSize)
	defer s.Close()
	errc := readOne(s, 1)
	waitFor(t, "the Read to lead its link", func() bool { return leads(&s.rw) })
	killed := time.Now()
	cmd.Process.Kill()
	cmd.Wait()
	select {
	case err := <-errc:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("leading Read after the peer died: %v, want ECONNRESET", err)
		}
		t.Logf("the leading Read failed %v after SIGKILL", time.Since(killed))
	case <-time.After(5 * time.Second):
		t.Fatal("the leading Read did not notice the peer's death")
	}
}

// TestBellNeverBlocks rings a peer's bell that the peer filled and made blocking (the
// pipe's write end is the peer's file too): the ring must not block the Write that
// rings it.
func TestBellNeverBlocks(t *testing.T) {
	if !bellsRing() {
		t.Fatal("this kernel's pipes refuse RWF_NOWAIT writes (Linux 6.6 or later rings bells)")
	}
	defer checkLeaks(t)()
	v, h := socketPair(t, MinRingSize, MinRingSize)
	defer h.Close()
	defer v.Close()
	waitFor(t, "the peer's bell", func() bool { return v.link.peerBell.Load() != nil })
	v.link.peerBell.Load().rc.Control(func(fd uintptr) {
		junk := make([]byte, 4096)
		for {
			if _, err := unix.Write(int(fd), junk); err != nil {
				break // full
			}
		}
		if err := unix.SetNonblock(int(fd), false); err != nil {
			t.Fatal(err)
		}
	})
	// The peer says its Read sleeps, and so does its poller, which nobody reads the
	// bell for: the Write rings the full bell.
	h.rxh.consCtl.sleep.Store(1)
	storePollWord(&h.link.ownPoll, 77)
	wrote := make(chan error, 1)
	go func() {
		_, err := v.Write([]byte{1})
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Write that rang a full, blocking bell did not return")
	}
	h.rxh.consCtl.sleep.Store(0)
	if _, err := h.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the peer's Read: %v", err)
	}
}
