package shm

import (
	"sync/atomic"
	"time"
)

// opLock serialises one direction's operations (Read and WriteTo, or Write and
// ReadFrom). Unlike a sync.Mutex, waiting for it ends at the operation's deadline or at
// Close: a Read behind a WriteTo whose w blocks still has its deadline. Taking a free
// lock is one compare-and-swap and releasing it one atomic add, so an operation that
// does not wait pays no channel operation.
//
// The state word holds opHeld while the lock is held, plus opWaiter for each goroutine
// waiting for it. A waiter counts itself before it tries the lock, and a release clears
// opHeld before it looks for waiters, so either the waiter's try sees the lock free or
// the release sees the waiter and kicks: no wake-up is lost. Kicks go through a channel
// of capacity 1 and may be spurious or coalesce; a kicked waiter tries again, and one
// that fails waits for the next release, which will see it.
type opLock struct {
	state atomic.Int32
	kick  chan struct{} // capacity 1: a release happened while someone waited
}

const (
	opHeld   int32 = 1
	opWaiter int32 = 2
)

func newOpLock() opLock { return opLock{kick: make(chan struct{}, 1)} }

// tryLock takes the lock if it is free and reports whether it did.
func (o *opLock) tryLock() bool {
	for {
		v := o.state.Load()
		if v&opHeld != 0 {
			return false
		}
		if o.state.CompareAndSwap(v, v|opHeld) {
			return true
		}
	}
}

// unlock releases the lock and kicks a waiter if there is one.
func (o *opLock) unlock() {
	if o.state.Add(-opHeld) != 0 {
		kickOne(o.kick)
	}
}

// acquire takes op, one of the stream's two operation locks, waiting for it at most
// until the deadline in dl or Close.
func (s *Stream) acquire(op *opLock, dl *atomic.Int64, name string) error {
	if op.state.CompareAndSwap(0, opHeld) {
		return nil
	}
	return s.acquireSlow(op, dl, name)
}

// acquireSlow is acquire for a lock that was not free.
func (s *Stream) acquireSlow(op *opLock, dl *atomic.Int64, name string) error {
	op.state.Add(opWaiter)
	defer op.state.Add(-opWaiter)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if op.tryLock() {
			return nil
		}
		var timeout <-chan time.Time
		if d := dl.Load(); d != 0 {
			left := time.Until(time.Unix(0, d))
			if left <= 0 {
				return &timeoutError{name}
			}
			if timer == nil {
				timer = time.NewTimer(left)
			} else {
				timer.Reset(left)
			}
			timeout = timer.C
		}
		select {
		case <-op.kick:
		case <-s.closed:
			return errClosed(name)
		case <-timeout:
			if err := deadlinePassed(dl, name); err != nil {
				return err
			}
		}
	}
}
