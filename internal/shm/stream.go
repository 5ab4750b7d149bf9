package shm

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Local state bits of a Stream (Stream.state). Bits are only ever added.
const (
	stReadClosed  uint32 = 1 << iota // CloseRead was called
	stWriteClosed                    // CloseWrite was called
	stClosed                         // Close or Abort was called
	stHungUp                         // the link ended under the stream
	stFailed                         // Stream.err is set: reset or protocol violation
)

// A Stream is one full-duplex byte stream over two slots of a link: it receives into a
// slot of its own pool and sends into a slot of the peer's. It has the semantics of a TCP connection: partial reads, io.EOF
// after the peer's CloseWrite, backpressure when the peer's ring is full, deadlines on
// every blocking call, reset errors (wrapping syscall.ECONNRESET) after the peer aborted,
// died or broke the protocol, and errors wrapping net.ErrClosed after Close.
//
// All methods are safe for concurrent use. Concurrent Reads (or Writes) are serialised.
// A Stream has no addresses of its own: the root package wraps it with those of the TCP
// connection that negotiated it.
type Stream struct {
	link    *link
	own     *segment // own segment: data arrives in its slot ownIdx
	ownIdx  int
	ownTok  uint64
	peerSeg *segment // peer segment: data goes to its slot peerIdx
	peerIdx int
	peerTok uint64

	rxRing, txRing []byte  // own slot's ring (data arrives here), the peer slot's (data goes there)
	rxh, txh       *header // their control areas

	local    atomic.Pointer[Stream] // the peer's Stream when it lives in this process, else nil
	localKey localKey               // this stream's entry in localPeers, if any

	state    atomic.Uint32 // st* bits; transitions under mu
	closed   chan struct{} // closed by Close: wakes callers waiting for rop or wop
	rdl, wdl atomic.Int64  // read and write deadlines, unix nanoseconds; 0 = none
	rexp     expiry        // when rdl passed
	wexp     expiry        // when wdl passed

	rop opLock   // serialises Read and WriteTo (opHeld) and guards rx, rw and the own ring (opIn)
	rx  rxCursor // guarded by rop's opIn
	rw  waiter

	winMu sync.Mutex    // serialises growing our ring's window: on a read, or at the producer's request
	win   atomic.Uint64 // the window we published; rx.win follows it (see pollRx); stored under winMu
	final bool          // we published winFinal: the window never grows again; guarded by winMu

	wop   opLock   // serialises Write and ReadFrom (opHeld) and guards tx, ww, asked and the peer's ring (opIn)
	tx    txCursor // guarded by wop's opIn
	ww    waiter
	asked uint64 // the peer's window at whose edge we last asked it to grow (see waitTx)

	mu       sync.Mutex // guards the fields below and state transitions
	err      error      // sticky terminal error once stFailed is set
	pubP     uint32     // flags published in the peer slot's producer control line (txh.prodCtl.flags)
	pubC     uint32     // flags published in our consumer control line (rxh.consCtl.flags)
	unmapped bool       // the slots are no longer ours: publish nothing
	foreign  int        // WriteTo and ReadFrom calls inside a ring while w or r runs
	deferred bool       // Close left the slots' release to the last of those
}

// waiter is one direction's parking state. Its fields are the waiting goroutine's
// (Read's or Write's, inside rop or wop), except where noted.
type waiter struct {
	s      *Stream
	wake   chan struct{} // capacity 1: a pending kick (peer wake-up, poller, close, deadline change)
	seq    uint32        // sequence number of our last announced sleep
	misses uint          // spins in a row that ended in a park
	waits  uint          // waits so far, to space out probing spins
	rung   uint32        // the peer's last announced sleep we already woke
	timer  *time.Timer   // reused deadline timer

	// What the waiter waits for, set before it registers with the poller, which reads
	// them while it is registered (see ready).
	h    lines  // the peer's lines
	c0   uint64 // its cursor as last validated
	step uint64 // how far the cursor must move: 1, or a quarter ring for space
	f0   uint32 // its flags as last validated
	w0   uint32 // its window word as last loaded (a writer at the window's edge waits for it)
	st0  uint32 // the stream's state
	idx  int    // index in poller.waiters, or -1; guarded by poller.mu
}

// lines are the two lines of one side of a slot that a waiter watches: the side's
// cursor line and its control line.
type lines struct {
	cur *cursorLine
	ctl *ctlLine
}

// ready reports whether what w waits for may have happened: the peer's cursor moved by
// step (or backwards, which the waiter reports as a violation), its flags, its window
// or the stream's state changed.
func (w *waiter) ready() bool {
	h := w.h
	return h.cur.cursor.Load()-w.c0 >= w.step || h.ctl.flags.Load() != w.f0 || h.ctl.window.Load() != w.w0 ||
		w.s.state.Load() != w.st0
}

// newStream starts a stream over own slot (g, i) and peer slot (pg, pi) of link l;
// l.mu is held.
func newStream(l *link, g *segment, i int, tok uint64, pg *segment, pi int, ptok uint64) *Stream {
	m := newWaiterMisses()
	s := &Stream{
		link: l, own: g, ownIdx: i, ownTok: tok, peerSeg: pg, peerIdx: pi, peerTok: ptok,
		rxRing: g.ring(i), txRing: pg.ring(pi), rxh: g.header(i), txh: pg.header(pi),
		rx:     rxCursor{size: uint64(g.ringSize), win: uint64(initialWindow(g.ringSize))},
		tx:     txCursor{size: uint64(pg.ringSize), win: uint64(initialWindow(pg.ringSize))},
		rw:     waiter{wake: make(chan struct{}, 1), idx: -1, misses: m},
		ww:     waiter{wake: make(chan struct{}, 1), idx: -1, misses: m},
		closed: make(chan struct{}),
	}
	s.rw.s, s.ww.s = s, s
	s.win.Store(s.rx.win)
	if l.local {
		s.linkLocal(localKeyOf(slotKey{g.ino, tok}, slotKey{pg.ino, ptok}))
	}
	return s
}

// LinkID returns the ID of the link the stream runs over (endpoint ID << 16 | link index).
func (s *Stream) LinkID() uint32 { return s.link.id }

// Token returns the token of the stream's own slot, the one it receives into.
func (s *Stream) Token() uint64 { return s.ownTok }

// PeerToken returns the token of the peer's slot, the one the stream sends into.
func (s *Stream) PeerToken() uint64 { return s.peerTok }

// In-process peers. When both ends of a stream live in one process (tests, a program
// talking to itself), wake-ups go straight to the peer's wait channels instead of through
// the link and its reader goroutine. Both ends name the stream by its two slots: the
// inode of each slot's memfd, which both ends hold, and the slot's token.

type slotKey struct{ ino, tok uint64 }

type localKey struct{ lo, hi slotKey }

func localKeyOf(a, b slotKey) localKey {
	if a.ino > b.ino || a.ino == b.ino && a.tok > b.tok {
		a, b = b, a
	}
	return localKey{a, b}
}

var localPeers struct {
	mu sync.Mutex
	m  map[localKey]*Stream // the first end of each in-process stream, until the second links
}

// linkLocal links s with its in-process peer if that one is already registered, or
// registers s for the peer to find.
func (s *Stream) linkLocal(k localKey) {
	localPeers.mu.Lock()
	defer localPeers.mu.Unlock()
	if p := localPeers.m[k]; p != nil {
		delete(localPeers.m, k)
		s.local.Store(p)
		p.local.Store(s)
		return
	}
	if localPeers.m == nil {
		localPeers.m = make(map[localKey]*Stream)
	}
	localPeers.m[k] = s
	s.localKey = k
}

// unlinkLocal removes s from the registry if its peer never linked.
func (s *Stream) unlinkLocal() {
	localPeers.mu.Lock()
	defer localPeers.mu.Unlock()
	if localPeers.m[s.localKey] == s {
		delete(localPeers.m, s.localKey)
	}
}

// RingSize returns the size of the ring this stream receives into.
func (s *Stream) RingSize() int { return s.own.ringSize }

// PeerRingSize returns the size of the peer's ring, which this stream sends into.
func (s *Stream) PeerRingSize() int { return s.peerSeg.ringSize }

// Read reads up to len(b) bytes that the peer wrote. It blocks until at least one byte is
// available, the peer is done writing (io.EOF once everything was read), the stream fails,
// or the read deadline passes.
//
// Read releases its lock without defer: with as many returns as readLocked has, the
// compiler would not open-code a defer, and its record costs more than a small Read's
// copy. Nothing between acquire and release panics.
func (s *Stream) Read(b []byte) (int, error) {
	if err := s.acquire(&s.rop, &s.rdl, "read"); err != nil {
		return 0, err
	}
	n, err := s.readLocked(b)
	s.rop.release(opHeld | opIn)
	return n, err
}

// readLocked is Read with s.rop held.
func (s *Stream) readLocked(b []byte) (int, error) {
	if err := s.rexp.check(&s.rdl, "read"); err != nil {
		return 0, err
	}
	for {
		if err := s.readable(); err != nil {
			return 0, err
		}
		if err := s.pollRx(); err != nil {
			return 0, err
		}
		if s.rx.avail() > 0 {
			if len(b) == 0 {
				return 0, nil
			}
			return s.consume(b), nil
		}
		if s.rx.eof() {
			return 0, io.EOF
		}
		if len(b) == 0 {
			return 0, nil
		}
		if err := s.waitRx(); err != nil {
			return 0, err
		}
	}
}

// WriteTo writes everything the peer sends to w until io.EOF. It implements io.WriterTo
// without a buffer of its own: w.Write gets the ring's bytes themselves, which are
// released to the peer only once it returned. No lock Close takes is held while w
// runs, so a stalled w never delays Close; the slots are then released when w returns.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	if err := s.acquire(&s.rop, &s.rdl, "read"); err != nil {
		return 0, err
	}
	s.rop.release(opIn) // nextRx and doneRx take it
	defer s.rop.release(opHeld)
	var total int64
	for {
		chunk, err := s.nextRx()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		k, werr := w.Write(chunk)
		if k < 0 || k > len(chunk) {
			k = 0
			if werr == nil {
				werr = fmt.Errorf("smc: shm: invalid write count from %T", w)
			}
		}
		if werr == nil && k < len(chunk) {
			werr = io.ErrShortWrite
		}
		// io.EOF from doneRx is a CloseRead while w ran: the next nextRx ends the copy.
		if err := s.doneRx(uint64(k)); err != nil && err != io.EOF && werr == nil {
			werr = err
		}
		total += int64(k)
		if werr != nil {
			return total, werr
		}
	}
}

// nextRx waits, as Read does, for unread bytes, and returns the longest contiguous run
// of them in the ring, counted as foreign use until doneRx.
func (s *Stream) nextRx() ([]byte, error) {
	s.rop.enter()
	defer s.rop.release(opIn)
	if err := deadlinePassed(&s.rdl, "read"); err != nil {
		return nil, err
	}
	for {
		if err := s.readable(); err != nil {
			return nil, err
		}
		if err := s.pollRx(); err != nil {
			return nil, err
		}
		if n := s.rx.avail(); n > 0 {
			off := s.rx.cons & (s.rx.size - 1)
			n = min(n, s.rx.size-off)
			if err := s.beginForeign("read"); err != nil {
				return nil, err
			}
			return s.rxRing[off : off+n : off+n], nil
		}
		if s.rx.eof() {
			return nil, io.EOF
		}
		if err := s.waitRx(); err != nil {
			return nil, err
		}
	}
}

// doneRx consumes the first n bytes nextRx returned, unless the stream was closed or
// stopped reading meanwhile.
func (s *Stream) doneRx(n uint64) error {
	s.rop.enter()
	err := s.readable()
	if err == nil {
		s.advanceRx(n)
	}
	s.rop.release(opIn)
	s.endForeign()
	return err
}

// beginForeign counts a WriteTo or ReadFrom that is about to run w or r on a ring;
// it fails once the stream is closed.
func (s *Stream) beginForeign(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load()&stClosed != 0 {
		return errClosed(op)
	}
	s.foreign++
	return nil
}

// endForeign ends what beginForeign counted; the last one after a Close releases the
// slots, which Close left to it.
func (s *Stream) endForeign() {
	s.mu.Lock()
	s.foreign--
	release := s.foreign == 0 && s.deferred
	s.deferred = s.deferred && !release
	s.mu.Unlock()
	if release {
		s.link.streamClosed(s)
	}
}

// readable reports the local reasons a read cannot proceed.
func (s *Stream) readable() error {
	st := s.state.Load()
	switch {
	case st&stClosed != 0:
		return errClosed("read")
	case st&stFailed != 0:
		return s.stickyErr()
	case st&stReadClosed != 0:
		return io.EOF
	}
	return nil
}

// pollRx loads the peer's producer line once, validates it and records it in s.rx.
// Memory ordering: the local state is loaded before the flags (so a hang-up we see was
// preceded by whatever flags the peer published before closing its socket), and the flags
// before the cursor (the producer stores its final cursor before fDone, so after seeing
// fDone the cursor we load is final). The cursor is loaded before the data it covers is
// read: the producer copies the data in and only then stores the cursor.
func (s *Stream) pollRx() error {
	st := s.state.Load()
	f := s.rxh.prodCtl.flags.Load()
	p := s.rxh.prod.cursor.Load()
	// The window may have grown at the producer's request since (growWindow): loaded
	// after the cursor, it is at least the window that let the producer write that far.
	// So is the producer's wrap, which it declares before its cursor passes it.
	s.rx.win = s.win.Load()
	if err := s.rx.observe(f, p, s.rxh.prodCtl.window.Load()); err != nil {
		return s.fail(err)
	}
	if uint64(len(s.rxRing)) != s.rx.size {
		s.rxRing = s.rxRing[:s.rx.size:s.rx.size] // the producer wraps there now
	}
	switch {
	case s.rx.flags&fAbort != 0:
		return s.fail(errReset("peer aborted"))
	case st&stHungUp != 0 && s.rx.flags&(fDone|fClosed) == 0:
		return s.fail(errReset("peer vanished"))
	}
	if s.rx.win < s.rx.size && s.rx.prod >= s.rx.win/2 && s.rx.flags&(fDone|fClosed) == 0 {
		// Half filled (the producer writes half a window at a time): grow it while
		// the producer writes the other half, so that it need not stop at the edge.
		s.growWindow(s.rx.win, false)
	}
	return nil
}

// growWindow doubles the window of our ring from size from, unless it grew since, is the
// whole ring, or the stream is closed. It runs on a Read that finds the window half
// filled, or when the producer, stopped at the window's edge, asks for it (a WAKE with
// wakeGrow, or the peer stream itself when it lives in this process): so the producer
// may fill the whole ring while we are not reading, as a TCP sender fills the socket
// buffer of a peer that is busy writing, and an exchange that fits in the rings never
// deadlocks on the window. The pages of the new half are populated in our own mapping
// before the window is published, so that they are allocated by, and charged to, us
// before the producer may write into them. The producer, if it announced a sleep, is
// then woken whatever the free space: at the window's edge it waits for this, not for
// the consumer cursor. The store of the window and the load of the sleep word pair with
// the writer's announce-then-recheck as in advanceRx. Close waits for a growth under
// way (winMu) before it gives the slot up.
//
// The new pages are counted against the process bound; a growth the bound does not
// allow does not happen. If the producer asked for it (asked), it waits at the edge:
// the window is then published as final (winFinal), and the producer wraps at it for
// the rest of the stream, as TCP keeps a small buffer under memory pressure.
func (s *Stream) growWindow(from uint64, asked bool) {
	s.winMu.Lock()
	w := s.win.Load()
	changed := false
	if w == from && w < uint64(s.own.ringSize) && !s.final && s.state.Load()&stClosed == 0 {
		switch {
		case s.own.populateCounted(s.own.ring(s.ownIdx)[w : 2*w]):
			s.win.Store(2 * w)
			s.rxh.consCtl.window.Swap(uint32(2 * w)) // Swap, not Store: see dekkerStore
			changed = true
		case asked:
			s.final = true
			s.rxh.consCtl.window.Swap(uint32(w) | winFinal)
			changed = true
		}
	}
	s.winMu.Unlock()
	if changed && s.rxh.prodCtl.sleep.Load() != 0 {
		s.wake(wakeSpace)
	}
}

// growRequested grows our window at the producer's request (see growWindow). Whatever
// a peer asks, the window grows at most to the ring size we accepted.
func (s *Stream) growRequested() { s.growWindow(s.win.Load(), true) }

// consume copies validated bytes out of the ring into b and publishes the new consumer
// cursor.
func (s *Stream) consume(b []byte) int {
	n := min(uint64(len(b)), s.rx.avail())
	off := s.rx.cons & (s.rx.size - 1)
	c := copy(b[:n], s.rxRing[off:])
	copy(b[c:n], s.rxRing)
	s.advanceRx(n)
	return int(n)
}

// advanceRx publishes that n more bytes were consumed, then wakes the peer's writer if it
// announced a sleep and a quarter of the ring is free (fewer, larger wake-ups: the silly
// window avoidance of RFC 7609's 10% rule, coarser because a wake-up costs more than a
// CDC message).
//
// The consumer cursor is stored after the bytes were copied out (an atomic store orders
// the loads before it), so the peer never overwrites bytes still being read. The store
// and the following load of the peer's sleep word are both sequentially consistent: with
// the writer's "announce sleep, then reload our cursor" this is Dekker's pattern, so at
// least one side sees the other and no wake-up is lost.
func (s *Stream) advanceRx(n uint64) {
	if n == 0 {
		return
	}
	s.rx.cons += n
	s.rxh.cons.cursor.Swap(s.rx.cons) // Swap, not Store: see dekkerStore
	if s.rx.size-s.rx.avail() >= s.rx.size/4 {
		s.wakeWriter()
	}
}

// wakeWriter wakes the peer's writer if it announced a sleep (see ring). s.rop's opIn
// is held.
func (s *Stream) wakeWriter() {
	if v := s.rxh.prodCtl.sleep.Load(); v != 0 {
		s.ring(&s.rw, v, wakeSpace)
	}
}

func (s *Stream) waitRx() error {
	p0, f0 := s.rx.prod, s.rx.flags
	h := lines{&s.rxh.prod, &s.rxh.prodCtl}
	// The producer's word is its wrap, declared before a cursor beyond it: the
	// cursor is what a reader waits for, and the word is passed as unchanged.
	w0 := h.ctl.window.Load()
	if s.spin(&s.rw, h, p0, f0, w0, &s.rdl) {
		return nil
	}
	return s.wait(&s.rw, &s.rxh.consCtl.sleep, &s.rdl, "read", h, p0, 1, f0, w0)
}

// Write writes b into the peer's ring, blocking while the ring is full. It returns early
// only with an error: the stream closed or failed, the peer stopped reading (EPIPE), or
// the write deadline passed, in which case n bytes were written.
//
// Write releases its lock without defer, as Read does.
func (s *Stream) Write(b []byte) (int, error) {
	if err := s.acquire(&s.wop, &s.wdl, "write"); err != nil {
		return 0, err
	}
	n, err := s.writeLocked(b)
	s.wop.release(opHeld | opIn)
	return n, err
}

// writeLocked is Write with s.wop held.
func (s *Stream) writeLocked(b []byte) (int, error) {
	if err := s.wexp.check(&s.wdl, "write"); err != nil {
		return 0, err
	}
	n := 0
	for {
		if err := s.writable(); err != nil {
			return n, err
		}
		if err := s.pollTx(uint64(len(b) - n)); err != nil {
			return n, err
		}
		for n < len(b) && s.tx.free() > 0 {
			k := min(s.tx.free(), uint64(len(b)-n), s.tx.chunk())
			s.produce(b[n : n+int(k)])
			n += int(k)
		}
		if n == len(b) {
			return n, nil
		}
		if err := s.waitTx(); err != nil {
			return n, err
		}
	}
}

// ReadFrom writes everything read from r until io.EOF. It implements io.ReaderFrom
// without a buffer of its own: r.Read reads straight into the free space of the
// peer's ring, which is published only once it returned. No lock Close takes is held
// while r runs, so a blocked r never delays Close; the slots are then released when r
// returns.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	if err := s.acquire(&s.wop, &s.wdl, "write"); err != nil {
		return 0, err
	}
	s.wop.release(opIn) // nextTx and doneTx take it
	defer s.wop.release(opHeld)
	var total int64
	for {
		space, err := s.nextTx()
		if err != nil {
			return total, err
		}
		n, rerr := r.Read(space)
		if n < 0 || n > len(space) {
			n = 0
			if rerr == nil || rerr == io.EOF {
				rerr = fmt.Errorf("smc: shm: invalid read count from %T", r)
			}
		}
		if err := s.doneTx(uint64(n)); err != nil {
			return total, err
		}
		total += int64(n)
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// nextTx waits, as Write does, for free space in the peer's ring, and returns the
// longest contiguous run of it, counted as foreign use until doneTx.
func (s *Stream) nextTx() ([]byte, error) {
	s.wop.enter()
	defer s.wop.release(opIn)
	if err := deadlinePassed(&s.wdl, "write"); err != nil {
		return nil, err
	}
	for {
		if err := s.writable(); err != nil {
			return nil, err
		}
		if err := s.pollTx(s.tx.chunk()); err != nil {
			return nil, err
		}
		if n := s.tx.free(); n > 0 {
			off := s.tx.prod & (s.tx.size - 1)
			n = min(n, s.tx.size-off, s.tx.chunk())
			if err := s.beginForeign("write"); err != nil {
				return nil, err
			}
			return s.txRing[off : off+n : off+n], nil
		}
		if err := s.waitTx(); err != nil {
			return nil, err
		}
	}
}

// doneTx publishes the first n bytes of what nextTx returned, unless the stream was
// closed or stopped writing meanwhile (then they are dropped: CloseWrite's "done
// writing" must follow the last cursor).
func (s *Stream) doneTx(n uint64) error {
	s.wop.enter()
	err := s.writable()
	if err == nil && n > 0 {
		s.publishProd(n)
	}
	s.wop.release(opIn)
	s.endForeign()
	return err
}

// writable reports the local reasons a write cannot proceed.
func (s *Stream) writable() error {
	st := s.state.Load()
	switch {
	case st&stClosed != 0:
		return errClosed("write")
	case st&stFailed != 0:
		return s.stickyErr()
	case st&stWriteClosed != 0:
		return errPipe("write")
	}
	return nil
}

// pollTx loads the peer's consumer control line, and its cursor if the free space by
// the cursor last loaded is less than need (flags before the cursor, see pollRx),
// validates them and records them in s.tx. The consumer stores its cursor on every
// Read, so loading it on every Write would fetch that line back each time; a cursor
// loaded earlier only understates the free space.
func (s *Stream) pollTx(need uint64) error {
	st := s.state.Load()
	f := s.txh.consCtl.flags.Load()
	w := s.txh.consCtl.window.Load()
	c := s.tx.cons
	if s.tx.free() < need {
		c = s.txh.cons.cursor.Load()
	}
	if err := s.tx.observe(f, c, w, countPeer); err != nil {
		return s.fail(err)
	}
	if uint64(len(s.txRing)) != s.tx.size {
		// Frozen: declare the wrap before any cursor beyond it (see txCursor.freeze).
		s.txRing = s.txRing[:s.tx.size:s.tx.size]
		s.txh.prodCtl.window.Swap(uint32(s.tx.size)) // Swap, not Store: see dekkerStore
	}
	switch {
	case s.tx.flags&fAbort != 0:
		return s.fail(errReset("peer aborted"))
	case s.tx.flags&(fDone|fClosed) != 0:
		return errPipe("write")
	case st&stHungUp != 0:
		return s.fail(errReset("peer vanished"))
	}
	return nil
}

// produce copies p (at most the free space) into the peer's ring and publishes it.
func (s *Stream) produce(p []byte) {
	off := s.tx.prod & (s.tx.size - 1)
	c := storeRing(s.txRing[off:], p)
	storeRing(s.txRing, p[c:])
	s.publishProd(uint64(len(p)))
}

// publishProd publishes n more bytes already copied into the peer's ring, then wakes the
// peer's reader if it announced a sleep we have not yet answered.
//
// The data is written with ordinary stores before the cursor is stored atomically (a
// release on every architecture Go supports), so a reader that loads the new cursor sees
// the data. Store-then-load of the peer's sleep word pairs with the reader's
// announce-then-recheck, as in advanceRx. On amd64 a plain store of the cursor comes
// first (storeAhead), so that the CPU fetches the cursor's line, which the peer's
// reader holds, while the ring's lines are still on their way.
func (s *Stream) publishProd(n uint64) {
	s.tx.prod += n
	storeAhead(&s.txh.prod.cursor, s.tx.prod)
	s.txh.prod.cursor.Swap(s.tx.prod) // Swap, not Store: see dekkerStore
	if v := s.txh.consCtl.sleep.Load(); v != 0 {
		s.ring(&s.ww, v, wakeData)
	}
}

// ring wakes the peer's stream, which announced sleep v, if it needs a wake-up: a peer
// in this process is kicked once per announced sleep of its stream; over a link whose
// peer poller page is mapped, a WAKE goes only if the peer's poller announced a sleep
// on this link, once per such sleep (its poller polls the stream otherwise: see
// poller.go); without that page, a WAKE goes once per announced sleep of the stream.
// w is the direction's waiter, whose rung it keeps.
//
// The caller stored its cursor (Swap) before loading v, and ring loads the poller word
// after v: Dekker's pattern with the poller's announcement (see doc.go, "Wake-ups").
// Any value the peer leaves in its word only decides whether its own streams get
// wake-ups.
func (s *Stream) ring(w *waiter, v uint32, b byte) {
	if s.local.Load() == nil {
		if pw := s.link.peerPoll.Load(); pw != nil {
			if a := pw.Load(); a != 0 && s.link.rung.Swap(a) != a {
				s.link.wake(s.peerTok, b)
			}
			return
		}
	}
	if v != w.rung {
		w.rung = v
		s.wake(b)
	}
}

func (s *Stream) waitTx() error {
	if s.tx.win < s.tx.size && s.tx.prod == s.tx.win && s.asked != s.tx.win {
		// Stopped at the edge of the window: the owner grows it when it reads, and
		// on this request when it does not (see growWindow), once per window.
		s.asked = s.tx.win
		if p := s.local.Load(); p != nil {
			p.growRequested()
		} else {
			s.link.wake(s.peerTok, wakeGrow)
		}
	}
	c0, f0, w0 := s.tx.cons, s.tx.flags, s.tx.rawW // pollTx loaded the cursor: the space was short
	h := lines{&s.txh.cons, &s.txh.consCtl}
	if s.spin(&s.ww, h, c0, f0, w0, &s.wdl) {
		return nil
	}
	return s.wait(&s.ww, &s.txh.prodCtl.sleep, &s.wdl, "write", h, c0, max(1, s.tx.size/4), f0, w0)
}

// spin polls the peer's lines h, if the process spin budget allows, until its
// cursor, flags or window differ from c0, f0 and w0 (what the caller last validated; a
// writer at the window's edge waits for the window), the local state
// changes, the spin time is up or the deadline in dl passes. It reports whether it saw a
// change; the caller then rechecks everything, so a spurious true is fine.
//
// It is wait's first stage, kept apart so that a wait that the spin ends allocates
// nothing (wait's closures escape to the netpoller) and reads the clock once per check.
func (s *Stream) spin(w *waiter, h lines, c0 uint64, f0, w0 uint32, dl *atomic.Int64) bool {
	// Spins that keep ending in a park are mostly wasted CPU (a peer with think time, or
	// one whose CPU is taken by another process): after 4 in a row, a waiter spins an
	// eighth of the budget (still catching a peer that answers at once), except on every
	// 8th wait, which probes with the full budget; a spin that succeeds restores it.
	w.waits++
	if s.local.Load() == nil && poller.active.Load() {
		return false // the poller polls for us
	}
	if !acquireSpin() {
		return false
	}
	limit := time.Duration(spinNanos.Load())
	if w.misses >= 4 && w.waits%8 != 0 {
		limit /= 8
	}
	// The clock is read every 64 polls, the first time after the first 64: on some
	// virtual machines a clock read costs more than a fast peer takes to answer, so a
	// spin that reads the clock first would only delay seeing the answer. After the
	// first reading, time.Since reads only the monotonic clock, which costs less.
	//
	// Yield every few polls when the goroutine we wait for may need our P: with
	// GOMAXPROCS=1, or when the peer is in this process (its wake-up readied it on our
	// P). Otherwise another P is free (spinners are at most GOMAXPROCS-1), and a yield
	// is a poor way to wait: runtime.Gosched queues us globally, wakes an idle P's
	// thread to take us and goes through the scheduler, time in which the peer's store
	// goes unseen. So a spinner whose last spin succeeded (the peer spins too) yields
	// only now and then, for goroutines queued behind us. After a spin that ended in a
	// park the peer is likely parked as well, and then the yields stay: the threads
	// they wake keep the other CPUs busy, and a virtual CPU that idles (halts) makes
	// the parked peer's wake-up, which our answer waits for, much slower.
	var (
		start     time.Time
		startWall int64         // start in unix nanoseconds, for the deadline
		yielded   time.Duration // when we last yielded, since start
		yieldAll  bool
	)
	st0 := s.state.Load()
	for i := 1; ; i++ {
		if h.cur.cursor.Load() != c0 || h.ctl.flags.Load() != f0 || h.ctl.window.Load() != w0 || s.state.Load() != st0 {
			releaseSpin()
			w.misses = 0
			noteSpin(true)
			return true
		}
		if i%64 != 0 {
			continue
		}
		var now time.Duration
		if i == 64 {
			start = time.Now()
			startWall = start.UnixNano()
			refreshSlots(startWall)
			yieldAll = singleP.Load() || s.local.Load() != nil || w.misses > 0
		} else {
			now = time.Since(start)
		}
		if yieldAll || now-yielded >= spinYieldEvery {
			runtime.Gosched()
			yielded = now
		}
		if now > limit {
			break
		}
		if d := dl.Load(); d != 0 && startWall+int64(now) >= d {
			break
		}
	}
	releaseSpin()
	w.misses = min(w.misses+1, 8)
	noteSpin(false)
	return false
}

// dekkerStore: the stores of Dekker's pattern (a cursor before loading the peer's
// sleep word, the sleep word before reloading the peer's cursor) are Swaps, not
// Stores. The Go memory model makes both sequentially consistent, and on amd64 both
// compile to XCHG; but the race detector's runtime implements an atomic Store as a
// release store (a plain MOV on amd64) and a Load as an acquire load, and a load may
// then pass the earlier store (the store buffer): each side misses the other, the
// waiter parks with data in its ring and nobody wakes it. A Swap is a read-modify-
// write, a full barrier in every build.

// wait blocks until the peer's lines h show the cursor moved step bytes past c0 or its flags or
// window differ from f0 and w0, the local state changes, a kick arrives, or the deadline
// passes. It announces a sleep in the shared sleep word, registers with the poller
// (unless the peer is in this process), rechecks, and parks on w.wake (callers spin
// first, see spin), which the poller kicks when h changes, and the link's reader when
// the peer's WAKE for this slot arrives (or the peer stream itself, when it lives in
// this process). Local events (close, deadline changes, failures) kick it too. Spurious
// returns are fine: callers loop.
func (s *Stream) wait(w *waiter, sleep *atomic.Uint32, dl *atomic.Int64, op string, h lines, c0, step uint64, f0, w0 uint32) error {
	var left time.Duration
	if d := dl.Load(); d != 0 {
		if left = time.Until(time.Unix(0, d)); left <= 0 {
			return &timeoutError{op}
		}
	}
	w.h, w.c0, w.step, w.f0, w.w0, w.st0 = h, c0, step, f0, w0, s.state.Load()
	w.seq++
	if w.seq == 0 {
		w.seq = 1
	}
	sleep.Swap(w.seq) // Swap, not Store: see dekkerStore
	defer sleep.Store(0)
	if s.local.Load() == nil {
		w.register()
		defer w.unregister()
	}
	if w.ready() { // recheck after announcing: the peer may have missed the announcement
		return nil
	}
	var timeout <-chan time.Time
	if left > 0 {
		if w.timer == nil {
			w.timer = time.NewTimer(left)
		} else {
			w.timer.Reset(left)
		}
		defer w.timer.Stop()
		timeout = w.timer.C
	}
	select {
	case <-w.wake:
		return nil
	case <-timeout:
		return deadlinePassed(dl, op) // nil if the deadline moved meanwhile
	}
}

// expiry records that a deadline (rdl or wdl) has passed, so that Read and Write check
// their deadline with two atomic loads instead of a clock read, which on some virtual
// machines costs more than the rest of a small Read. A timer records it when the
// deadline comes, as the netpoller does for a net.Conn; setDeadline records a deadline
// that is already past at once. Waiting is bounded by the deadline itself (spin and
// wait read the clock), so a late timer only lets a call that does not wait proceed a
// little longer.
type expiry struct {
	passed atomic.Int64 // a deadline found passed: the current one, or an older one
	timer  *time.Timer  // fires when the current deadline passes; guarded by Stream.mu
}

// check returns a timeout error if the deadline in dl is recorded as passed.
func (e *expiry) check(dl *atomic.Int64, op string) error {
	if d := dl.Load(); d != 0 && e.passed.Load() == d {
		return &timeoutError{op}
	}
	return nil
}

// setExpiryLocked records the new deadline d (already stored in dl) as passed, or arms the
// timer for it. s.mu must be held.
func (s *Stream) setExpiryLocked(e *expiry, dl *atomic.Int64, d int64) {
	if e.timer != nil {
		e.timer.Stop()
	}
	if d == 0 || s.state.Load()&stClosed != 0 {
		return // no deadline, or close stopped the timers for good
	}
	left := time.Duration(d - time.Now().UnixNano())
	switch {
	case left <= 0:
		e.passed.Store(d)
	case e.timer == nil:
		e.timer = time.AfterFunc(left, func() { s.expire(e, dl) })
	default:
		e.timer.Reset(left)
	}
}

// expire is the deadline timer's function. It records the current deadline as passed
// if the wall clock says so (the deadline may have moved since the timer was armed, or
// the clock been set back), and otherwise arms the timer again for what is left.
func (s *Stream) expire(e *expiry, dl *atomic.Int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := dl.Load()
	if d == 0 || s.state.Load()&stClosed != 0 {
		return
	}
	if left := time.Duration(d - time.Now().UnixNano()); left > 0 {
		e.timer.Reset(left)
		return
	}
	e.passed.Store(d)
}

// stopExpiryLocked stops the deadline timers, which would otherwise keep a closed
// stream reachable until its deadlines. s.mu must be held.
func (s *Stream) stopExpiryLocked() {
	for _, e := range []*expiry{&s.rexp, &s.wexp} {
		if e.timer != nil {
			e.timer.Stop()
		}
	}
}

// deadlinePassed returns a timeout error if the deadline in dl has passed.
func deadlinePassed(dl *atomic.Int64, op string) error {
	if d := dl.Load(); d != 0 && time.Now().UnixNano() >= d {
		return &timeoutError{op}
	}
	return nil
}

// fail records err as the stream's terminal error (the first one wins), tells the peer the
// stream is aborted, wakes local waiters, and returns the terminal error.
func (s *Stream) fail(err error) error {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.state.Or(stFailed)
	}
	err = s.err
	s.publishLocked(fAbort, fAbort)
	s.mu.Unlock()
	s.kick()
	s.wake(wakeData | wakeSpace)
	return err
}

func (s *Stream) stickyErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// publishLocked adds flags to our two control lines: pf to the producer line in the
// peer's DMB, cf to the consumer line in ours. s.mu must be held. Flags are sticky, so
// the local copies pubP/pubC are the truth; the shared words are never read back (the
// peer can write them too).
func (s *Stream) publishLocked(pf, cf uint32) {
	if s.unmapped {
		return
	}
	if s.pubP|pf != s.pubP {
		s.pubP |= pf
		s.txh.prodCtl.flags.Store(s.pubP)
	}
	if s.pubC|cf != s.pubC {
		s.pubC |= cf
		s.rxh.consCtl.flags.Store(s.pubC)
	}
}

// kick wakes local waiters so that they re-examine the stream.
func (s *Stream) kick() {
	kickOne(s.rw.wake)
	kickOne(s.ww.wake)
}

// wake asks the peer to wake its waiting Read or Write: straight through its channels
// when it lives in this process, else with a WAKE on the link, which never blocks nor
// loses it.
func (s *Stream) wake(b byte) {
	if p := s.local.Load(); p != nil {
		p.kick()
		return
	}
	s.link.wake(s.peerTok, b)
}

// linkDown is the link's end as the stream sees it: a peer that had not closed or
// finished writing vanished (a reset), and a link that ended on a violation fails it.
func (s *Stream) linkDown(err error, violated bool) {
	if violated {
		s.fail(err) // before stHungUp: a Read that sees the hang-up first would report a vanished peer
	}
	s.state.Or(stHungUp)
	s.kick()
}

func kickOne(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// CloseWrite tells the peer that nothing more will be written: the peer's Read returns
// io.EOF once it has read everything before it. Later Writes fail with EPIPE.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	if s.state.Load()&stClosed != 0 {
		s.mu.Unlock()
		return errClosed("close write")
	}
	s.state.Or(stWriteClosed)
	s.mu.Unlock()
	kickOne(s.ww.wake)
	s.wop.enter() // after any Write in progress, so fDone follows its last cursor
	defer s.wop.release(opIn)
	s.mu.Lock()
	s.publishLocked(fDone, 0)
	s.mu.Unlock()
	s.wake(wakeData)
	return nil
}

// CloseRead stops reading: later Reads return io.EOF and the peer's Writes fail with EPIPE.
func (s *Stream) CloseRead() error {
	s.mu.Lock()
	if s.state.Load()&stClosed != 0 {
		s.mu.Unlock()
		return errClosed("close read")
	}
	s.state.Or(stReadClosed)
	s.mu.Unlock()
	kickOne(s.rw.wake)
	s.rop.enter()
	defer s.rop.release(opIn)
	s.mu.Lock()
	s.publishLocked(0, fDone)
	s.mu.Unlock()
	s.wake(wakeSpace)
	return nil
}

// Close closes both directions. The peer reads what was written, then io.EOF; its Writes
// fail with EPIPE. If unread data from the peer remains, Close aborts instead, like TCP
// (which sends a RST) and Linux SMC (peer_conn_abort). Blocked Reads and Writes return
// promptly with an error wrapping net.ErrClosed, as do all later calls. Close never waits
// for the peer: the stream's own slot returns to its pool once the peer released it.
func (s *Stream) Close() error { return s.close(false) }

// Abort closes the stream abortively, like Close with SO_LINGER 0 on TCP: the peer's Reads
// and Writes fail with a reset error (wrapping syscall.ECONNRESET), discarding unread data.
func (s *Stream) Abort() error { return s.close(true) }

func (s *Stream) close(abort bool) error {
	s.mu.Lock()
	if s.state.Load()&stClosed != 0 {
		s.mu.Unlock()
		return errClosed("close")
	}
	s.state.Or(stClosed)
	close(s.closed)
	s.stopExpiryLocked()
	s.mu.Unlock()
	s.kick()
	// A window growth under way (growWindow, which may run on the link's reader) ends
	// before we go on; later ones see stClosed and do nothing.
	s.winMu.Lock()
	s.winMu.Unlock()
	s.rop.enter()
	defer s.rop.release(opIn)
	s.wop.enter()
	defer s.wop.release(opIn)

	s.mu.Lock()
	if !abort && s.state.Load()&stFailed == 0 {
		f := s.rxh.prodCtl.flags.Load()
		if p := s.rxh.prod.cursor.Load(); p != s.rx.cons && f&fAbort == 0 {
			abort = true
		}
	}
	if abort || s.state.Load()&stFailed != 0 {
		s.publishLocked(fAbort, fAbort)
	} else {
		s.publishLocked(fDone|fClosed, fClosed)
	}
	s.unmapped = true
	s.mu.Unlock()
	// A peer in this process is kicked at once. Over the link, the release that
	// streamClosed publishes wakes the peer's stream if it waits (see releasePeer), with
	// no message when it does not; only a release deferred behind a WriteTo or ReadFrom
	// needs a WAKE of its own now.
	local := s.local.Load() != nil
	if local {
		s.wake(wakeData | wakeSpace)
	}

	// The peer is told we never touch its slot again only after the flags are published
	// (and our own slot is freed only once the peer said the same), and after a w or r
	// of WriteTo or ReadFrom that is still inside a ring returned.
	s.unlinkLocal()
	s.mu.Lock()
	s.deferred = s.foreign > 0
	release := !s.deferred
	s.mu.Unlock()
	if release {
		s.link.streamClosed(s)
	} else if !local {
		s.link.wake(s.peerTok, wakeData|wakeSpace)
	}
	return nil
}

// releasePeer is a closed stream's last store into the peer's slot: fReleased in its
// producer line, after which the peer may zero and reuse the slot. It then wakes the
// peer's stream if it waits for data or for space, so that it sees the flags close
// published. The Swap orders those flag stores before the loads of the sleep words
// (Dekker's pattern with the waiter's announce-then-recheck, see dekkerStore). Close
// is inside both operation locks (rop and wop), or the last WriteTo or ReadFrom inside
// a ring has returned.
func (s *Stream) releasePeer() {
	s.mu.Lock()
	s.pubP |= fReleased
	f := s.pubP
	s.mu.Unlock()
	s.txh.prodCtl.flags.Swap(f)
	if v := s.txh.consCtl.sleep.Load(); v != 0 {
		s.ring(&s.ww, v, wakeData)
	}
	if v := s.rxh.prodCtl.sleep.Load(); v != 0 {
		s.ring(&s.rw, v, wakeSpace)
	}
}

// SetDeadline sets the read and write deadlines; see net.Conn.
func (s *Stream) SetDeadline(t time.Time) error {
	if err := s.SetReadDeadline(t); err != nil {
		return err
	}
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for Read and WriteTo, including calls already
// blocked. A zero t means no deadline.
func (s *Stream) SetReadDeadline(t time.Time) error {
	return s.setDeadline(&s.rdl, &s.rexp, s.rw.wake, t)
}

// SetWriteDeadline sets the deadline for Write and ReadFrom, including calls already
// blocked. A zero t means no deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	return s.setDeadline(&s.wdl, &s.wexp, s.ww.wake, t)
}

func (s *Stream) setDeadline(dl *atomic.Int64, e *expiry, wake chan struct{}, t time.Time) error {
	if s.state.Load()&stClosed != 0 {
		return errClosed("set deadline")
	}
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
		if d == 0 {
			d = 1
		}
	}
	s.mu.Lock()
	dl.Store(d)
	s.setExpiryLocked(e, dl, d)
	s.mu.Unlock()
	kickOne(wake)
	return nil
}
