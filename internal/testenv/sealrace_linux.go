package testenv

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// ShrinkBeforeSeal races a hostile process that empties a memfd and only then seals it
// against a reader that validates and maps the memfd, as a reader must do before it
// maps a file another process can still resize. In each of rounds rounds it makes a
// memfd of size bytes and, on a thread of its own, waits a little longer than in the
// round before (up to a few microseconds), truncates the memfd to 0 and adds seals,
// while mapFD(fd) validates and maps it: mapFD returns the mapping and how to undo it,
// or nil when it refused the memfd. It returns how many mappings mapFD made and how
// many of them faulted when each of their pages was read. A reader that reads the size
// before it sees the seals maps pages beyond the end of the file, which fault
// (SIGBUS). The race needs two Ps.
func ShrinkBeforeSeal(tb testing.TB, rounds int, size int64, seals int, mapFD func(fd int) (mem []byte, unmap func())) (mapped, faults int) {
	tb.Helper()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a fault is a panic, recovered below
	const steps = 600
	var (
		next   atomic.Int64 // the memfd of the round to race, once the round starts
		sealed atomic.Int64 // rounds the hostile side has sealed
	)
	go func() { // the hostile process
		runtime.LockOSThread()
		for round := range rounds {
			var fd int64
			for fd = next.Swap(0); fd == 0; fd = next.Swap(0) {
				runtime.Gosched()
			}
			for range round % steps * 10 {
				runtime.KeepAlive(fd)
			}
			unix.Ftruncate(int(fd), 0)
			unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
			sealed.Store(int64(round + 1))
		}
	}()
	var sink byte
	for round := range rounds {
		fd, err := unix.MemfdCreate("hostile", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err == nil {
			err = unix.Ftruncate(fd, size)
		}
		if err != nil {
			tb.Fatal(err) // the hostile goroutine waits for a round that never comes
		}
		next.Store(int64(fd))
		mem, unmap := mapFD(fd)
		for sealed.Load() != int64(round+1) {
			runtime.Gosched()
		}
		unix.Close(fd)
		if mem == nil {
			continue
		}
		mapped++
		func() {
			defer func() {
				if recover() != nil {
					faults++
				}
			}()
			for off := 0; off < len(mem); off += 4096 {
				sink += mem[off]
			}
		}()
		unmap()
	}
	runtime.KeepAlive(sink)
	return mapped, faults
}
