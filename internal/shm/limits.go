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
	memUsed  atomic.Int64 // bytes of own segments this process holds
	peerUsed atomic.Int64 // bytes of peer segments this process has mapped
)

func init() { memLimit.Store(DefaultMemoryLimit) }

// SetMemoryLimit sets the process-wide bound on the bytes of its own pool segments (the
// shared memory this process allocates, populates and is charged for, headers
// included) and returns the previous bound. A negative n only reports the current bound.
// Existing streams are never affected. Once the bound is reached (or if it is lowered
// below what is held), a new stream fails with [ErrMemoryLimit], even if a pool has a
// free slot; below it, a new stream that needs a new segment fails if the smallest
// segment would cross the bound. The peer segments a process maps are counted apart
// ([Counters].PeerMemory) and capped by the same bound, so that no peer can make it map
// unbounded memory.
func SetMemoryLimit(n int64) int64 {
	if n < 0 {
		return memLimit.Load()
	}
	return memLimit.Swap(n)
}

// MemoryInUse returns the bytes of own pool segments this process holds.
func MemoryInUse() int64 { return memUsed.Load() }

// reserve accounts n bytes of own segments against the process bound.
func reserve(n int64) error { return reserveIn(&memUsed, n) }

func unreserve(n int64) { memUsed.Add(-n) }

// reservePeer accounts n bytes of a peer segment against the cap on mapped peer memory.
func reservePeer(n int64) error { return reserveIn(&peerUsed, n) }

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
