package shm

import "unsafe"

// storeRingMin is the shortest copy that storeRing makes with REP MOVSB. Shorter copies
// (the small messages whose latency matters most) keep the built-in copy, which starts
// faster; the read of a few lines costs them little.
const storeRingMin = 2 << 10

// storeRing copies src into dst, which is free space of a ring (so it never overlaps
// src), and returns the number of bytes copied, as copy does. Long copies use REP MOVSB,
// which writes whole cache lines without first reading them. The lines of a ring were
// last read by the peer's CPU: an ordinary store (copy's) first fetches each line from
// there and invalidates it, which makes the writer's copy, not the reader's, the limit
// of a bulk transfer between two CPUs.
//
// The move ends with SFENCE: the stores of a string move may be weakly ordered, and
// the cursor store that publishes the bytes (a Swap, see publishProd) must follow
// them all.
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
	// the speed of an ordinary copy (its loads wait for the stores just made to the
	// same offsets of another page). A write whose application buffer and ring
	// position are so placed (a stream that began with a short header, say) goes
	// through a buffer on the stack that sits at dst's offset in its line.
	var bounce [4096 + 64]byte
	b := bounce[(uintptr(unsafe.Pointer(&dst[0]))-uintptr(unsafe.Pointer(&bounce[0])))&63:][:4096]
	for q := 0; q < n; q += len(b) {
		k := copy(b, src[q:n])
		stringMove(&dst[q], &b[0], k)
	}
	return n
}

// stringMove copies n > 0 bytes from src to dst with REP MOVSB, then SFENCE. The
// ranges must not overlap.
//
//go:noescape
func stringMove(dst, src *byte, n int)
