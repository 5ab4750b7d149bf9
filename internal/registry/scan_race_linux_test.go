package registry

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMapFileShrunkBeforeSeal: a process can name a memfd smc-registry, shrink it and
// seal it against shrinking while a reader (smc ss, smc stats) checks it. A reader that
// reads the size before it sees the seal maps the size from before the shrink, and
// faults (SIGBUS) on the pages beyond the end of the file. In each round the hostile
// side, on a thread of its own, waits a little longer than in the round before (up to
// a few microseconds), then empties a fresh memfd and seals it, while the reader maps
// it: nothing mapFile mapped may fault. The race needs two Ps.
func TestMapFileShrunkBeforeSeal(t *testing.T) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a fault is a panic, recovered below
	const rounds, steps, large = 20000, 600, HeaderSize + 64*RecordSize
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
			unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
			sealed.Store(int64(round + 1))
		}
	}()
	mapped, faults := 0, 0
	var sink byte
	for round := range rounds {
		fd, err := unix.MemfdCreate(fileName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err == nil {
			err = unix.Ftruncate(fd, large)
		}
		if err != nil {
			t.Fatal(err)
		}
		next.Store(int64(fd))
		mem, err := mapFile(fmt.Sprintf("/proc/self/fd/%d", fd))
		for sealed.Load() != int64(round+1) {
			runtime.Gosched()
		}
		unix.Close(fd)
		if err != nil {
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
		unix.Munmap(mem)
	}
	if faults > 0 {
		t.Fatalf("%d of %d mappings of a registry shrunk before its seal faulted", faults, mapped)
	}
	t.Logf("%d rounds, %d mapped (%d)", rounds, mapped, sink)
}
