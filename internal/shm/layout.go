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

// inlineMax is the longest write whose bytes a producer also copies into its cursor
// line (see cursorLine).
const inlineMax = 96

// cursorLine holds one side's cursor: a monotonic byte count. The producer's line also
// carries the tag and length of its last write, and a copy of it if it is at most
// inlineMax bytes long (link version 6): a reader that polls the cursor then finds a
// small write's bytes in the line it fetched for the cursor, instead of fetching the
// ring's line from the writer's CPU as well. The ring stays authoritative: the producer
// writes the bytes there first, and a reader takes the copy only if it is whole and
// covers what it reads (see loadInline), else it reads the ring. The consumer's line
// leaves these words zero.
type cursorLine struct {
	cursor atomic.Uint64 // producer cursor or consumer cursor
	tag    atomic.Uint64 // producer's: its cursor at the end of the write in inline, stored before the copy (see storeInline)
	length atomic.Uint32 // producer's: the length of that write; beyond inlineMax, there is no copy
	_      [12]byte
	inline [inlineMax / 8]atomic.Uint64 // producer's: the bytes of that write, from the first word on
}

// loadInline copies the unread bytes [cons, cons+len(b)) into b from the inline copy of
// producer line l and reports whether it did; prod is the producer cursor the reader
// loaded (before these loads) and validated, and prod-cons >= len(b). It takes the copy
// only if it is that of the write ending at prod and covers cons, read whole: the tag
// equals prod before and after the bytes are loaded. A producer stores a new tag before
// it overwrites the bytes (storeInline), so a copy that changed under the loads fails the
// second check, and the loads are atomic, hence ordered on every architecture. Whatever a
// peer writes into l, b gets only bytes of l's inline area: a lying copy costs the peer's
// own stream wrong data, which it could have written into the ring as well.
func (l *cursorLine) loadInline(b []byte, cons, prod uint64) bool {
	if l.tag.Load() != prod {
		return false
	}
	n, unread := uint64(l.length.Load()), prod-cons
	if n > inlineMax || unread > n || uint64(len(b)) > unread {
		return false
	}
	off := n - unread
	var w [inlineMax / 8]uint64
	for i := off / 8; i < (off+uint64(len(b))+7)/8; i++ {
		w[i] = l.inline[i].Load()
	}
	if l.tag.Load() != prod {
		return false
	}
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&w)), inlineMax)[off:])
	return true
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
// (link version 6): these fail to compile if it changes.
var (
	_ [unsafe.Sizeof(cursorLine{}) - 128]byte
	_ [128 - unsafe.Sizeof(cursorLine{})]byte
	_ [unsafe.Offsetof(cursorLine{}.tag) - 8]byte
	_ [8 - unsafe.Offsetof(cursorLine{}.tag)]byte
	_ [unsafe.Offsetof(cursorLine{}.length) - 16]byte
	_ [16 - unsafe.Offsetof(cursorLine{}.length)]byte
	_ [unsafe.Offsetof(cursorLine{}.inline) - 32]byte
	_ [32 - unsafe.Offsetof(cursorLine{}.inline)]byte
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
