package shm

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpLock hammers one lock word with operations (Read's shape), operations that
// leave and re-enter (WriteTo's shape) and goroutines that take opIn alone (Close's
// shape): opHeld and opIn each have one holder at a time, and every waiter gets its
// turn (a lost wake-up would leave one waiting).
func TestOpLock(t *testing.T) {
	s := &Stream{closed: make(chan struct{})}
	var dl atomic.Int64
	var held, in atomic.Int32
	check := func(c *atomic.Int32, what string) {
		if n := c.Add(1); n != 1 {
			t.Errorf("%d holders of %s", n, what)
		}
	}
	var wg sync.WaitGroup
	const rounds = 2000
	for range 4 {
		wg.Go(func() { // Read
			for range rounds {
				if err := s.acquire(&s.rop, &dl, "read"); err != nil {
					t.Error(err)
					return
				}
				check(&held, "opHeld")
				check(&in, "opIn")
				in.Add(-1)
				held.Add(-1)
				s.rop.release(opHeld | opIn)
			}
		})
	}
	for range 2 {
		wg.Go(func() { // WriteTo
			for range rounds / 4 {
				if err := s.acquire(&s.rop, &dl, "read"); err != nil {
					t.Error(err)
					return
				}
				check(&held, "opHeld")
				s.rop.release(opIn)
				for range 2 {
					s.rop.enter()
					check(&in, "opIn")
					in.Add(-1)
					s.rop.release(opIn)
				}
				held.Add(-1)
				s.rop.release(opHeld)
			}
		})
		wg.Go(func() { // Close
			for range rounds {
				s.rop.enter()
				check(&in, "opIn")
				in.Add(-1)
				s.rop.release(opIn)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("a waiter never got the lock: state %#x", s.rop.state.Load())
	}
	if v := s.rop.state.Load(); v != 0 {
		t.Fatalf("state %#x after all released, want 0", v)
	}

	// Waiting for an operation ends at the deadline and at Close, and leaves no waiter
	// counted; opIn alone is free for Close meanwhile.
	if err := s.acquire(&s.rop, &dl, "read"); err != nil {
		t.Fatal(err)
	}
	dl.Store(time.Now().Add(20 * time.Millisecond).UnixNano())
	if err := s.acquire(&s.rop, &dl, "read"); !isTimeout(err) {
		t.Fatalf("acquire behind a holder: %v, want a timeout", err)
	}
	dl.Store(0)
	s.rop.release(opIn)
	s.rop.enter()
	s.rop.release(opIn)
	errc := make(chan error, 1)
	go func() { errc <- s.acquire(&s.rop, &dl, "read") }()
	time.Sleep(10 * time.Millisecond)
	close(s.closed)
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("acquire at Close: %v, want net.ErrClosed", err)
	}
	s.rop.release(opHeld)
	if v := s.rop.state.Load(); v != 0 {
		t.Fatalf("state %#x after all released, want 0", v)
	}
}

// TestOpLockUncontended: operations that never wait make no kick channel.
func TestOpLockUncontended(t *testing.T) {
	s := &Stream{closed: make(chan struct{})}
	var dl atomic.Int64
	for range 3 {
		if err := s.acquire(&s.rop, &dl, "read"); err != nil {
			t.Fatal(err)
		}
		s.rop.release(opIn)
		s.rop.enter()
		s.rop.release(opIn | opHeld)
	}
	if s.rop.kickOp.Load() != nil || s.rop.kickIn.Load() != nil {
		t.Fatal("an uncontended lock word made a kick channel")
	}
}

// TestOpLockWaitersLeave: waiters that give up (at Close) change the word's counts while
// a Close-shaped waiter tries to take opIn after the holder's release; a compare-and-swap
// that fails only because of those counts must be retried, not waited out, since no
// release will follow to kick it.
func TestOpLockWaitersLeave(t *testing.T) {
	var dl atomic.Int64
	for round := range 3000 {
		s := &Stream{closed: make(chan struct{})}
		if err := s.acquire(&s.rop, &dl, "read"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if s.acquire(&s.rop, &dl, "read") == nil {
					s.rop.release(opHeld | opIn)
				}
			})
		}
		entered := make(chan struct{})
		go func() {
			s.rop.enter()
			s.rop.release(opIn)
			close(entered)
		}()
		for s.rop.state.Load() != opHeld|opIn+4*opWaitOp+opWaitIn {
			runtime.Gosched()
		}
		close(s.closed) // the operation waiters leave, each uncounting itself
		s.rop.release(opHeld | opIn)
		select {
		case <-entered:
		case <-time.After(time.Minute):
			t.Fatalf("round %d: opIn free but its waiter never took it: state %#x", round, s.rop.state.Load())
		}
		wg.Wait()
	}
}
