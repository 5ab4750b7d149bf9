package shm

import (
	"sync/atomic"
	"unsafe"
)

// Ring sizes: a slot's ring is a power of two in [MinRingSize, MaxRingSize] (see pool.go
// for the layout of the segments that hold them).
const (
	MinRingSize = 4 << 10
	MaxRingSize = 1 << 30
)

// Flag bits of a control line. Every bit is sticky: once a side has published a bit it
// never clears it, and a reader treats a cleared bit as a protocol violation.
//
// In the producer line the bits say: fDone = done writing (CloseWrite, the CDC
// peer_done_writing), fClosed = the producer closed the connection, fAbort = abnormal
// close (the CDC peer_conn_abort), fReleased = the producer's stream is closed and it
// never touches this slot again (link version 3; the owner may zero and reuse the slot
// once its own stream is closed too). In the consumer line: fDone = done reading
// (CloseRead), fClosed and fAbort as above.
const (
	fDone      uint32 = 1 << 0
	fClosed    uint32 = 1 << 1
	fAbort     uint32 = 1 << 2
	fReleased  uint32 = 1 << 3
	fKnown            = fDone | fClosed | fAbort // consumer line
	fKnownProd        = fKnown | fReleased       // producer line
)

// Wake-up bits, carried per slot in a WAKE link message.
const (
	wakeData  byte = 1 << 0 // the receiver's ring has new data (informational: see Stream.poll)
	wakeSpace byte = 1 << 1 // the sender's ring has room again (informational)
	wakeKnown      = wakeData | wakeSpace
)

// line is one control line of a DMB header. It is written by exactly one side and read by
// the other; lines are 128 bytes apart so that the two writers never share a cache line,
// nor the adjacent line that x86's spatial prefetcher fetches in pairs.
type line struct {
	cursor atomic.Uint64 // monotonic byte count: producer cursor or consumer cursor
	flags  atomic.Uint32 // fDone | fClosed | fAbort (| fReleased in the producer line), sticky
	sleep  atomic.Uint32 // 0 = awake; otherwise the sequence number of an announced sleep
	window atomic.Uint32 // consumer line: the ring bytes the owner populated (see firstWindow); unused in the producer line
	_      [128 - 20]byte
}

// header is the control area of a slot. The owner of the slot is the
// receiver of the data in its ring.
type header struct {
	prod line // written by the peer (the producer), read by the owner
	cons line // written by the owner (the consumer), read by the peer
}

// The layout is part of the protocol between two processes built from this package:
// these fail to compile if it changes.
var (
	_ [unsafe.Sizeof(header{}) - 256]byte
	_ [256 - unsafe.Sizeof(header{})]byte
	_ [unsafe.Offsetof(header{}.cons) - 128]byte
	_ [128 - unsafe.Offsetof(header{}.cons)]byte
	_ [unsafe.Offsetof(header{}.cons.window) - 16]byte
	_ [16 - unsafe.Offsetof(header{}.cons.window)]byte
)

// The populated window. The owner of a slot allocates (and is charged for) the pages of
// its ring, but only as the ring is used: when it hands the slot out, its header and the
// first firstWindow bytes of its ring are populated, and it publishes that length in its
// consumer line's window word. The producer writes only at ring offsets below the window
// and does not wrap before the window is the whole ring. Each time the owner finds the
// window half filled (the producer cursor at its middle or beyond), it populates the next
// window's worth of pages in its own mapping, doubling the window, and only then
// publishes it. When the
// slot is freed, the pages beyond the first window are returned to the system. So an
// idle connection holds a page per ring, not the ring, and the peer never touches a page
// of the owner's memfd that the owner did not allocate first.
const firstWindow = 4 << 10

// initialWindow returns the window of a ring of size bytes when its slot is handed out.
func initialWindow(size int) int { return min(size, firstWindow) }

// validRingSize reports whether n is an acceptable ring size.
func validRingSize(n int) bool {
	return n >= MinRingSize && n <= MaxRingSize && n&(n-1) == 0
}
