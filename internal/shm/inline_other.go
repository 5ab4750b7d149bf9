//go:build !amd64

package shm

// storeInline makes no inline copy (see cursorLine) where stores may become visible out
// of program order: a reader then never finds a tag that matches, and reads the ring.
func storeInline(l *cursorLine, end uint64, p []byte) {}
