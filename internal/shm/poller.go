package shm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The poller. A waiter whose spin ended (see Stream.spin) does not wait for a wake-up of
// its own: it registers with the process's poller, one goroutine that polls the control
// lines of every registered waiter and readies, through its channel, each one whose line
// changed. The poller keeps polling while it keeps finding work (for a spin budget after
// its last find, if it gets a spin slot); then it announces its sleep in the poller word
// of every link with registered waiters, polls them all once more and blocks. A
// producer that published to a waiting stream sends a WAKE only if the peer's poller word
// on that link says asleep, and only once per announced sleep: a busy process is not
// woken through the kernel, and a sleeping one once per sleep, however many of its
// streams got data. doc.go ("Wake-ups") has the argument that no wake-up is lost.
//
// Each side of a link owns one poller page: a memfd made, sealed and validated like a
// segment of one MinRingSize slot, sent to the peer with POLL before its first SEG. Its
// first word is the owner's poller word: 0 while the owner's poller polls the link's
// streams, else the sequence number of the sleep it announced. A side never reads its
// own word back; until the peer's page is mapped it wakes each waiting stream of the
// peer once per announced sleep of that stream, as without a poller.

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

// pollerState is the process's poller; its goroutine runs while it has waiters.
type pollerState struct {
	mu      sync.Mutex
	waiters []*waiter     // registered waiters, each knowing its index (waiter.idx)
	running bool          // the goroutine runs
	asleep  bool          // the goroutine announced a sleep and blocks (or is about to) on wake
	seq     uint32        // sequence number of the current or last announced sleep, never 0
	wake    chan struct{} // capacity 1: a WAKE arrived, or a waiter registered unannounced
}

var poller = pollerState{wake: make(chan struct{}, 1)}

// kickPoller wakes the poller if it sleeps; the link's reader calls it on every WAKE.
func kickPoller() { kickOne(poller.wake) }

// register hands w to the poller: w's sleep word is announced, and w.ready describes
// what it waits for. The caller rechecks after register and then parks on w.wake.
// The poller is started if it does not run, and kicked if it sleeps without having
// announced it on w's link: the peer would not wake it for w.
func (w *waiter) register() {
	p := &poller
	p.mu.Lock()
	w.idx = len(p.waiters)
	p.waiters = append(p.waiters, w)
	switch {
	case !p.running:
		p.running = true
		go p.loop()
	case p.asleep && w.s.link.pollPub != p.seq:
		kickOne(p.wake)
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

// loop is the poller's goroutine. It ends when no waiter is registered.
func (p *pollerState) loop() {
	spinning := false // holds a spin slot
	found := time.Now()
	for i := 1; ; i++ {
		p.mu.Lock()
		if len(p.waiters) == 0 {
			p.running = false
			p.mu.Unlock()
			if spinning {
				releaseSpin()
			}
			return
		}
		n := p.scanLocked()
		p.mu.Unlock()
		if n > 0 {
			// The readied goroutines were queued on our P: let them run.
			runtime.Gosched()
			found = time.Now()
			continue
		}
		if i%64 != 0 {
			continue
		}
		now := time.Now()
		if !spinning {
			spinning = acquireSpin(now)
		}
		if spinning && now.Sub(found) < time.Duration(spinNanos.Load()) {
			runtime.Gosched()
			continue
		}
		if spinning {
			releaseSpin()
			spinning = false
		}
		p.sleep()
		found = time.Now()
	}
}

// sleep announces the poller's sleep on the links of the registered waiters, polls
// them once more, and blocks until kicked, unless that poll found work.
//
// Dekker's pattern, as for a stream's sleep word: the poller Swaps its word and then
// loads the cursors; a producer Swaps its cursor and then loads the word. Either the
// poller's last poll sees the cursor, or the producer sees the announcement and rings.
func (p *pollerState) sleep() {
	p.mu.Lock()
	p.seq++
	if p.seq == 0 {
		p.seq = 1
	}
	p.asleep = true
	for _, w := range p.waiters {
		if l := w.s.link; l.pollPub != p.seq {
			l.pollPub = p.seq
			if pw := l.ownPoll.Load(); pw != nil {
				pw.Swap(p.seq) // Swap, not Store: see dekkerStore
			}
		}
	}
	n := p.scanLocked()
	p.mu.Unlock()
	if n == 0 {
		<-p.wake
	}
	p.mu.Lock()
	p.asleep = false
	for _, w := range p.waiters {
		if l := w.s.link; l.pollPub != 0 {
			l.pollPub = 0
			if pw := l.ownPoll.Load(); pw != nil {
				pw.Swap(0) // before the next poll's loads, as a full barrier
			}
		}
	}
	p.mu.Unlock()
}
