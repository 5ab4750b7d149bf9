package shm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultLinkIdle is how long a server keeps a link after its last stream closed,
// waiting for the next connection between the same two processes to reuse it, until
// [SetLinkIdle] changes it.
const DefaultLinkIdle = 30 * time.Second

var linkIdle atomic.Int64

// segmentIdle is how long an own segment stays entirely free before it is withdrawn
// (beyond the pool's floor), so that a pool shrinks back after a burst.
var segmentIdle atomic.Int64

func init() {
	linkIdle.Store(int64(DefaultLinkIdle))
	segmentIdle.Store(int64(5 * time.Second))
}

// SetLinkIdle sets how long an unused link stays (see [DefaultLinkIdle]) for links that
// become unused from now on, and returns the previous value.
func SetLinkIdle(d time.Duration) time.Duration { return time.Duration(linkIdle.Swap(int64(d))) }

// errLinkDown reports that a link ended under an operation.
var errLinkDown = errors.New("smc: shm: link closed")

// A link is one authenticated Unix seqpacket connection between a client process and a
// server process's endpoint, carrying many streams: each side's pool, the peer
// segments it mapped, and the streams over their slots. One reader goroutine reads
// its messages; writes never block the writer (see send).
type link struct {
	id      uint32
	server  bool
	conn    *net.UnixConn
	rc      syscall.RawConn
	local   bool         // the peer is this very process: wake-ups need no system call
	ep      *Endpoint    // server side: the endpoint that accepted it
	key     clientKey    // client side: its entry in clientLinks
	maxPeer atomic.Int64 // largest peer ring this side maps on this link
	done    chan struct{}

	mu       sync.Mutex
	dead     bool
	err      error                // why it ended
	pool     pool                 // own slots
	peer     map[uint16]*segment  // peer segments mapped
	segAcks  map[uint16]chan bool // own segments waiting for SEGACK
	ready    chan uint64          // client: READY while the link is being set up, else nil
	used     int                  // own slots not free
	closing  []closedSlot         // own slots closed before the peer released them
	sweepT   *time.Timer          // frees the closing slots the peer released since
	sweepIn  time.Duration        // the sweep timer's delay: doubles while slots stay unreleased
	idleT    *time.Timer          // server: ends the link when it stayed unused
	shrinkT  *time.Timer          // withdraws idle segments
	ownPage  *segment             // our poller page (see poller.go), once made
	peerPage *segment             // the peer's poller page, once mapped

	pageSent bool                          // our poller page was made and sent (or could not be); guarded by mu
	ownPoll  atomic.Pointer[atomic.Uint32] // our poller word, in ownPage; nil until made and after finish
	peerPoll atomic.Pointer[atomic.Uint32] // the peer's poller word, in peerPage; nil until mapped
	rung     atomic.Uint32                 // the peer poller's last announced sleep we woke
	pollPub  uint32                        // what our poller last stored in ownPoll; guarded by poller.mu

	wmu      sync.Mutex
	wdead    bool
	queue    []outMsg        // messages that could not be sent at once, in order
	inflight bool            // flush is sending queue[0] without wmu: its fd is flush's to close
	wakes    map[uint64]byte // wake-ups that could not be sent at once, by slot
	flushing bool            // a flush goroutine runs
}

type outMsg struct {
	b  msg
	fd int // a descriptor to pass (owned by the queue), or -1
}

// closedSlot names an own slot in slotClosed, use gen, waiting for the peer's
// fReleased; peer is the peer slot its stream was bound to (0 for a withdrawn offer's).
type closedSlot struct {
	g    *segment
	i    int
	gen  uint32
	peer uint64
}

func newLink(c *net.UnixConn, server bool, id uint32, maxPeer int) (*link, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	l := &link{
		id: id, server: server, conn: c, rc: rc, done: make(chan struct{}),
		pool: newPool(), peer: make(map[uint16]*segment), segAcks: make(map[uint16]chan bool),
		wakes: make(map[uint64]byte),
	}
	l.local = samePeerProcess(rc)
	l.maxPeer.Store(int64(maxPeer))
	counters.links.Add(1)
	counters.linksOpened.Add(1)
	return l, nil
}

// raiseMaxPeer lets this link map peer rings up to n bytes from now on.
func (l *link) raiseMaxPeer(n int) {
	for {
		v := l.maxPeer.Load()
		if int64(n) <= v || l.maxPeer.CompareAndSwap(v, int64(n)) {
			return
		}
	}
}

// alive reports whether the link still runs.
func (l *link) alive() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// allocSlot hands out a held own slot of ringSize, growing the pool (a new segment,
// acknowledged by the peer) when none is free. o, if not nil, is the offer holding it,
// whose bound on the client's ring the slot announces.
func (l *link) allocSlot(ctx context.Context, ringSize int, o *Offer) (*segment, int, uint64, error) {
	grew := false
	for {
		l.mu.Lock()
		if l.dead {
			l.mu.Unlock()
			return nil, -1, 0, errLinkDown
		}
		if !grew && memUsed.Load() >= memLimit.Load() {
			// Once the bound is reached, free slots are not handed out either: the
			// bound is what the process holds, and it may have been lowered below.
			// (A segment just made within the bound is ours to use.)
			l.mu.Unlock()
			return nil, -1, 0, ErrMemoryLimit
		}
		if len(l.closing) > 0 {
			l.sweepLocked()
		}
		g, i, err := l.pool.take(ringSize)
		if err != nil {
			l.mu.Unlock()
			return nil, -1, 0, err
		}
		if g != nil {
			l.used++
			if l.idleT != nil {
				l.idleT.Stop()
			}
			g.slots[i].offer = o
			if o != nil {
				g.header(i).consCtl.accept.Store(uint32(min(o.maxPeer, MaxRingSize)))
			}
			tok := makeToken(g.slots[i].gen, g.idx, i)
			l.mu.Unlock()
			return g, i, tok, nil
		}
		if ch := l.pool.growing[ringSize]; ch != nil {
			l.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, -1, 0, ctx.Err()
			}
		}
		idx, ok := l.pool.newIndex()
		if !ok {
			l.mu.Unlock()
			return nil, -1, 0, ErrMemoryLimit
		}
		ch := make(chan struct{})
		l.pool.growing[ringSize] = ch
		// Hold the index: a placeholder the pool never hands slots out of.
		l.pool.segs[idx] = &segment{idx: idx, ringSize: ringSize, deleting: true}
		n := nextSegSlots(ringSize, l.pool.count(ringSize))
		l.mu.Unlock()
		err = l.grow(ctx, idx, ringSize, n)
		l.mu.Lock()
		delete(l.pool.growing, ringSize)
		close(ch)
		l.mu.Unlock()
		if err != nil {
			return nil, -1, 0, err
		}
		grew = true
	}
}

// grow creates a segment of n slots (fewer if the process bound allows no more), sends
// it to the peer and waits for its SEGACK.
func (l *link) grow(ctx context.Context, idx uint16, ringSize, n int) error {
	var g *segment
	var err error
	for ; n >= 1; n /= 2 {
		if g, err = newSegment(idx, ringSize, n); !errors.Is(err, ErrMemoryLimit) {
			break
		}
	}
	l.mu.Lock()
	if l.pool.segs[idx] != nil && l.pool.segs[idx].mem == nil {
		delete(l.pool.segs, idx) // the placeholder
	}
	if err != nil {
		l.mu.Unlock()
		return err
	}
	if l.dead {
		l.mu.Unlock()
		g.unmap()
		return errLinkDown
	}
	l.pool.add(g)
	ack := make(chan bool, 1)
	l.segAcks[idx] = ack
	fd := g.fd
	g.fd = -1 // the send owns it now
	l.mu.Unlock()
	l.send(newMsg(msgSeg).u32(uint32(idx)).u32(uint32(ringSize)).u32(uint32(g.n)).u32(0), fd)
	select {
	case ok := <-ack:
		if !ok {
			return fmt.Errorf("%w: the peer refused a segment of %d-byte rings", ErrBadSize, ringSize)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err() // the SEGACK, when it comes, still adds the segment to the pool
	case <-l.done:
		return errLinkDown
	}
}

// sendPageLocked makes our poller page and sends it to the peer with POLL, when the
// link's first stream starts; l.mu is held. Without one (the process bound reached),
// the peer wakes each of our waiting streams, as before there was a poller.
func (l *link) sendPageLocked() {
	if l.pageSent {
		return
	}
	l.pageSent = true
	g, err := newSegment(0, MinRingSize, 1)
	if err != nil {
		return
	}
	l.ownPage = g
	l.ownPoll.Store(pollWord(g))
	fd := g.fd
	g.fd = -1 // the send owns it now
	l.send(newMsg(msgPoll).u64(0), fd)
}

// send sends a message, without ever blocking: if the socket buffer is full it is
// queued, in order, and a flush goroutine sends it once the socket is writable. It takes
// ownership of fd (-1 for none). A failed send ends the link (its reader sees the
// closed socket).
func (l *link) send(m msg, fd int) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.wdead {
		closeFD(fd)
		return
	}
	if len(l.queue) == 0 {
		err := l.trySend(m, fd)
		if err == nil {
			closeFD(fd)
			return
		}
		if !isAgain(err) {
			closeFD(fd)
			l.breakLocked()
			return
		}
	}
	if fd >= 0 {
		// The queue keeps its own descriptor, so that nobody closes it under a flush.
		fd2, err := dupFD(fd)
		closeFD(fd)
		if err != nil {
			l.breakLocked()
			return
		}
		fd = fd2
	}
	l.queue = append(l.queue, outMsg{m, fd})
	l.startFlushLocked()
}

// wake asks the peer to wake its stream of slot tok, without ever blocking or losing
// the wake-up: one that cannot be sent now is kept in a set, by slot, and sent by the
// flush goroutine.
func (l *link) wake(tok uint64, bits byte) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.wdead {
		return
	}
	if len(l.queue) == 0 && len(l.wakes) == 0 {
		var b [msgHdrLen + 8 + wakeEntryLen]byte
		m := msg(b[:0]).bytes([]byte{msgWake, 0, 0, 0, 0, 0, 0, 0}).u32(1).u32(0).u64(tok).u32(uint32(bits)).u32(0)
		err := l.trySend(m, -1)
		if err == nil {
			wakeupsSent.Load().Add(1)
			return
		}
		if !isAgain(err) {
			l.breakLocked()
			return
		}
	}
	l.wakes[tok] |= bits
	l.startFlushLocked()
}

// breakLocked ends the link's sending after a send failed; l.wmu is held.
func (l *link) breakLocked() {
	l.wdead = true
	for i, q := range l.queue {
		if i == 0 && l.inflight {
			continue // flush is passing it: closed by flush once sendmsg returned
		}
		closeFD(q.fd)
	}
	l.queue = nil
	clear(l.wakes)
	l.conn.Close()
}

func (l *link) startFlushLocked() {
	if !l.flushing {
		l.flushing = true
		go l.flush()
	}
}

// flush sends the queued messages in order, then the pending wake-ups in batches,
// waiting in the netpoller for the socket to drain; it ends when nothing is left.
func (l *link) flush() {
	for {
		l.wmu.Lock()
		if l.wdead {
			l.flushing = false
			l.wmu.Unlock()
			return
		}
		var m msg
		fd := -1
		head := false
		switch {
		case len(l.queue) > 0:
			m, fd, head = l.queue[0].b, l.queue[0].fd, true
			l.inflight = true
		case len(l.wakes) > 0:
			m = newMsg(msgWake)
			n := min(len(l.wakes), maxWakeBatch)
			wakeupsSent.Load().Add(uint64(n)) // counted as handed over: a failed send ends the link
			m = m.u32(uint32(n)).u32(0)
			for tok, bits := range l.wakes {
				if n == 0 {
					break
				}
				m = m.u64(tok).u32(uint32(bits)).u32(0)
				delete(l.wakes, tok)
				n--
			}
		default:
			l.flushing = false
			l.wmu.Unlock()
			return
		}
		l.wmu.Unlock()
		var serr error
		werr := l.rc.Write(func(sfd uintptr) bool {
			serr = sendRaw(int(sfd), m, fd)
			return !isAgain(serr)
		})
		l.wmu.Lock()
		if head {
			// The link may have broken meanwhile (a failed send elsewhere, its
			// shutdown): breakLocked emptied the queue but left this descriptor to us.
			l.inflight = false
			closeFD(fd)
			if !l.wdead {
				l.queue = l.queue[1:]
			}
		}
		if !l.wdead && (werr != nil || serr != nil) {
			l.breakLocked()
		}
		if l.wdead {
			l.flushing = false
			l.wmu.Unlock()
			return
		}
		l.wmu.Unlock()
	}
}

// readLoop is the link's reader: it handles every message until the link ends.
func (l *link) readLoop() {
	buf := make([]byte, maxMsgLen+1)
	oob := make([]byte, oobSpace)
	for {
		n, fds, err := readMsg(l.conn, buf, oob)
		if err == nil {
			err = l.handle(buf[:n], fds)
		} else {
			closeFDs(fds)
		}
		if err != nil {
			l.shutdown(err)
			return
		}
	}
}

// handle handles one message; it owns fds.
func (l *link) handle(b []byte, fds []int) error {
	body, err := checkMsg(b)
	if err == nil && len(fds) > 0 && b[0] != msgSeg && b[0] != msgPoll {
		err = violation("link message type %d carried %d descriptors", b[0], len(fds))
	}
	if err != nil {
		closeFDs(fds)
		return err
	}
	switch b[0] {
	case msgWake:
		return l.onWake(body)
	case msgSeg:
		return l.onSeg(body, fds)
	case msgPoll:
		return l.onPoll(body, fds)
	case msgSegAck:
		return l.onSegAck(body)
	case msgSegDel:
		return l.onSegDel(body)
	case msgSegDelAck:
		return l.onSegDelAck(body)
	case msgCancel:
		if !l.server {
			return l.onCancel(u64of(body))
		}
	case msgReady:
		if !l.server {
			return l.onReady(u64of(body))
		}
	}
	return violation("unexpected link message type %d", b[0])
}

func (l *link) onWake(body []byte) error {
	n := int(u32of(body))
	var kick, grow [maxWakeBatch]*Stream
	k, g := 0, 0
	l.mu.Lock()
	for i := range n {
		e := body[8+i*wakeEntryLen:]
		bits := u32of(e[8:])
		if bits == 0 || bits&^uint32(wakeKnown) != 0 || u32of(e[12:]) != 0 {
			l.mu.Unlock()
			return violation("wake entry with bits %#x", bits)
		}
		// A token of an earlier use of the slot is stale and ignored: wake-ups may
		// still be queued when the slot is released.
		if _, _, sl := l.pool.lookup(u64of(e)); sl != nil && sl.stream != nil {
			kick[k] = sl.stream
			k++
			if bits&uint32(wakeGrow) != 0 {
				grow[g] = sl.stream
				g++
			}
		}
	}
	l.mu.Unlock()
	wakeupsRcv.Load().Add(uint64(n))
	for _, s := range grow[:g] {
		s.growRequested()
	}
	for _, s := range kick[:k] {
		s.kick()
	}
	poller.woken(l, k)
	return nil
}

// onPoll maps the peer's poller page, validated as a segment of one MinRingSize slot
// (a memfd that fails validation is a violation; one the cap on peer memory refuses is
// not mapped, and our streams then wake the peer's streams one by one).
func (l *link) onPoll(body []byte, fds []int) error {
	if len(fds) != 1 {
		closeFDs(fds)
		return violation("poller page message carried %d descriptors", len(fds))
	}
	if u64of(body) != 0 {
		closeFDs(fds)
		return violation("poller page message with reserved field %#x", u64of(body))
	}
	l.mu.Lock()
	dup := l.peerPage != nil
	l.mu.Unlock()
	if dup {
		closeFDs(fds)
		return violation("poller page announced twice")
	}
	g, err := mapPeerPage(fds[0])
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return err
	}
	if err != nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		unmapPeerPage(g)
		return nil
	}
	l.peerPage = g
	l.peerPoll.Store(pollWord(g))
	return nil
}

// onSeg maps a peer segment, or refuses it (a ring larger than this side accepts, the
// cap on peer memory or on segments); a memfd that fails validation is a violation.
func (l *link) onSeg(body []byte, fds []int) error {
	if len(fds) != 1 {
		closeFDs(fds)
		return violation("segment message carried %d descriptors", len(fds))
	}
	idx, err := idx32(body)
	if err == nil {
		err = zero32(body[12:])
	}
	if err != nil {
		closeFDs(fds)
		return err
	}
	ringSize, n := u32of(body[4:]), u32of(body[8:])
	l.mu.Lock()
	dup := l.peer[idx] != nil
	full := len(l.peer) >= maxSegments
	l.mu.Unlock()
	if dup {
		closeFDs(fds)
		return violation("segment %d announced twice", idx)
	}
	ok := !full && int64(ringSize) <= l.maxPeer.Load()
	var g *segment
	if ok {
		g, err = mapPeerSegment(fds[0], idx, int(ringSize), int(n))
		var pe *ProtocolError
		if errors.As(err, &pe) {
			return err
		}
		ok = err == nil
	} else {
		closeFDs(fds)
	}
	if ok {
		l.mu.Lock()
		l.peer[idx] = g
		l.mu.Unlock()
	}
	l.send(newMsg(msgSegAck).u32(uint32(idx)).u32(b2u(ok)), -1)
	return nil
}

func (l *link) onSegAck(body []byte) error {
	idx, w, err := segWord(body, 1)
	if err != nil {
		return err
	}
	ok := w == 1
	l.mu.Lock()
	g := l.pool.segs[idx]
	ack := l.segAcks[idx]
	if g == nil || ack == nil {
		l.mu.Unlock()
		return violation("acknowledgement of unknown segment %d", idx)
	}
	delete(l.segAcks, idx)
	if ok {
		g.acked = true
	} else {
		l.pool.remove(g)
		g.unmap()
	}
	l.mu.Unlock()
	ack <- ok
	return nil
}

// onSegDel forgets a peer segment the owner withdrew: unmapped now, or once the last
// stream of ours writing into one of its slots closed (an owner withdrawing a slot in
// use only hurts the streams it shares with us).
func (l *link) onSegDel(body []byte) error {
	idx, _, err := segWord(body, 0)
	if err != nil {
		return err
	}
	l.mu.Lock()
	g := l.peer[idx]
	if g == nil {
		l.mu.Unlock()
		return violation("withdrawal of unknown segment %d", idx)
	}
	delete(l.peer, idx)
	g.deleted = true
	if g.refs == 0 {
		g.unmapPeer()
	}
	l.mu.Unlock()
	l.send(newMsg(msgSegDelAck).u32(uint32(idx)).u32(0), -1)
	return nil
}

func (l *link) onSegDelAck(body []byte) error {
	idx, _, err := segWord(body, 0)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.pool.segs[idx]
	if g == nil || !g.deleting || g.mem == nil {
		return violation("acknowledged withdrawal of segment %d, which was not withdrawn", idx)
	}
	l.pool.remove(g)
	g.unmap()
	return nil
}

// released reports whether the peer released own slot i of g: it set fReleased in the
// slot's producer line, its last store into the slot. A peer that sets it early only
// loses its own streams' data on this link.
func released(g *segment, i int) bool {
	return g.header(i).prodCtl.flags.Load()&fReleased != 0
}

// sweepLocked frees the closing slots the peer released since; l.mu is held.
func (l *link) sweepLocked() {
	k := 0
	for _, c := range l.closing {
		sl := &c.g.slots[c.i]
		if sl.state != slotClosed || sl.gen != c.gen {
			continue // freed otherwise (the link died)
		}
		if released(c.g, c.i) {
			l.freeLocked(c.g, c.i)
			continue
		}
		l.closing[k] = c
		k++
	}
	clear(l.closing[k:])
	l.closing = l.closing[:k]
}

// sweepDelay is how long a slot closed before the peer released it may wait to be
// freed when no new connection on its link sweeps first. While slots stay unreleased
// (a peer that keeps its end of a stream open, or never releases a withdrawn slot) the
// delay doubles up to maxSweepDelay, so that such a link costs no steady CPU.
const (
	sweepDelay    = 5 * time.Millisecond
	maxSweepDelay = time.Second
)

// sweep frees the closing slots the peer released, and comes back, later each time,
// while some are left.
func (l *link) sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return
	}
	l.sweepLocked()
	if len(l.closing) > 0 {
		l.sweepIn = min(2*l.sweepIn, maxSweepDelay)
		l.sweepT.Reset(l.sweepIn)
	}
}

// freeLocked zeroes and frees an own slot; l.mu is held.
func (l *link) freeLocked(g *segment, i int) {
	l.pool.put(g, i, time.Now())
	l.used--
	if g.free == g.n {
		l.armShrinkLocked()
	}
	if l.used == 0 {
		l.armIdleLocked()
	}
}

// bindOffer (server) binds own slot stok, held by offer o, to the client slot ctok
// with a ring of size bytes that the client's CLC Confirm names, and starts the
// server's stream; no message goes on the link. The client bound its side before it
// sent the Confirm (see bindConnect): it stored, in its slot's consumer control line,
// the slot's token and stok, which no process but the two ends of this link can
// write there, and it checked its ring against the bound our slot announced. A
// Confirm naming a stale, foreign or unmapped slot, another size or a ring beyond the
// bound is a violation, but the Confirm came over TCP, not over the link: it may come
// from another process that claims this client's PeerID (which any server the client
// connects to learns). So it costs this connection only: the offer is withdrawn, as
// when the server gives up (see withdraw), and the link lives on. It fails with
// ErrOfferClosed if the offer no longer holds the slot (cancelled, or the link ended).
func (l *link) bindOffer(o *Offer, stok, ctok uint64, size int) (*Stream, error) {
	l.mu.Lock()
	g, i, sl := l.pool.lookup(stok)
	if l.dead || sl == nil || sl.state != slotHeld || sl.offer != o {
		l.mu.Unlock()
		return nil, ErrOfferClosed
	}
	var err error
	pg, pi := l.peerSlot(ctok, MaxRingSize)
	switch {
	case pg == nil:
		err = violation("confirmed client slot %#x, which is not mapped", ctok)
	case pg.ringSize != size:
		err = violation("confirmed a %d-byte ring for client slot %#x of %d bytes", size, ctok, pg.ringSize)
	case pg.ringSize > o.maxPeer:
		err = violation("bound a %d-byte ring to an offer that accepts %d", pg.ringSize, o.maxPeer)
	default:
		if h := &pg.header(pi).consCtl; h.token.Load() != ctok || h.bound.Load() != stok {
			err = violation("client slot %#x is not bound to server slot %#x", ctok, stok)
		}
	}
	if err != nil {
		l.withdrawLocked(g, i, sl)
		l.mu.Unlock()
		l.send(newMsg(msgCancel).u64(stok), -1)
		return nil, err
	}
	s := l.bindLocked(g, i, stok, pg, pi, ctok)
	l.mu.Unlock()
	// The client may have written up to the edge of our first window before we bound,
	// and asked for more with a WAKE that found no stream: grow it now, as that
	// request would have.
	if s.rxh.prod.cursor.Load() >= s.win.Load() {
		s.growRequested()
	}
	return s, nil
}

// bindConnect (client) binds own slot ctok, held by a Connect, to server slot stok of
// the Accept and starts the client's stream, unless the server withdrew that offer:
// its slot's consumer control line then no longer holds stok (freed, or handed out
// again) or says abort (cancelled; a CANCEL is on its way). It records the binding in
// our slot's consumer control line, for the server to check (see bindOffer), before
// the caller sends its Confirm. maxPeer bounds the server's ring.
func (l *link) bindConnect(ctok, stok uint64, maxPeer int) (*Stream, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g, i, sl := l.pool.lookup(ctok)
	if l.dead || sl == nil || sl.state != slotHeld {
		return nil, errLinkDown
	}
	pg, pi := l.peerSlot(stok, maxPeer)
	if pg == nil {
		l.freeLocked(g, i)
		return nil, fmt.Errorf("smc: shm: connect: the server's slot %#x is gone", stok)
	}
	if !offered(pg.header(pi), stok) {
		l.freeLocked(g, i)
		return nil, ErrOfferClosed
	}
	g.header(i).consCtl.bound.Store(stok)
	return l.bindLocked(g, i, ctok, pg, pi, stok), nil
}

// peerSlot returns the peer segment and slot index a peer token names, if the segment
// is mapped, the slot exists and its ring is at most maxRing bytes; l.mu is held.
func (l *link) peerSlot(tok uint64, maxRing int) (*segment, int) {
	gen, si, i := splitToken(tok)
	pg := l.peer[si]
	if gen == 0 || pg == nil || pg.deleted || i >= pg.n || pg.ringSize > maxRing {
		return nil, -1
	}
	return pg, i
}

// bindLocked starts the stream of own slot (g, i) and peer slot (pg, pi); l.mu is held.
func (l *link) bindLocked(g *segment, i int, tok uint64, pg *segment, pi int, ptok uint64) *Stream {
	s := newStream(l, g, i, tok, pg, pi, ptok)
	l.sendPageLocked()
	sl := &g.slots[i]
	sl.state, sl.stream, sl.offer = slotBound, s, nil
	pg.refs++
	chargePeer(int64(s.tx.win))
	return s
}

// offered reports whether server slot header h is still offered under token stok: it
// holds that token (it was not freed, nor handed out again) and no abort (the offer
// was not cancelled).
func offered(h *header, stok uint64) bool {
	return h.consCtl.token.Load() == stok && h.consCtl.flags.Load()&fAbort == 0
}

// onCancel (client): the server withdrew its offer of slot stok, which it never bound
// to a stream and never will, nor wrote into a slot of ours for (see withdraw). A
// stream of ours bound to it fails with a reset, and our slot is freed once the stream
// closed, as if the server had released it; with nothing of ours bound to it, we
// release the server's slot at once (a Connect still to bind to it sees its abort).
// Only this failure path scans the pool.
func (l *link) onCancel(stok uint64) error {
	l.mu.Lock()
	var failed *Stream
	found := false
	for _, g := range l.pool.segs {
		for i := range g.slots {
			if sl := &g.slots[i]; sl.state == slotBound && sl.stream.peerTok == stok {
				failed, found = sl.stream, true
				g.header(i).prodCtl.flags.Or(fReleased)
			}
		}
	}
	for _, c := range l.closing {
		if c.peer == stok {
			found = true
			c.g.header(c.i).prodCtl.flags.Or(fReleased)
		}
	}
	if found {
		l.sweepLocked()
	} else if pg, pi := l.peerSlot(stok, MaxRingSize); pg != nil {
		pg.header(pi).prodCtl.flags.Or(fReleased)
	} else {
		l.mu.Unlock()
		return violation("cancelled server slot %#x, which is not mapped", stok)
	}
	l.mu.Unlock()
	if failed != nil {
		failed.fail(errReset("the server gave up on the connection"))
	}
	return nil
}

func (l *link) onReady(tok uint64) error {
	l.mu.Lock()
	ch := l.ready
	l.ready = nil
	l.mu.Unlock()
	if ch == nil {
		return violation("unexpected ready message")
	}
	ch <- tok
	return nil
}

// streamClosed is Close's last step: the peer is told that we never touch its slot
// again (fReleased, see Stream.releasePeer), with no message; the stream's own slot is
// freed if the peer released it already or the link is dead, else it waits in
// l.closing for the peer's fReleased.
func (l *link) streamClosed(s *Stream) {
	s.releasePeer()
	l.mu.Lock()
	sl := &s.own.slots[s.ownIdx]
	if sl.stream == s {
		sl.state, sl.stream, sl.win = slotClosed, nil, int(s.win.Load()) // final: Close waited out a growth
		if l.dead || released(s.own, s.ownIdx) {
			l.freeLocked(s.own, s.ownIdx)
		} else {
			l.closeLaterLocked(closedSlot{s.own, s.ownIdx, sl.gen, s.peerTok})
		}
	}
	pg := s.peerSeg
	unreservePeer(int64(s.tx.win)) // Close waited out the last Write: what it accepted, counted
	pg.refs--
	if pg.deleted && pg.refs == 0 {
		pg.unmapPeer()
	}
	fin := l.dead && l.used == 0
	l.mu.Unlock()
	if fin {
		l.finish()
	}
}

// closeLaterLocked puts a closed own slot on the list the sweep frees once the peer
// released it; l.mu is held.
func (l *link) closeLaterLocked(c closedSlot) {
	if len(l.closing) == 0 {
		l.sweepIn = sweepDelay
		if l.sweepT == nil {
			l.sweepT = time.AfterFunc(sweepDelay, l.sweep)
		} else {
			l.sweepT.Reset(sweepDelay)
		}
	}
	l.closing = append(l.closing, c)
}

// releaseHeld frees an own slot held by an offer or a connect that will not bind it,
// and that was never announced to the peer.
func (l *link) releaseHeld(tok uint64, o *Offer) {
	l.mu.Lock()
	g, i, sl := l.pool.lookup(tok)
	if sl != nil && sl.state == slotHeld && sl.offer == o {
		l.freeLocked(g, i)
	}
	fin := l.dead && l.used == 0
	l.mu.Unlock()
	if fin {
		l.finish()
	}
}

// withdraw (server) cancels offer o of own slot tok after its Accept went out: the
// client may have bound to the slot and be writing into it already, so the slot is
// not freed before the client released it (fReleased) or the link ended. Its consumer
// control line says abort, which a client writing into it sees as a reset and a
// client still to bind sees as a withdrawn offer, and a CANCEL tells the client, whose
// stream bound to it, if any, fails with a reset (see onCancel).
func (l *link) withdraw(tok uint64, o *Offer) {
	l.mu.Lock()
	g, i, sl := l.pool.lookup(tok)
	if sl == nil || sl.state != slotHeld || sl.offer != o {
		l.mu.Unlock()
		return // bound, or freed with the link
	}
	l.withdrawLocked(g, i, sl)
	l.mu.Unlock()
	l.send(newMsg(msgCancel).u64(tok), -1)
}

// withdrawLocked marks held own slot (g, i) aborted and closed, waiting for the
// client's release; l.mu is held, and the caller sends the CANCEL.
func (l *link) withdrawLocked(g *segment, i int, sl *slot) {
	g.header(i).consCtl.flags.Store(fAbort)
	sl.state, sl.offer = slotClosed, nil
	l.closeLaterLocked(closedSlot{g, i, sl.gen, 0})
}

// armIdleLocked (server) schedules the end of a link that has no slot in use.
func (l *link) armIdleLocked() {
	if !l.server || l.dead {
		return
	}
	d := time.Duration(linkIdle.Load())
	if l.ep != nil && l.ep.isClosed() {
		d = 0
	}
	if l.idleT == nil {
		l.idleT = time.AfterFunc(d, l.idleCheck)
	} else {
		l.idleT.Reset(d)
	}
}

func (l *link) idleCheck() {
	l.mu.Lock()
	idle := l.used == 0 && !l.dead
	l.mu.Unlock()
	if idle {
		l.shutdown(nil)
	}
}

func (l *link) armShrinkLocked() {
	if l.dead {
		return
	}
	d := time.Duration(segmentIdle.Load())
	if l.shrinkT == nil {
		l.shrinkT = time.AfterFunc(d, l.shrink)
	} else {
		l.shrinkT.Reset(d)
	}
}

// shrink withdraws own segments that stayed entirely free for segmentIdle.
func (l *link) shrink() {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		return
	}
	d := time.Duration(segmentIdle.Load())
	idle := l.pool.idle(time.Now().Add(-d))
	for _, g := range idle {
		g.deleting = true
	}
	if len(l.pool.idle(time.Now().Add(time.Hour))) > 0 {
		l.shrinkT.Reset(d) // segments that became free since
	}
	l.mu.Unlock()
	for _, g := range idle {
		l.send(newMsg(msgSegDel).u32(uint32(g.idx)).u32(0), -1)
	}
}

// shutdown ends the link: the socket is closed (the peer sees EOF), offers can no
// longer bind, streams see the peer vanished unless they saw it close, and once no
// stream uses a slot every segment is unmapped. err is why (nil: idle, or EOF).
func (l *link) shutdown(err error) {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		return
	}
	l.dead, l.err = true, err
	close(l.done)
	if l.idleT != nil {
		l.idleT.Stop()
	}
	if l.shrinkT != nil {
		l.shrinkT.Stop()
	}
	if l.sweepT != nil {
		l.sweepT.Stop()
	}
	l.closing = nil // freed below with every closed slot
	var streams []*Stream
	for _, g := range l.pool.segs {
		for i := range g.slots {
			sl := &g.slots[i]
			switch sl.state {
			case slotBound:
				streams = append(streams, sl.stream)
			case slotHeld, slotClosed:
				l.freeLocked(g, i)
			}
		}
	}
	if l.ready != nil {
		close(l.ready)
		l.ready = nil
	}
	fin := l.used == 0
	l.mu.Unlock()

	l.wmu.Lock()
	if !l.wdead {
		l.breakLocked()
	}
	l.wmu.Unlock()
	counters.links.Add(-1)
	if l.ep != nil {
		l.ep.forget(l)
	} else {
		forgetClientLink(l)
	}
	var pe *ProtocolError
	violated := errors.As(err, &pe)
	for _, s := range streams {
		s.linkDown(err, violated)
	}
	if fin {
		l.finish()
	}
}

// finish unmaps every segment of a dead link once no slot is in use.
func (l *link) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.pool.segs {
		l.pool.remove(g)
		if g.mem != nil {
			g.unmap()
		}
	}
	for _, g := range l.peer {
		g.unmapPeer()
	}
	clear(l.peer)
	// No stream is left to publish into the peer's page, nor a waiter of ours for the
	// poller to announce a sleep on.
	l.ownPoll.Store(nil)
	l.peerPoll.Store(nil)
	if l.ownPage != nil {
		l.ownPage.unmap()
		l.ownPage = nil
	}
	if l.peerPage != nil {
		unmapPeerPage(l.peerPage)
		l.peerPage = nil
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Client links, by endpoint directory (cleaned, "" for abstract sockets) and link ID,
// which name the endpoint's address without it being formatted per connection.
type clientKey struct {
	dir string
	id  uint32
}

// addr returns the address of the endpoint that serves the key's link.
func (k clientKey) addr() string { return Addr(k.dir, uint16(k.id>>16)) }

var clientLinks struct {
	mu      sync.Mutex
	m       map[clientKey]*link
	dialing map[clientKey]chan struct{} // links being set up: closed when done
}

func addClientLink(l *link) {
	clientLinks.mu.Lock()
	defer clientLinks.mu.Unlock()
	if clientLinks.m == nil {
		clientLinks.m = make(map[clientKey]*link)
	}
	clientLinks.m[l.key] = l
}

func forgetClientLink(l *link) {
	clientLinks.mu.Lock()
	defer clientLinks.mu.Unlock()
	if clientLinks.m[l.key] == l {
		delete(clientLinks.m, l.key)
	}
}
