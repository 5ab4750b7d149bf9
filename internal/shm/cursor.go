package shm

// The cursor state machines below hold a side's private view of one ring and validate every
// value read from the peer's control line before it is used. They never touch shared
// memory themselves, which keeps them trivially fuzzable: the stream loads a line's words
// once (flags first, then the cursor) and hands them to observe.
//
// Cursors are 64-bit monotonic byte counts, not SMC's 16-bit wrap + 32-bit count pairs: one
// 64-bit word is loaded and stored atomically, so no reader ever sees a torn wrap/count pair,
// and the position in the ring is simply cursor & (size-1) for a power-of-two size. They
// would wrap after 2^64 bytes (about 9 years at 60 GB/s); even then every comparison below
// is a modular difference, which stays correct across a wrap.

// rxCursor is the receiver's view of its own ring. It is guarded by Stream.rop (opIn).
type rxCursor struct {
	size  uint64 // ring size, a power of two
	cons  uint64 // consumer cursor: bytes consumed (and published) so far
	prod  uint64 // last validated producer cursor from the peer
	flags uint32 // last validated producer flags from the peer
	win   uint64 // the window we published (see firstWindow): 0 < win <= size
}

// observe validates a producer line read from shared memory (flags loaded before prod)
// against the previous observation and, when it is valid, records it.
func (r *rxCursor) observe(flags uint32, prod uint64) error {
	if flags&^fKnownProd != 0 {
		return violation("unknown producer flags %#x", flags)
	}
	if flags&r.flags != r.flags {
		return violation("producer flags %#x cleared bits of %#x", flags, r.flags)
	}
	if flags&fAbort != 0 {
		// The data no longer matters; the stream is reset whatever the cursor says.
		r.flags = flags
		return nil
	}
	if r.flags&(fDone|fClosed) != 0 && prod != r.prod {
		// The producer stores its last cursor before it sets fDone; once we have seen
		// fDone (and loaded the cursor after it) the cursor is final.
		return violation("producer cursor moved from %d to %d after done writing", r.prod, prod)
	}
	avail := prod - r.cons
	if avail > r.size {
		return violation("producer cursor %d claims %d bytes in a %d-byte ring (consumer at %d)", prod, avail, r.size, r.cons)
	}
	if avail < r.prod-r.cons {
		return violation("producer cursor moved backwards from %d to %d", r.prod, prod)
	}
	if r.win < r.size && prod > r.win {
		// Below a whole-ring window the producer has not wrapped, so its cursor is
		// its ring offset, which stays within the window.
		return violation("producer cursor %d beyond the window of %d bytes", prod, r.win)
	}
	r.prod, r.flags = prod, flags
	return nil
}

// avail returns the number of validated, unread bytes.
func (r *rxCursor) avail() uint64 { return r.prod - r.cons }

// eof reports whether the peer is done writing and every byte it wrote was consumed.
func (r *rxCursor) eof() bool { return r.flags&(fDone|fClosed) != 0 && r.prod == r.cons }

// txCursor is the sender's view of the peer's ring. It is guarded by Stream.wop (opIn).
type txCursor struct {
	size  uint64 // ring size, a power of two
	prod  uint64 // producer cursor: bytes written (and published) so far
	cons  uint64 // last validated consumer cursor from the peer
	flags uint32 // last validated consumer flags from the peer
	win   uint64 // last validated window from the peer, clamped to size; 0 until the first
	rawW  uint32 // the window word as last loaded, to notice when the peer changes it
}

// observe validates a consumer line read from shared memory (flags loaded before cons,
// win loaded with them). A window beyond the ring is clamped to the ring: what a lying
// owner gains with it is that we write into pages of its memfd it did not populate, which
// are then charged to us, no more than the ring we accepted. A window that shrinks is a
// violation (we may have written up to its old end).
func (t *txCursor) observe(flags uint32, cons uint64, win uint32) error {
	if flags&^fKnown != 0 {
		return violation("unknown consumer flags %#x", flags)
	}
	if flags&t.flags != t.flags {
		return violation("consumer flags %#x cleared bits of %#x", flags, t.flags)
	}
	if flags&fAbort != 0 {
		t.flags = flags
		return nil
	}
	// The consumer cursor may only move forward, and never past what we produced. A
	// backwards move shows up as a huge modular difference, so one comparison does both.
	if cons-t.cons > t.prod-t.cons {
		return violation("consumer cursor moved from %d to %d (producer at %d)", t.cons, cons, t.prod)
	}
	w := min(uint64(win), t.size)
	if w < t.win {
		return violation("consumer window shrank from %d to %d bytes", t.win, w)
	}
	t.cons, t.flags, t.win, t.rawW = cons, flags, w, win
	return nil
}

// free returns how many bytes may be written without overwriting unconsumed data or
// writing beyond the window. Below a whole-ring window the producer does not wrap: its
// cursor is its ring offset, at most the window (free never let it further, and the
// window never shrinks).
func (t *txCursor) free() uint64 {
	f := t.size - (t.prod - t.cons)
	if t.win < t.size {
		f = min(f, t.win-t.prod)
	}
	return f
}

// chunk returns the most a write copies before publishing: a quarter of the ring, and
// half the window (at least a byte, whatever the peer published) while the window is
// not the whole ring, so that the owner sees the window half filled, and grows it,
// while the other half is being written.
func (t *txCursor) chunk() uint64 {
	if t.win < t.size {
		return min(t.size/4, max(1, t.win/2))
	}
	return t.size / 4
}
