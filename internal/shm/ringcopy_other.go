//go:build !amd64

package shm

import "sync/atomic"

// storeRing copies src into dst, which is free space of a ring, and returns the number
// of bytes copied, as copy does (see the amd64 version for why it exists).
func storeRing(dst, src []byte) int { return copy(dst, src) }

// storeAhead does nothing: where a plain store may become visible before earlier ones,
// it could publish a cursor ahead of its data (see the amd64 version).
func storeAhead(c *atomic.Uint64, v uint64) {}
