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
	size  uint64 // ring size, a power of two; the producer's wrap once it declared one
	cons  uint64 // consumer cursor: bytes consumed (and published) so far
	prod  uint64 // last validated producer cursor from the peer
	flags uint32 // last validated producer flags from the peer
	win   uint64 // the window we published (see firstWindow): 0 < win
	wrap  uint32 // the producer's wrap as last validated, 0 until it declares one
}

// observe validates a producer line read from shared memory (flags loaded before prod,
// its wrap word after) against the previous observation and, when it is valid, records
// it. A wrap (see txCursor.freeze) is declared once, as a power of two within the window
// we published, and then the ring's size for both sides: the producer had not passed it
// when it declared it, so every byte it wrote before is at the same offset either way.
func (r *rxCursor) observe(flags uint32, prod uint64, wrap uint32) error {
	size := r.size
	if wrap != r.wrap {
		w := uint64(wrap)
		switch {
		case r.wrap != 0:
			return violation("producer's wrap changed from %d to %d", r.wrap, wrap)
		case w&(w-1) != 0 || w > r.win || w > r.size:
			return violation("producer's wrap %d is not a power of two within the window of %d bytes", wrap, r.win)
		}
		size = w
	}
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
	if avail > size {
		return violation("producer cursor %d claims %d bytes in a %d-byte ring (consumer at %d)", prod, avail, size, r.cons)
	}
	if avail < r.prod-r.cons {
		return violation("producer cursor moved backwards from %d to %d", r.prod, prod)
	}
	if r.win < size && prod > r.win {
		// Below a whole-ring window the producer has not wrapped, so its cursor is
		// its ring offset, which stays within the window.
		return violation("producer cursor %d beyond the window of %d bytes", prod, r.win)
	}
	r.prod, r.flags, r.size, r.wrap = prod, flags, size, wrap
	return nil
}

// avail returns the number of validated, unread bytes.
func (r *rxCursor) avail() uint64 { return r.prod - r.cons }

// eof reports whether the peer is done writing and every byte it wrote was consumed.
func (r *rxCursor) eof() bool { return r.flags&(fDone|fClosed) != 0 && r.prod == r.cons }

// txCursor is the sender's view of the peer's ring. It is guarded by Stream.wop (opIn).
type txCursor struct {
	size   uint64 // ring size, a power of two; the window we wrap at once frozen
	prod   uint64 // producer cursor: bytes written (and published) so far
	cons   uint64 // last validated consumer cursor from the peer
	flags  uint32 // last validated consumer flags from the peer
	win    uint64 // the window we accepted, counted against the cap on peer memory
	rawW   uint32 // the window word as last loaded, to notice when the peer changes it
	frozen bool   // we wrap at win, which never changes again (see freeze)
}

// observe validates a consumer line read from shared memory (flags loaded before cons,
// win loaded with them). A window beyond the ring is clamped to the ring: what a lying
// owner gains with it is that we write into pages of its memfd it did not populate, which
// are then charged to us, no more than the ring we accepted. A window that shrinks, or
// that is not a power of two, is a violation (we may have written up to its old end).
//
// A growth of the window is accepted only if count(n) (the cap on peer memory) allows
// its n bytes; if it does not, or if the owner marked its window final (winFinal), the
// cursor freezes at the window it accepted.
func (t *txCursor) observe(flags uint32, cons uint64, win uint32, count func(n int64) bool) error {
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
	if t.frozen {
		// We no longer look at the window: its pages we touch are those of win.
		t.cons, t.flags, t.rawW = cons, flags, win
		return nil
	}
	w := min(uint64(win&^winFinal), t.size)
	if w < t.win {
		return violation("consumer window shrank from %d to %d bytes", t.win, w)
	}
	if w&(w-1) != 0 {
		return violation("consumer window of %d bytes is not a power of two", w)
	}
	final := win&winFinal != 0
	if w > t.win && !count(int64(w-t.win)) {
		w, final = t.win, true
	}
	t.cons, t.flags, t.win, t.rawW = cons, flags, w, win
	if final && w < t.size {
		t.freeze()
	}
	return nil
}

// freeze makes the window we accepted the ring we wrap at, for good: the owner will not
// grow it, or we cannot count its growth against the cap on peer memory. Below a
// whole-ring window the producer has not wrapped (its cursor is at most the window),
// so every byte it wrote is at the same offset in the smaller ring. The stream declares
// the wrap to the owner (its producer control line's window word) before it publishes a
// cursor beyond it.
func (t *txCursor) freeze() {
	t.size, t.frozen = t.win, true
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
