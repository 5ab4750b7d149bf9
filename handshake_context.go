package smc

import (
	"context"
	"sync"
	"time"
)

// handshakeContext is the context a handshake runs under: it ends at its deadline,
// when its parent ends, and when cancel is called (by Close, and when the handshake
// is over). Unlike context.WithDeadline it arms no timer until Done is first called:
// the handshake's TCP I/O is bounded by the TCP deadlines runHandshake sets, so a
// handshake that never waits on shared-memory set-up pays for no timer.
type handshakeContext struct {
	parent   context.Context
	deadline time.Time

	mu         sync.Mutex
	done       chan struct{} // made by Done or cancel, closed by cancel; guarded by mu
	err        error         // why the context ended, set once by cancel; guarded by mu
	timer      *time.Timer   // ends the context at its deadline, armed by Done; guarded by mu
	stopParent func() bool   // stops the watch of the parent, or nil; guarded by mu
}

// closedChan is the Done channel of a context that ended before Done was called.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// An interrupter is told when a handshake's context ended because its parent did.
type interrupter interface {
	interruptHandshake(h *handshakeContext)
}

// start makes the zero h a context that ends at deadline (no later than the
// parent's) or when parent ends; in the latter case, it calls
// on.interruptHandshake(h) once h has ended. Call it once, before h is shared.
func (h *handshakeContext) start(parent context.Context, deadline time.Time, on interrupter) {
	h.parent, h.deadline = parent, deadline
	if parent.Done() != nil {
		h.mu.Lock() // the callback may run at once, and cancel reads stopParent
		h.stopParent = context.AfterFunc(parent, func() {
			h.cancel(parent.Err())
			on.interruptHandshake(h)
		})
		h.mu.Unlock()
	}
}

// Deadline returns the handshake's deadline, which is never later than the parent's.
func (h *handshakeContext) Deadline() (time.Time, bool) { return h.deadline, true }

// Value returns the parent's value for key.
func (h *handshakeContext) Value(key any) any { return h.parent.Value(key) }

// Done returns a channel that is closed when the context ends. The first call arms
// the deadline's timer.
func (h *handshakeContext) Done() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done != nil {
		return h.done
	}
	if h.endedLocked() {
		return h.done
	}
	h.done = make(chan struct{})
	h.timer = time.AfterFunc(time.Until(h.deadline), func() { h.cancel(context.DeadlineExceeded) })
	return h.done
}

// Err returns nil while the context lasts, and then why it ended: the parent's
// error, context.DeadlineExceeded, or context.Canceled.
func (h *handshakeContext) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endedLocked()
	return h.err
}

// endedLocked ends the context if its parent ended or its deadline passed, and
// reports whether it has ended. h.mu must be held.
func (h *handshakeContext) endedLocked() bool {
	if h.err == nil {
		if err := h.parent.Err(); err != nil {
			h.cancelLocked(err)
		} else if !time.Now().Before(h.deadline) {
			h.cancelLocked(context.DeadlineExceeded)
		}
	}
	return h.err != nil
}

// cancel ends the context with err, unless it has ended already.
func (h *handshakeContext) cancel(err error) {
	h.mu.Lock()
	h.cancelLocked(err)
	h.mu.Unlock()
}

func (h *handshakeContext) cancelLocked(err error) {
	if h.err != nil {
		return
	}
	h.err = err
	if h.done == nil {
		h.done = closedChan
	} else {
		close(h.done)
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	if h.stopParent != nil {
		h.stopParent()
	}
}
