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
// close (the CDC peer_conn_abort). In the consumer line: fDone = done reading
// (CloseRead), fClosed and fAbort as above.
const (
	fDone   uint32 = 1 << 0
	fClosed uint32 = 1 << 1
	fAbort  uint32 = 1 << 2
	fKnown         = fDone | fClosed | fAbort
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
	flags  atomic.Uint32 // fDone | fClosed | fAbort, sticky
	sleep  atomic.Uint32 // 0 = awake; otherwise the sequence number of an announced sleep
	_      [128 - 16]byte
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
)

// validRingSize reports whether n is an acceptable ring size.
func validRingSize(n int) bool {
	return n >= MinRingSize && n <= MaxRingSize && n&(n-1) == 0
}
