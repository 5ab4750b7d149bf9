//go:build race

package shm

import (
	"runtime"
	"unsafe"
)

// raceCopy tells the race detector about a copy of len(src) bytes from src to dst made
// in assembly, which it does not see. It ignores ranges outside Go's memory (a ring).
func raceCopy(dst, src []byte) {
	runtime.RaceReadRange(unsafe.Pointer(&src[0]), len(src))
	runtime.RaceWriteRange(unsafe.Pointer(&dst[0]), len(dst))
}
