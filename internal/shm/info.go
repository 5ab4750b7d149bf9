package shm

import "unsafe"

// Counts are a stream's byte counts, as its cursors in shared memory show them.
type Counts struct {
	Sent          uint64 // bytes written into the peer's ring, ever
	Received      uint64 // bytes the peer wrote into our ring, ever
	SendQueued    uint64 // bytes in the peer's ring it has not read yet
	ReceiveQueued uint64 // bytes in our ring not read yet
}

// Counts returns the stream's byte counts, read from the four cursors of its two rings
// (two of which the peer writes: they are for display, clamped but not validated); ok
// is false once the stream is closed. It takes no lock that Read or Write holds.
func (s *Stream) Counts() (c Counts, ok bool) {
	// Close sets stClosed under mu before it releases the rings: while mu is held and
	// it is not set, the cursors are this stream's.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load()&stClosed != 0 {
		return Counts{}, false
	}
	rp, rc := s.rxh.prod.cursor.Load(), s.rxh.cons.cursor.Load()
	tp, tc := s.txh.prod.cursor.Load(), s.txh.cons.cursor.Load()
	return Counts{
		Sent:          tp,
		Received:      rp,
		SendQueued:    min(tp-tc, uint64(s.peerSeg.ringSize)),
		ReceiveQueued: min(rp-rc, uint64(s.own.ringSize)),
	}, true
}

// CursorAddrs returns the addresses, in this process, of the producer and consumer
// cursors of the ring the stream receives into, then of the ring it sends into: what
// a reader in another process with the right to read this one's memory reads
// [Stream.Counts] from (smc ss). They stay valid until Close.
func (s *Stream) CursorAddrs() [4]uintptr {
	return [4]uintptr{
		uintptr(unsafe.Pointer(&s.rxh.prod.cursor)), uintptr(unsafe.Pointer(&s.rxh.cons.cursor)),
		uintptr(unsafe.Pointer(&s.txh.prod.cursor)), uintptr(unsafe.Pointer(&s.txh.cons.cursor)),
	}
}
