package shm

import (
	"sync/atomic"
	"unsafe"
)

// storeRingMin is the shortest copy that storeRing makes with REP MOVSB. Shorter copies
// (the small messages whose latency matters most) keep the built-in copy, which starts
// faster; the read of a few lines costs them little.
const storeRingMin = 2 << 10

// storeRing copies src into dst, which is free space of a ring (so it never overlaps
// src), and returns the number of bytes copied, as copy does. Long copies use REP MOVSB
// or non-temporal stores, which write whole cache lines without first reading them. The
// lines of a ring were last read by the peer's CPU: an ordinary store (copy's) first
// fetches each line from there and invalidates it, which makes the writer's copy, not
// the reader's, the limit of a bulk transfer between two CPUs.
//
// Both end with SFENCE: the stores of a string move and non-temporal stores may be
// weakly ordered, and the cursor store that publishes the bytes (a Swap, see
// publishProd) must follow them all.
func storeRing(dst, src []byte) int {
	n := min(len(dst), len(src))
	if n < storeRingMin {
		return copy(dst, src)
	}
	raceCopy(dst[:n], src[:n])
	if d := (uintptr(unsafe.Pointer(&dst[0])) - uintptr(unsafe.Pointer(&src[0]))) & 4095; d == 0 || d >= 64 {
		stringMove(&dst[0], &src[0], n)
		return n
	}
	// dst is less than a line above src modulo 4 KiB, where a string move runs at
	// the speed of an ordinary copy while the reader copies the lines out (presumably
	// its loads wait for its own stores to the same offsets of another page: 4 KiB
	// aliasing). A write whose application buffer and ring position are so placed (a
	// stream that began with a short header, say) is copied from its end down, whose
	// loads are below its stores, with non-temporal stores, which write whole lines
	// without fetching them as the string move does.
	streamDown(&dst[0], &src[0], n)
	return n
}

// stringMove copies n > 0 bytes from src to dst with REP MOVSB, then SFENCE. The
// ranges must not overlap.
//
//go:noescape
func stringMove(dst, src *byte, n int)

// streamDown copies n >= 16 bytes from src to dst, from the end down, with
// non-temporal stores (MOVNTDQ) where dst is 16-byte aligned, then SFENCE. The ranges
// must not overlap.
//
//go:noescape
func streamDown(dst, src *byte, n int)

// storeAhead stores v into the cursor word c with a plain store, just before the Swap
// that publishes it (see publishProd). On amd64 stores become visible in program order
// (TSO), so the plain store still follows the data it publishes. What it changes is when
// the CPU fetches the cursor's line, which the peer's reader, polling it, holds. A Swap
// alone (an XCHG) waits for every earlier store, the ring's lines among them, to
// complete, and by all appearances fetches its own line only then; a plain store's line
// can be fetched while those are still on their way, and the Swap then finds it at hand
// (BenchmarkBareRing measures the protocol with it). The Swap stays the store of
// Dekker's pattern (see dekkerStore).
func storeAhead(c *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(c)) = v }
