package shm

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The poller. A waiter whose spin ended (see Stream.spin) registers with the process's
// poller before it parks. The poller is passive while its waiters wait to be rung: it has
// no goroutine, and each ring is answered by announcing a new sleep and polling the
// waiters once, by the link's leader (a waiter reading the link's bell, see lead) or, for
// a WAKE, by the link's reader. It is active while its goroutine polls the waiters, which
// it turns only when such a poll finds more streams with data than the ring named. A
// producer rings a passive poller once per announced sleep and an active one not at all.
// doc.go ("Wake-ups") describes it and argues that no wake-up is lost.
//
// Each side of a link owns one poller page: a memfd made, sealed and validated like a
// segment of one MinRingSize slot, sent to the peer with POLL when the link's first
// stream starts, with the write end of its bell (see bell_linux.go). Its first word is
// the owner's poller word on that link. A side never reads its own word back; until the
// peer's page is mapped it wakes each waiting stream of the peer once per announced
// sleep of that stream, with a WAKE.

// mapPeerPage maps the peer's poller page (see mapPeerSegment for the validation and
// the memory cap); it is not one of the link's peer segments, nor counted with them.
func mapPeerPage(fd int) (*segment, error) {
	g, err := mapPeerSegment(fd, 0, MinRingSize, 1)
	if err == nil {
		counters.peerSegments.Add(-1)
		counters.peerSegmentsMapped.Add(^uint64(0)) // minus one
	}
	return g, err
}

// unmapPeerPage releases what mapPeerPage mapped.
func unmapPeerPage(g *segment) {
	if g.mem != nil {
		counters.peerSegments.Add(1)
		g.unmapPeer()
	}
}

// pollWord returns the poller word of a poller page.
func pollWord(g *segment) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&g.mem[0]))
}

// pollerState is the process's poller. It is passive (no goroutine) while its waiters
// wait for WAKEs, and active while its goroutine polls them.
type pollerState struct {
	mu      sync.Mutex
	waiters []*waiter // registered waiters, each knowing its index (waiter.idx)
	seq     uint32    // sequence number of the sleep announced while passive, never 0
	active  atomic.Bool
}

var poller = pollerState{seq: 1}

// register hands w to the poller: w's sleep word is announced, and w.h, w.c0, w.step,
// w.f0 and w.st0 describe what it waits for. The caller rechecks after register and then
// parks. A passive poller announces its sleep on w's link first, if it has not yet, and
// makes w its link's leader if the link has none: register reports whether it did.
func (w *waiter) register() bool {
	p := &poller
	l := w.s.link
	if w.role == nil {
		w.role = make(chan struct{}, 1) // on the first wait: most streams never park
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w.idx = len(p.waiters)
	p.waiters = append(p.waiters, w)
	w.lidx = len(l.waiters)
	l.waiters = append(l.waiters, w)
	if p.active.Load() {
		return false // the active poller polls for w: no leader needed
	}
	p.announceLocked(l)
	if l.lead.Load() == nil && l.leadable.Load() {
		l.lead.Store(w)
		return true
	}
	return false
}

// unregister takes w back from the poller, if it is still registered, at the end of
// its wait. If w held its link's role (or was handed it), it gives it up, and a passive
// poller hands it on. Only here: a leader readied by a poll may still be in its bell's
// read, and the link has one reader at a time.
func (w *waiter) unregister() {
	p := &poller
	l := w.s.link
	p.mu.Lock()
	p.removeLocked(w)
	if l.lead.Load() == w {
		l.lead.Store(nil)
		if !p.active.Load() {
			p.designateLocked(l)
		}
	}
	p.mu.Unlock()
}

// removeLocked takes w off the registered waiters; p.mu is held.
func (p *pollerState) removeLocked(w *waiter) {
	i := w.idx
	if i < 0 {
		return
	}
	last := p.waiters[len(p.waiters)-1]
	p.waiters[i], last.idx = last, i
	p.waiters[len(p.waiters)-1] = nil
	p.waiters = p.waiters[:len(p.waiters)-1]
	w.idx = -1
	l := w.s.link
	last = l.waiters[len(l.waiters)-1]
	l.waiters[w.lidx], last.lidx = last, w.lidx
	l.waiters[len(l.waiters)-1] = nil
	l.waiters = l.waiters[:len(l.waiters)-1]
}

// designateLocked hands the role of l's leader, which nobody holds, to one of its
// registered waiters, if it has any: the last one registered, told on its role channel
// (see Stream.wait). p.mu is held.
//
// So while the poller is passive, every link with registered waiters has a leader, or a
// waiter handed the role that takes it unless it leaves, and then hands it on: rings of
// the link's bell are read. While the poller is active, they need not be (it polls every
// waiter, and on turning passive it hands the role on every link that has none). The
// role passes from one waiter to the next under p.mu, after the first left its read.
func (p *pollerState) designateLocked(l *link) {
	if n := len(l.waiters); n > 0 && l.lead.Load() == nil && l.leadable.Load() {
		w := l.waiters[n-1]
		l.lead.Store(w)
		kickOne(w.role)
	}
}

// announceLocked stores the current sleep in l's poller word, unless it is there
// already; p.mu is held. Any link of a registered waiter is open and its page mapped.
func (p *pollerState) announceLocked(l *link) {
	if l.pollPub == p.seq {
		return
	}
	l.pollPub = p.seq
	if pw := l.ownPoll.Load(); pw != nil {
		pw.Swap(p.seq) // Swap, not Store: see dekkerStore
	}
}

// sleepLocked announces a new sleep on the links of all registered waiters and polls
// them once more; it returns how many that poll readied. p.mu is held.
//
// Dekker's pattern, as for a stream's sleep word: the poller Swaps its word and then
// loads the cursors; a producer Swaps its cursor and then loads the word. Either this
// poll sees the cursor, or the producer sees the new sleep and rings.
func (p *pollerState) sleepLocked() int {
	p.seq++
	if p.seq == 0 {
		p.seq = 1
	}
	for _, w := range p.waiters {
		p.announceLocked(w.s.link)
	}
	return p.scanLocked()
}

// scanLocked readies and unregisters every waiter whose line or stream changed, and
// returns how many it readied; p.mu is held. Registered waiters are inside wait, so
// their streams are open and their slots mapped.
func (p *pollerState) scanLocked() int {
	n := 0
	for i := 0; i < len(p.waiters); {
		w := p.waiters[i]
		if !w.ready() {
			i++
			continue
		}
		p.removeLocked(w) // moves the last waiter to i
		w.kick()
		n++
	}
	return n
}

// woken is what the link's reader does after a WAKE on l that kicked kicked streams, and
// the link's leader after a ring of its bell (which names one stream, unknown). If l's
// word holds the passive poller's current sleep, the peer may have rung for it and
// will not ring for it again, so the poller announces a new one (to waiters that
// register later, if none is left) and polls once; a ring for an older sleep, or a WAKE
// from a peer without our page, needs nothing more. If that poll readied more streams
// than the ring named, other streams got data that rang no bell: the process is busy,
// and the poller turns active, unless spinning is off ([SetSpin]).
func (p *pollerState) woken(l *link, kicked int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active.Load() || l.pollPub != p.seq {
		return // an active poller announces a new sleep when it turns passive
	}
	if p.sleepLocked() > kicked && spinNanos.Load() > 0 {
		p.activateLocked()
	}
}

// activateLocked starts the poller's goroutine. p.mu is held.
func (p *pollerState) activateLocked() {
	p.active.Store(true)
	p.awakeLocked()
	go p.loop()
}

// awakeLocked stores 0 (awake) in the poller words of the links of all registered
// waiters, so that producers do not ring while the poller polls; p.mu is held. A word
// left announcing an older sleep (its link has no waiter now) costs one WAKE at most.
func (p *pollerState) awakeLocked() {
	for _, w := range p.waiters {
		if l := w.s.link; l.pollPub != 0 {
			l.pollPub = 0
			if pw := l.ownPoll.Load(); pw != nil {
				pw.Swap(0)
			}
		}
	}
}

// loop is the active poller: it polls the registered waiters, yielding its P to the
// goroutines it readied, until it found nothing for the spin budget; then it announces
// a sleep, polls once more and, if that found nothing either, turns passive and ends.
func (p *pollerState) loop() {
	found := time.Now()
	for i := 1; ; i++ {
		p.mu.Lock()
		n := p.scanLocked()
		if n == 0 && (len(p.waiters) == 0 || i%16 == 0 && time.Since(found) > time.Duration(spinNanos.Load())) {
			if n = p.sleepLocked(); n == 0 {
				p.active.Store(false)
				for _, w := range p.waiters {
					p.designateLocked(w.s.link)
				}
				p.mu.Unlock()
				return
			}
			p.awakeLocked()
		}
		p.mu.Unlock()
		if n > 0 {
			found = time.Now()
		}
		runtime.Gosched()
	}
}

// lead is wait's last stage for the waiter that holds its link's role: it reads the
// link's bell in the netpoller, so that a ring readies this goroutine itself. On each
// ring it does what the link's reader does on a WAKE (see woken): if the link's word
// holds the passive poller's current sleep, a new sleep is announced and every
// registered waiter polled, the ready ones kicked. It returns when w is ready or was
// kicked (nil; a spurious return is fine), or when the deadline in dl passed. Its wait
// then ends, and unregister hands the role on.
//
// A kick ends the bell's read (see waiter.kick): the leader stores leading and then
// looks at its kick count, which a kick before the count it started with left a token
// for on w.wake. A bell that reports EOF (the peer closed its write end, which only
// hurts the peer's own streams) or was closed at the link's end leads no more.
func (w *waiter) lead(dl *atomic.Int64, op string) error {
	l := w.s.link
	k0 := w.kicks.Load()
	select {
	case <-w.wake:
		return nil // kicked before k0
	default:
	}
	for {
		var t time.Time
		if d := dl.Load(); d != 0 {
			t = time.Unix(0, d)
		}
		l.ownBell.SetReadDeadline(t)
		w.leading.Swap(true) // Swap, not Store: see dekkerStore
		if w.kicks.Load() != k0 || w.ready() {
			w.leading.Store(false)
			break
		}
		n, err := l.ownBell.Read(l.bellBuf[:])
		w.leading.Store(false)
		if n > 0 {
			wakeupsRcv.Load().Add(uint64(n))
			counters.bellRings.Add(uint64(n))
			poller.woken(l, 1)
		}
		if w.kicks.Load() != k0 || w.ready() {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if err := deadlinePassed(dl, op); err != nil {
				return err
			}
		} else if err != nil {
			l.leadable.Store(false)
			return nil
		}
	}
	select {
	case <-w.wake: // the kick's token, if it left one: this return answers it
	default:
	}
	return nil
}
