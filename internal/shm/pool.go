package shm

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Pools. Each side of a link owns a pool of slots it receives into: memfd segments it
// creates, populates and is charged for, which the peer maps and writes into. A segment
// holds n slots of one ring size:
//
//	offset 0                     n slot headers of SlotHeaderSize bytes (see header)
//	offset headersSize(n)        n rings of ringSize bytes, slot i's at headersSize(n)+i*ringSize
//
// headersSize(n) is n*SlotHeaderSize rounded up to 4096, so that every ring is page
// aligned whatever the page size of the two processes (they share one kernel).

// SlotHeaderSize is the size of one slot's control area: four 128-byte lines (see header).
const SlotHeaderSize = 512

const (
	// maxSegSlots bounds the slots of one segment: segments of one ring size grow
	// 1, 2, 4, ... up to it while the pool has no free slot of that size.
	maxSegSlots = 64
	// maxSegRings bounds the ring bytes of one segment with more than one slot, so
	// that large rings do not come in large batches.
	maxSegRings = 8 << 20
	// maxSegments bounds the segments a side accepts from a peer on one link.
	maxSegments = 4096
)

// headersSize returns the bytes of n slot headers, rounded up to 4096.
func headersSize(n int) int { return (n*SlotHeaderSize + 4095) &^ 4095 }

// segmentSize returns the size of the memfd of a segment of n slots of ringSize bytes.
func segmentSize(ringSize, n int) int64 {
	return int64(headersSize(n)) + int64(n)*int64(ringSize)
}

// nextSegSlots returns how many slots a new segment of ringSize gets when the pool
// already has have segments of that size.
func nextSegSlots(ringSize, have int) int {
	n := 1 << min(have, 6)
	n = min(n, maxSegSlots, max(1, maxSegRings/ringSize))
	return n
}

// Slot tokens name a slot of a side's pool on the wire (the CLC DMB token, WAKE,
// CANCEL): generation<<32 | segment index<<16 | slot index. The generation
// changes every time the slot is handed out, so a token of an earlier use is stale
// and rejected; it is never 0, so no token is 0.
func makeToken(gen uint32, seg uint16, slot int) uint64 {
	return uint64(gen)<<32 | uint64(seg)<<16 | uint64(uint16(slot))
}

func splitToken(t uint64) (gen uint32, seg uint16, slot int) {
	return uint32(t >> 32), uint16(t >> 16), int(uint16(t))
}

// Slot states of an own slot:
//
//	free  --alloc-->  held  --bind-->  bound  --stream closed-->  closed
//	  ^                 |  |                                         ^  |
//	  |                 |  +--- offer cancelled after its Accept ----+  |
//	  +----- zeroed ----+ (never announced to the peer)                 |
//	  +------------- zeroed, once the peer released it (fReleased) -----+
//	                 or the link is dead
type slotState uint8

const (
	slotFree   slotState = iota
	slotHeld             // reserved by an offer waiting for the client's Confirm, or by a Connect
	slotBound            // a stream's
	slotClosed           // its stream closed, or its offer cancelled; waiting for the peer's fReleased
)

// slot is an own slot's bookkeeping; guarded by the link's mu.
type slot struct {
	state  slotState
	gen    uint32  // generation of the current (or last) use
	stream *Stream // when bound
	offer  *Offer  // when held by a server's offer
	win    int     // ring bytes its closed stream had populated (its last window), else 0
	warm   bool    // its first window is populated: zeroSlot never discards it
}

// A segment is one memfd of a pool, mapped: an own segment (slots is set) or a
// peer's (refs counts the streams writing into it).
type segment struct {
	idx      uint16
	ringSize int
	n        int
	mem      []byte // the whole mapping
	fd       int    // own segment: the memfd until the peer acknowledged it, else -1
	ino      uint64 // the memfd's inode: names the slot in this process (in-process peers)
	// held is what the segment counts against the process bound (own) or the cap on
	// peer memory (peer's): its slot headers, and, own, the ring pages populated (first
	// windows, and windows grown by streams, each under its stream's winMu).
	held atomic.Int64

	// Own segments.
	slots     []slot
	free      int       // slots in slotFree
	low       int       // no slot below this index is free: take searches from here
	acked     bool      // the peer mapped it: slots may be handed out
	deleting  bool      // SEGDEL sent: no new use, unmapped on SEGDELACK
	freeSince time.Time // when free last became n

	// Peer segments.
	refs    int  // streams of ours using one of its slots
	deleted bool // the owner withdrew it: unmapped once refs is 0
}

// header returns slot i's control area.
func (g *segment) header(i int) *header {
	return (*header)(unsafe.Pointer(&g.mem[i*SlotHeaderSize]))
}

// ring returns slot i's ring.
func (g *segment) ring(i int) []byte {
	off := headersSize(g.n) + i*g.ringSize
	return g.mem[off : off+g.ringSize : off+g.ringSize]
}

// zeroSlot clears slot i's header and ring: a slot is handed out again only zeroed,
// so that no cursor, flag or byte of an earlier use is seen by the next. The first
// window is zeroed in place: the next use starts with that window again. The pages we
// populated beyond it, up to win (the last window of the slot's stream), are returned
// to the system, read as zeros and are no longer counted against the bound; a ring
// whose window never grew costs no system call. Pages beyond the window that a peer
// faulted in by writing where it may not stay until the slot's next use beyond them,
// or its segment's withdrawal: the peer could fault those of a free slot as well, and
// pays for them (see doc.go).
func (g *segment) zeroSlot(i, win int) {
	clear(g.mem[i*SlotHeaderSize : (i+1)*SlotHeaderSize])
	r := g.ring(i)
	w := initialWindow(g.ringSize)
	clear(r[:w])
	if win = min(win, len(r)); win > w {
		discard(r[w:win])
		g.held.Add(-int64(win - w))
		unreserve(int64(win - w))
	}
}

// populateCounted populates b, a page-aligned range of the segment's mapping, if the
// process bound allows it, counting it; else it reports false and populates nothing.
func (g *segment) populateCounted(b []byte) bool {
	if reserve(int64(len(b))) != nil {
		return false
	}
	populate(b)
	g.held.Add(int64(len(b)))
	return true
}

// openWindow populates the first window of slot i's ring, unless an earlier use did
// (zeroSlot keeps its pages), and publishes it in the slot's consumer control line, whose
// header was just cleared. It fails with ErrMemoryLimit if the window must be populated
// and the process bound does not allow it.
func (g *segment) openWindow(i int) error {
	w := initialWindow(g.ringSize)
	if sl := &g.slots[i]; !sl.warm {
		if !g.populateCounted(g.ring(i)[:w]) {
			return ErrMemoryLimit
		}
		sl.warm = true
	}
	g.header(i).consCtl.window.Store(uint32(w))
	return nil
}

// pool is a side's own slots on one link; guarded by the link's mu.
type pool struct {
	segs    map[uint16]*segment
	next    uint16                // index of the next segment made
	growing map[int]chan struct{} // ring size → closed when the growth in progress ends

	// inUse and free count the slots of the pool's segments that are in use (held,
	// bound or closed) and free, for ReadCounters, which reads them without the
	// link's mu. They live with the pool rather than in process-wide words, so that
	// handing a slot out and putting one back touch no cache line that every link's
	// connections write.
	inUse, free atomic.Int64
}

// pools are the pools with segments, whose slots ReadCounters counts.
var pools struct {
	mu sync.Mutex
	m  map[*pool]struct{}
}

func newPool() pool {
	return pool{segs: make(map[uint16]*segment), growing: make(map[int]chan struct{})}
}

// take hands out a free slot of an acknowledged segment of ringSize, held, with a new
// generation, a zeroed header (the peer could have written into a free slot's header;
// its ring is zeroed already) that holds the slot's new token, and its first window
// open. It returns nil if there is none, and ErrMemoryLimit if the first window of the
// free slot it found does not fit the process bound.
func (p *pool) take(ringSize int) (*segment, int, error) {
	var best *segment
	for _, g := range p.segs {
		// The lowest index with a free slot: older segments fill first, so that
		// newer ones empty and can be withdrawn after a burst.
		if g.ringSize == ringSize && g.acked && !g.deleting && g.free > 0 && (best == nil || g.idx < best.idx) {
			best = g
		}
	}
	if best == nil {
		return nil, -1, nil
	}
	for i := best.low; i < len(best.slots); i++ {
		sl := &best.slots[i]
		if sl.state != slotFree {
			continue
		}
		clear(best.mem[i*SlotHeaderSize : (i+1)*SlotHeaderSize])
		if err := best.openWindow(i); err != nil {
			return nil, -1, err
		}
		best.low = i + 1
		sl.gen++
		if sl.gen == 0 {
			sl.gen = 1
		}
		sl.state, sl.stream, sl.offer = slotHeld, nil, nil
		best.free--
		best.header(i).consCtl.token.Store(makeToken(sl.gen, best.idx, i))
		p.inUse.Add(1)
		p.free.Add(-1)
		return best, i, nil
	}
	panic("shm: pool free count out of step")
}

// put zeroes slot i of g and marks it free.
func (p *pool) put(g *segment, i int, now time.Time) {
	sl := &g.slots[i]
	if sl.state == slotFree {
		return
	}
	g.zeroSlot(i, sl.win)
	sl.state, sl.stream, sl.offer, sl.win = slotFree, nil, nil, 0
	g.free++
	g.low = min(g.low, i)
	if g.free == g.n {
		g.freeSince = now
	}
	p.inUse.Add(-1)
	p.free.Add(1)
}

// lookup returns the own slot a token names, if its generation is current.
func (p *pool) lookup(tok uint64) (*segment, int, *slot) {
	gen, si, i := splitToken(tok)
	g := p.segs[si]
	if g == nil || i >= g.n || g.slots[i].gen != gen || gen == 0 {
		return nil, -1, nil
	}
	return g, i, &g.slots[i]
}

// count returns the segments of ringSize (acknowledged or not, not being withdrawn).
func (p *pool) count(ringSize int) int {
	n := 0
	for _, g := range p.segs {
		if g.ringSize == ringSize && !g.deleting {
			n++
		}
	}
	return n
}

// newIndex returns an unused segment index; indexes are not reused quickly.
func (p *pool) newIndex() (uint16, bool) {
	for range 1 << 16 {
		i := p.next
		p.next++
		if p.segs[i] == nil {
			return i, true
		}
	}
	return 0, false
}

// add records a new own segment (not yet acknowledged).
func (p *pool) add(g *segment) {
	g.slots = make([]slot, g.n)
	g.free = g.n
	p.segs[g.idx] = g
	counters.segments.Add(1)
	counters.segmentsMade.Add(1)
	if p.inUse.Load()+p.free.Load() == 0 {
		pools.mu.Lock()
		if pools.m == nil {
			pools.m = make(map[*pool]struct{})
		}
		pools.m[p] = struct{}{}
		pools.mu.Unlock()
	}
	p.free.Add(int64(g.n))
}

// remove forgets an own segment; the caller unmaps it.
func (p *pool) remove(g *segment) {
	if p.segs[g.idx] != g {
		return
	}
	delete(p.segs, g.idx)
	if g.slots == nil {
		return // a placeholder holding the index of a segment being made
	}
	counters.segments.Add(-1)
	inUse := int64(g.n - g.free)
	p.inUse.Add(-inUse)
	p.free.Add(-int64(g.free))
	if p.inUse.Load()+p.free.Load() == 0 {
		pools.mu.Lock()
		delete(pools.m, p)
		pools.mu.Unlock()
	}
}

// idle returns the own segments that are entirely free since before cutoff, keeping
// the oldest segment of each ring size (the pool's floor).
func (p *pool) idle(cutoff time.Time) []*segment {
	floor := make(map[int]uint16)
	for _, g := range p.segs {
		if g.deleting {
			continue
		}
		if f, ok := floor[g.ringSize]; !ok || g.idx < f {
			floor[g.ringSize] = g.idx
		}
	}
	var out []*segment
	for _, g := range p.segs {
		if g.acked && !g.deleting && g.free == g.n && floor[g.ringSize] != g.idx && !g.freeSince.After(cutoff) {
			out = append(out, g)
		}
	}
	return out
}

// Counters are the process's link and pool gauges and counts (see [ReadCounters]).
type Counters struct {
	Links              int64  // links open now (client and server roles)
	LinksOpened        uint64 // links ever established
	Segments           int64  // own pool segments (memfds) now
	SegmentsMade       uint64 // own segments ever created (memfd_create calls)
	PeerSegments       int64  // peer segments mapped now
	PeerSegmentsMapped uint64 // peer segments ever mapped
	SlotsInUse         int64  // own slots held by a stream or an offer
	SlotsFree          int64  // own slots free in pools
	MemoryInUse        int64  // resident bytes of own segments (what SetMemoryLimit bounds)
	PeerMemory         int64  // bytes of peer segments we may touch: their headers, the windows we accepted
	WakeupsSent        uint64 // wake-ups this process sent to peers over links, ever
	WakeupsReceived    uint64 // wake-ups it received over links, ever
}

var counters struct {
	links, segments, peerSegments                 atomic.Int64
	linksOpened, segmentsMade, peerSegmentsMapped atomic.Uint64
}

// Wake-up counts live in words that CountWakeups may move into a shared registry, so
// that another process (smc stats) reads them as they change, with no copying.
var (
	ownWakeups              [2]atomic.Uint64
	wakeupsSent, wakeupsRcv atomic.Pointer[atomic.Uint64]
)

func init() {
	wakeupsSent.Store(&ownWakeups[0])
	wakeupsRcv.Store(&ownWakeups[1])
}

// CountWakeups makes the process count the wake-ups it sends and receives over links
// in sent and received from now on, carrying over what was counted before. The words
// must stay valid for the life of the process. Wake-ups between two streams of one
// process are calls, not messages, and are not counted.
func CountWakeups(sent, received *atomic.Uint64) {
	sent.Add(wakeupsSent.Swap(sent).Load())
	received.Add(wakeupsRcv.Swap(received).Load())
}

// Links returns the number of links open now, as ReadCounters does, at the cost of
// one atomic load.
func Links() int64 { return counters.links.Load() }

// ReadCounters returns the process's link and pool counters now.
func ReadCounters() Counters {
	var inUse, free int64
	pools.mu.Lock()
	for p := range pools.m {
		inUse += p.inUse.Load()
		free += p.free.Load()
	}
	pools.mu.Unlock()
	return Counters{
		Links:              counters.links.Load(),
		LinksOpened:        counters.linksOpened.Load(),
		Segments:           counters.segments.Load(),
		SegmentsMade:       counters.segmentsMade.Load(),
		PeerSegments:       counters.peerSegments.Load(),
		PeerSegmentsMapped: counters.peerSegmentsMapped.Load(),
		SlotsInUse:         inUse,
		SlotsFree:          free,
		MemoryInUse:        memUsed.Load(),
		PeerMemory:         peerUsed.Load(),
		WakeupsSent:        wakeupsSent.Load().Load(),
		WakeupsReceived:    wakeupsRcv.Load().Load(),
	}
}
