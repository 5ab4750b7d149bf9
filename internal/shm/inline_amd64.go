package shm

import "unsafe"

// storeInline copies p, the write that ends at producer cursor end and whose bytes are
// already in the ring, into the inline area of producer line l (see cursorLine), before
// the cursor is published. The tag is stored first, then the length and the bytes: on
// amd64 stores become visible in program order (TSO), so a reader that loads the bytes
// and then finds the tag unchanged loaded no byte of a later copy (see loadInline).
// These are plain stores: an atomic store is an XCHG here, whose wait for the line
// would cost more than the copy saves the reader. len(p) <= inlineMax.
func storeInline(l *cursorLine, end uint64, p []byte) {
	*(*uint64)(unsafe.Pointer(&l.tag)) = end
	*(*uint32)(unsafe.Pointer(&l.length)) = uint32(len(p))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&l.inline)), inlineMax), p)
}
