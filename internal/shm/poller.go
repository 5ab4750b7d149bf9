package shm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The poller. A waiter whose spin ended (see Stream.spin) registers with the process's
// poller before it parks. The poller is passive while its waiters wait for WAKEs: it has
// no goroutine, and the link's reader answers each WAKE by announcing a new sleep and
// polling the waiters once. It is active while its goroutine polls the waiters, which it
// turns only when a WAKE's poll finds more streams with data than the WAKE named. A
// producer rings a passive poller once per announced sleep and an active one not at all.
// doc.go ("Wake-ups") describes it and argues that no wake-up is lost.
//
// Each side of a link owns one poller page: a memfd made, sealed and validated like a
// segment of one MinRingSize slot, sent to the peer with POLL when the link's first
// stream starts. Its first word is the owner's poller word on that link. A side never reads its own word
// back; until the peer's page is mapped it wakes each waiting stream of the peer once per
// announced sleep of that stream.

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
// parks on w.wake. A passive poller announces its sleep on w's link first, if it has
// not yet.
func (w *waiter) register() {
	p := &poller
	p.mu.Lock()
	w.idx = len(p.waiters)
	p.waiters = append(p.waiters, w)
	if !p.active.Load() {
		p.announceLocked(w.s.link)
	}
	p.mu.Unlock()
}

// unregister takes w back from the poller, if it is still registered.
func (w *waiter) unregister() {
	p := &poller
	p.mu.Lock()
	p.removeLocked(w)
	p.mu.Unlock()
}

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
		kickOne(w.wake)
		n++
	}
	return n
}

// woken is what the link's reader does after a WAKE on l that kicked kicked streams. If
// l's word holds the passive poller's current sleep, the peer may have rung for it and
// will not ring for it again, so the poller announces a new one (to waiters that
// register later, if none is left) and polls once; a WAKE for an older sleep, or one
// from a peer without our page, needs nothing more. If that poll readied more streams
// than the WAKE named, other streams got data that rang no bell: the process is busy,
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
