package shm

import "unsafe"

// storeInline stores in producer line l (see cursorLine) the tag end, the producer
// cursor at the end of write p, whose bytes are already in the ring, and p's length,
// and copies p into the inline area if it fits, before the cursor is published. A
// longer write's length says that the area holds no copy of it, which readers check.
//
// The tag is stored first, then the length and the bytes: on amd64 stores become
// visible in program order (TSO), so a reader that loads the bytes and then finds the
// tag unchanged loaded no byte of a later copy (see loadInline). These are plain stores:
// an atomic store is an XCHG here, which would wait for the ring's lines and then for
// the cursor line in turn, where plain stores let the CPU fetch the cursor line while
// the ring's lines are still on their way. So the stores are made for every write, also
// for one too long for a copy.
func storeInline(l *cursorLine, end uint64, p []byte) {
	*(*uint64)(unsafe.Pointer(&l.tag)) = end
	*(*uint32)(unsafe.Pointer(&l.length)) = uint32(min(len(p), 1<<31))
	if len(p) <= inlineMax {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&l.inline)), inlineMax), p)
	}
}
