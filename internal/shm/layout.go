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

// Flag bits of a control line (ctlLine). Every bit is sticky: once a side has published a bit it
// never clears it, and a reader treats a cleared bit as a protocol violation.
//
// In the producer's line the bits say: fDone = done writing (CloseWrite, the CDC
// peer_done_writing), fClosed = the producer closed the connection, fAbort = abnormal
// close (the CDC peer_conn_abort), fReleased = the producer's stream is closed and it
// never touches this slot again (the owner may zero and reuse the slot once its own
// stream is closed too). In the consumer's line: fDone = done reading
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
	wakeGrow  byte = 1 << 2 // the sender waits at the edge of the receiver's window: grow it
	wakeKnown      = wakeData | wakeSpace | wakeGrow
)

// A slot's control area is four 128-byte lines, each written by one side only, 128
// bytes apart so that two writers never share a cache line nor the adjacent line that
// x86's spatial prefetcher fetches in pairs. The cursors, written on every publish and
// every consume, have lines of their own; flags, sleep and window words, written only
// at a close, a park or a window's growth, sit on control lines that stay in the
// reader's cache while a stream runs. So a writer that has enough free space by its
// last view of the consumer cursor checks the consumer's flags and sleep word without
// fetching the line the consumer just wrote, and a reader's store of its cursor does
// not take a line from the writer that it must fetch back.

// cursorLine holds one side's cursor: a monotonic byte count.
type cursorLine struct {
	cursor atomic.Uint64 // producer cursor or consumer cursor
	_      [128 - 8]byte
}

// ctlLine holds one side's control words.
type ctlLine struct {
	flags  atomic.Uint32 // fDone | fClosed | fAbort (| fReleased in the producer's), sticky
	sleep  atomic.Uint32 // 0 = awake; otherwise the sequence number of an announced sleep
	window atomic.Uint32 // consumer's: the ring bytes the owner populated (see firstWindow), | winFinal; producer's: 0, or the wrap it declared (see txCursor.freeze)
	accept atomic.Uint32 // consumer's, in a server slot: the largest client ring its offer accepts
	token  atomic.Uint64 // consumer's: the slot's own token in its current use, stored when it is handed out
	bound  atomic.Uint64 // consumer's, in a client slot: the server slot's token its stream is bound to
	_      [128 - 32]byte
}

// header is the control area of a slot. The owner of the slot is the
// receiver of the data in its ring.
type header struct {
	prod    cursorLine // written by the peer (the producer), read by the owner
	cons    cursorLine // written by the owner (the consumer), read by the peer
	prodCtl ctlLine    // written by the peer, read by the owner
	consCtl ctlLine    // written by the owner, read by the peer
}

// The layout is part of the protocol between two processes built from this package
// (link version 5): these fail to compile if it changes.
var (
	_ [unsafe.Sizeof(header{}) - SlotHeaderSize]byte
	_ [SlotHeaderSize - unsafe.Sizeof(header{})]byte
	_ [unsafe.Offsetof(header{}.cons) - 128]byte
	_ [128 - unsafe.Offsetof(header{}.cons)]byte
	_ [unsafe.Offsetof(header{}.prodCtl) - 256]byte
	_ [256 - unsafe.Offsetof(header{}.prodCtl)]byte
	_ [unsafe.Offsetof(header{}.consCtl) - 384]byte
	_ [384 - unsafe.Offsetof(header{}.consCtl)]byte
	_ [unsafe.Offsetof(header{}.consCtl.sleep) - 4]byte
	_ [4 - unsafe.Offsetof(header{}.consCtl.sleep)]byte
	_ [unsafe.Offsetof(header{}.consCtl.window) - 8]byte
	_ [8 - unsafe.Offsetof(header{}.consCtl.window)]byte
	_ [unsafe.Offsetof(header{}.consCtl.accept) - 12]byte
	_ [12 - unsafe.Offsetof(header{}.consCtl.accept)]byte
	_ [unsafe.Offsetof(header{}.consCtl.token) - 16]byte
	_ [16 - unsafe.Offsetof(header{}.consCtl.token)]byte
	_ [unsafe.Offsetof(header{}.consCtl.bound) - 24]byte
	_ [24 - unsafe.Offsetof(header{}.consCtl.bound)]byte
)

// The populated window. The owner of a slot allocates (and is charged for) the pages of
// its ring, but only as the ring is used: when it hands the slot out, its header and the
// first firstWindow bytes of its ring are populated, and it publishes that length in its
// consumer control line's window word. The producer writes only at ring offsets below the window
// and does not wrap before the window is the whole ring. Each time the owner finds the
// window half filled (the producer cursor at its middle or beyond), it populates the next
// window's worth of pages in its own mapping, doubling the window, and only then
// publishes it. When the
// slot is freed, the pages beyond the first window are returned to the system. So an
// idle connection holds a page per ring, not the ring, and the peer never touches a page
// of the owner's memfd that the owner did not allocate first.
const firstWindow = 4 << 10

// winFinal, in the consumer's window word, says that the owner will not grow the window
// any more (its process bound refused the pages): the producer then wraps at it.
const winFinal uint32 = 1 << 31

// initialWindow returns the window of a ring of size bytes when its slot is handed out.
func initialWindow(size int) int { return min(size, firstWindow) }

// validRingSize reports whether n is an acceptable ring size.
func validRingSize(n int) bool {
	return n >= MinRingSize && n <= MaxRingSize && n&(n-1) == 0
}
