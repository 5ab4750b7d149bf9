package registry

import (
	"fmt"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestMapFileShrunkBeforeSeal: a process can name a memfd smc-registry, shrink it and
// seal it against shrinking while a reader (smc ss, smc stats) checks it. A reader that
// reads the size before it sees the seal maps the size from before the shrink, and
// faults (SIGBUS) on the pages beyond the end of the file: nothing mapFile mapped may
// fault.
func TestMapFileShrunkBeforeSeal(t *testing.T) {
	const rounds = 20000
	mapped, faults := testenv.ShrinkBeforeSeal(t, rounds, HeaderSize+64*RecordSize, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW,
		func(fd int) ([]byte, func()) {
			mem, err := mapFile(fmt.Sprintf("/proc/self/fd/%d", fd))
			if err != nil {
				return nil, nil
			}
			return mem, func() { unix.Munmap(mem) }
		})
	if faults > 0 {
		t.Fatalf("%d of %d mappings of a registry shrunk before its seal faulted", faults, mapped)
	}
	t.Logf("%d rounds, %d mapped", rounds, mapped)
}
