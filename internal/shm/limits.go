package shm

import (
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultMemoryLimit is the process-wide bound on own pool memory until
// [SetMemoryLimit] changes it.
const DefaultMemoryLimit = 1 << 30

var (
	memLimit atomic.Int64 // bytes; see SetMemoryLimit
	memUsed  atomic.Int64 // bytes of own segments this process populated (see SetMemoryLimit)
	peerUsed atomic.Int64 // bytes of peer segments this process may touch (see SetMemoryLimit)
)

func init() { memLimit.Store(DefaultMemoryLimit) }

// SetMemoryLimit sets the process-wide bound on the resident bytes of its own pools
// (the shared memory this process allocates, populates and is charged for) and returns
// the previous bound. A negative n only reports the current bound. Own memory is counted
// as it is populated: a segment's slot headers when it is made, a ring's first window
// when its slot is first handed out, each growth of a stream's window; and uncounted as
// it is returned: a freed slot's pages beyond its first window, a withdrawn segment.
// A window growth that would cross the bound does not happen, and the stream keeps the
// window it has (see doc.go, "Populated window"): existing streams never fail for it.
// Once the bound is reached (or if it is lowered below what is held), a new stream fails
// with [ErrMemoryLimit], even if a pool has a free slot; below it, a new stream fails if
// its first window or the headers of a new segment would cross the bound. The peer
// memory a process may touch is counted apart ([Counters].PeerMemory) and capped by the
// same bound: the slot headers of the peer segments it maps, and of each peer ring it
// writes into the window it accepted. A stream's first window is counted without the
// cap (streams are bounded by our own slots); a growth that does not fit is refused, so
// that no peer can make this process touch unbounded memory.
func SetMemoryLimit(n int64) int64 {
	if n < 0 {
		return memLimit.Load()
	}
	return memLimit.Swap(n)
}

// MemoryInUse returns the resident bytes of own pools this process holds: what
// [SetMemoryLimit] bounds.
func MemoryInUse() int64 { return memUsed.Load() }

// reserve accounts n bytes of own memory against the process bound.
func reserve(n int64) error { return reserveIn(&memUsed, n) }

func unreserve(n int64) { memUsed.Add(-n) }

// reservePeer accounts n bytes of peer memory against the cap on peer memory.
func reservePeer(n int64) error { return reserveIn(&peerUsed, n) }

// countPeer reports whether n more bytes of peer memory fit the cap, and if so counts
// them: how a stream accepts a growth of the peer's window (see txCursor.observe).
func countPeer(n int64) bool { return reservePeer(n) == nil }

// chargePeer accounts n bytes of peer memory whatever the cap: a new stream's first
// window of the peer's ring.
func chargePeer(n int64) { peerUsed.Add(n) }

func unreservePeer(n int64) { peerUsed.Add(-n) }

func reserveIn(used *atomic.Int64, n int64) error {
	for {
		u := used.Load()
		if u+n > memLimit.Load() {
			return ErrMemoryLimit
		}
		if used.CompareAndSwap(u, u+n) {
			return nil
		}
	}
}

// Spinning. A waiting goroutine first polls the control line for a bounded time before it
// parks: a wake-up through the kernel (a WAKE message, the peer link's reader goroutine,
// then the waiter's) costs more than most answers take, so the spin must outlast a
// wake-up to pay off, and it must be budgeted per process, or many busy connections would
// spin every CPU and starve the very peers they wait for.
//
// A budget shorter than the wake-up traps a stream once one side has parked: the other
// side's spin expires before the woken side answers, so it parks too, and every message
// then pays a full spin and a wake-up. BENCHMARKS.md ("Spin budget") has the
// measurements behind the default. Several connections waiting at once still park (one
// spinner per process and spare CPU).

// DefaultSpin is the spin time before parking until [SetSpin] changes it.
const DefaultSpin = 50 * time.Microsecond

// spinYieldEvery is how often a spinner with other Ps free yields anyway, so that a
// goroutine queued on its P (which other Ps steal only after a while) is not held up
// for the whole spin.
const spinYieldEvery = 10 * time.Microsecond

var (
	spinNanos atomic.Int64 // spin budget per wait; <= 0 disables spinning
	spinners  atomic.Int32 // goroutines of this process spinning right now
	spinSlots atomic.Int32 // max(1, GOMAXPROCS-1), refreshed by refreshSlots
	singleP   atomic.Bool  // GOMAXPROCS is 1, refreshed with spinSlots
	slotsAt   atomic.Int64 // when spinSlots was last refreshed (unix nanoseconds)
)

func init() {
	spinNanos.Store(int64(DefaultSpin))
	refreshSlots(time.Now().UnixNano())
}

// SetSpin sets how long a waiting Read or Write polls shared memory before it parks, and
// returns the previous value. Zero or negative disables spinning (every wait parks).
func SetSpin(d time.Duration) time.Duration { return time.Duration(spinNanos.Swap(int64(d))) }

// acquireSpin reports whether the caller may spin now; if so it must call releaseSpin.
// At most max(1, GOMAXPROCS-1) goroutines spin at once in the whole process, so at least
// one P stays free for the goroutines that will produce what the spinners wait for
// (with GOMAXPROCS=1 the single spinner yields on every few polls instead).
func acquireSpin() bool {
	if spinNanos.Load() <= 0 {
		return false
	}
	if spinners.Add(1) > spinSlots.Load() {
		spinners.Add(-1)
		return false
	}
	return true
}

// refreshSlots re-reads GOMAXPROCS into spinSlots and singleP if it last did so more
// than a second before now (unix nanoseconds, the caller's clock reading).
func refreshSlots(now int64) {
	if now-slotsAt.Load() > int64(time.Second) {
		slotsAt.Store(now)
		procs := runtime.GOMAXPROCS(0)
		spinSlots.Store(int32(max(1, procs-1)))
		singleP.Store(procs == 1)
	}
}

func releaseSpin() { spinners.Add(-1) }

// spinStreak counts the spins in a row, in the whole process, that ended in a park (at
// most 8). A new stream's waiters start from it (see newWaiterMisses): a process whose
// spins keep failing (its CPUs saturated, or peers with think time) does not spend a
// full spin budget on the first wait of every new connection.
var spinStreak atomic.Uint32

// noteSpin records the outcome of a spin in the process's streak; it stores only when
// the streak changes, so that spinners do not contend on the word.
func noteSpin(ok bool) {
	v := spinStreak.Load()
	switch {
	case ok && v != 0:
		spinStreak.Store(0)
	case !ok && v < 8:
		spinStreak.CompareAndSwap(v, v+1)
	}
}

// newWaiterMisses returns the spins-ended-in-a-park a new stream's waiter starts with:
// 4, which gives its spins the reduced budget until one succeeds, while the process's
// last 4 spins or more ended in a park; else 0.
func newWaiterMisses() uint {
	if spinStreak.Load() >= 4 {
		return 4
	}
	return 0
}
