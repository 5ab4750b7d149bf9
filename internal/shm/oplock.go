package shm

import (
	"sync/atomic"
	"time"
)

// opLock is one direction's lock word: it serialises the direction's operations (Read
// and WriteTo, or Write and ReadFrom) and guards its private state (rx and rw, or tx and
// ww). It has two bits:
//
//   - opHeld: an operation runs. Read and Write hold it for their whole call, WriteTo and
//     ReadFrom also while their w or r runs. Waiting for it ends at the operation's
//     deadline or at Close: a Read behind a WriteTo whose w blocks still has its deadline.
//   - opIn: a goroutine uses the direction's state or its ring. Read and Write hold it
//     with opHeld; WriteTo and ReadFrom hold it except while w or r runs; Close,
//     CloseRead and CloseWrite take it alone, without waiting for a w or an r, while they
//     publish flags or tear down. Waiting for it has no deadline: whoever holds it
//     returns promptly once the stream's state changed (Close kicks the waiters first).
//
// A Read or Write that finds the word zero takes both bits with one compare-and-swap and
// releases them with one atomic add. The rest of the word counts goroutines waiting for
// an operation (opWaitOp each) and for opIn alone (opWaitIn each). A waiter counts
// itself before it tries the word, and a release clears its bits before it looks for
// waiters, so either the try sees the bits clear or the release sees the waiter and
// kicks its class: no wake-up is lost. Kicks go through a channel of capacity 1 per
// class and may be spurious or coalesce; all waiters of a class wait for the same bits,
// so one that is kicked and finds them taken again waits for that taker's release,
// which will see it. A class's channel is made by its first waiter, before that one
// counts itself: a release that sees a waiter finds the channel, and a stream whose
// lock nobody waits for makes none. The zero opLock is free.
type opLock struct {
	state  atomic.Int64
	kickOp atomic.Pointer[chan struct{}] // capacity 1: bits were released while an operation waited
	kickIn atomic.Pointer[chan struct{}] // capacity 1: opIn was released while someone waited for it
}

const (
	opIn     int64 = 1 << 0
	opHeld   int64 = 1 << 1
	opWaitOp int64 = 1 << 2  // bits 2-31: waiters for an operation
	opWaitIn int64 = 1 << 32 // bits 32-62: waiters for opIn alone

	opWaitOpMask = opWaitIn - opWaitOp
)

// kickChan returns the kick channel in p, making it if it is not there yet.
func kickChan(p *atomic.Pointer[chan struct{}]) chan struct{} {
	if c := p.Load(); c != nil {
		return *c
	}
	c := make(chan struct{}, 1)
	if p.CompareAndSwap(nil, &c) {
		return c
	}
	return *p.Load()
}

// acquire starts an operation on op, one of the stream's two lock words: it takes
// opHeld and opIn, waiting for them at most until the deadline in dl or Close.
func (s *Stream) acquire(op *opLock, dl *atomic.Int64, name string) error {
	if op.state.CompareAndSwap(0, opHeld|opIn) {
		return nil
	}
	return s.acquireSlow(op, dl, name)
}

// acquireSlow is acquire for a word that was not zero.
func (s *Stream) acquireSlow(op *opLock, dl *atomic.Int64, name string) error {
	kick := kickChan(&op.kickOp)
	op.state.Add(opWaitOp)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if v := op.state.Load(); v&(opHeld|opIn) == 0 {
			if op.state.CompareAndSwap(v, v-opWaitOp+opHeld+opIn) {
				return nil
			}
			continue // the counts changed, not the bits: no release will kick us for it
		}
		var timeout <-chan time.Time
		if d := dl.Load(); d != 0 {
			left := time.Until(time.Unix(0, d))
			if left <= 0 {
				op.state.Add(-opWaitOp)
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
		case <-kick:
		case <-s.closed:
			op.state.Add(-opWaitOp)
			return errClosed(name)
		case <-timeout:
			if err := deadlinePassed(dl, name); err != nil {
				op.state.Add(-opWaitOp)
				return err
			}
		}
	}
}

// enter takes opIn alone, waiting for it without a deadline.
func (o *opLock) enter() {
	if v := o.state.Load(); v&opIn == 0 && o.state.CompareAndSwap(v, v|opIn) {
		return
	}
	kick := kickChan(&o.kickIn)
	o.state.Add(opWaitIn)
	for {
		if v := o.state.Load(); v&opIn == 0 {
			if o.state.CompareAndSwap(v, v-opWaitIn+opIn) {
				return
			}
			continue // the counts changed, not the bits: no release will kick us for it
		}
		<-kick
	}
}

// release clears bits (opHeld, opIn or both, which the caller holds) and kicks the
// waiters that may now proceed.
func (o *opLock) release(bits int64) {
	v := o.state.Add(-bits)
	if v&opWaitOpMask != 0 {
		kickOne(*o.kickOp.Load()) // made by the waiter before it counted itself
	}
	if v >= opWaitIn {
		kickOne(*o.kickIn.Load())
	}
}
