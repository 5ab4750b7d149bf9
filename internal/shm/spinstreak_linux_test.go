package shm

import "testing"

// TestNewStreamSpinStreak checks the process-wide streak new streams start from: after
// 4 spins in a row (of any stream) ended in a park, a new stream's waiters start with the
// reduced spin budget; one spin that succeeds gives the next new stream the full one.
func TestNewStreamSpinStreak(t *testing.T) {
	defer spinStreak.Store(spinStreak.Load())
	spinStreak.Store(0)
	for range 3 {
		noteSpin(false)
	}
	if m := newWaiterMisses(); m != 0 {
		t.Fatalf("after 3 failed spins a new waiter starts with %d misses, want 0", m)
	}
	noteSpin(false)
	if m := newWaiterMisses(); m != 4 {
		t.Fatalf("after 4 failed spins a new waiter starts with %d misses, want 4", m)
	}
	for range 20 {
		noteSpin(false)
	}
	if v := spinStreak.Load(); v != 8 {
		t.Fatalf("streak %d after 24 failed spins, want it capped at 8", v)
	}
	a, b := pair(t, MinRingSize, MinRingSize)
	defer a.Close()
	defer b.Close()
	for _, w := range []*waiter{&a.rw, &a.ww, &b.rw, &b.ww} {
		if w.misses != 4 {
			t.Fatalf("a stream made after failed spins has a waiter with %d misses, want 4", w.misses)
		}
	}
	noteSpin(true)
	if m := newWaiterMisses(); m != 0 {
		t.Fatalf("after a successful spin a new waiter starts with %d misses, want 0", m)
	}
}
