package shm

import (
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultMemoryLimit is the process-wide bound on shared memory (own DMBs plus mapped peer
// DMBs) until [SetMemoryLimit] changes it.
const DefaultMemoryLimit = 1 << 30

var (
	memLimit atomic.Int64 // bytes; see SetMemoryLimit
	memUsed  atomic.Int64 // bytes of DMBs currently reserved by this process
)

func init() { memLimit.Store(DefaultMemoryLimit) }

// SetMemoryLimit sets the process-wide bound on the bytes of DMBs (own and mapped peer
// DMBs, headers included) that may exist at once, and returns the previous bound. A
// negative n only reports the current bound. Existing streams are never affected; new
// ones fail with [ErrMemoryLimit] while the bound would be exceeded.
func SetMemoryLimit(n int64) int64 {
	if n < 0 {
		return memLimit.Load()
	}
	return memLimit.Swap(n)
}

// MemoryInUse returns the bytes of DMBs this process currently holds.
func MemoryInUse() int64 { return memUsed.Load() }

// reserve accounts n bytes against the process bound.
func reserve(n int64) error {
	for {
		used := memUsed.Load()
		if used+n > memLimit.Load() {
			return ErrMemoryLimit
		}
		if memUsed.CompareAndSwap(used, used+n) {
			return nil
		}
	}
}

func unreserve(n int64) { memUsed.Add(-n) }

// Spinning. A waiting goroutine first polls the control line for a bounded time before it
// parks: a wake-up through the kernel costs 20+ µs on a 2-vCPU VM (reference/numbers.md),
// and about 40 µs on some (the 2026-12-04 VM, where a parked 64-byte round trip between
// two processes takes 39 µs since waiters read wake-ups themselves), so the spin must
// outlast that to pay off, and it must be budgeted per process, or many busy connections
// would spin every CPU and starve the very peers they wait for.
//
// A budget shorter than the wake-up traps a stream once one side has parked: the other
// side's spin expires before the woken side answers, so it parks too, and every message
// then pays a full spin and a wake-up. 25 µs did that to 1 KiB ping-pong on the 40 µs
// machines; with 50 µs single-connection runs mostly stay fast (BENCHMARKS.md, "Spin
// budget"). Several connections waiting at once still park (one spinner per process).

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

func init() { spinNanos.Store(int64(DefaultSpin)) }

// SetSpin sets how long a waiting Read or Write polls shared memory before it parks, and
// returns the previous value. Zero or negative disables spinning (every wait parks).
func SetSpin(d time.Duration) time.Duration { return time.Duration(spinNanos.Swap(int64(d))) }

// acquireSpin reports whether the caller may spin now; if so it must call releaseSpin.
// At most max(1, GOMAXPROCS-1) goroutines spin at once in the whole process, so at least
// one P stays free for the goroutines that will produce what the spinners wait for
// (with GOMAXPROCS=1 the single spinner yields on every few polls instead).
// t is the caller's clock reading, which saves a second one.
func acquireSpin(t time.Time) bool {
	if spinNanos.Load() <= 0 {
		return false
	}
	now := t.UnixNano()
	if now-slotsAt.Load() > int64(time.Second) {
		slotsAt.Store(now)
		procs := runtime.GOMAXPROCS(0)
		spinSlots.Store(int32(max(1, procs-1)))
		singleP.Store(procs == 1)
	}
	if spinners.Add(1) > spinSlots.Load() {
		spinners.Add(-1)
		return false
	}
	return true
}

func releaseSpin() { spinners.Add(-1) }
