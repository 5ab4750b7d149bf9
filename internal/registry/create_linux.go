package registry

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fileName is the memfd's name; /proc/PID/fd shows it as "/memfd:smc-registry (deleted)".
const fileName = "smc-registry"

// create makes the shared file: a memfd sealed against shrinking (so that a reader's
// mapping can never fault), kept open for the process's life, and mapped for
// MaxRecords records of which only the first initialRecords exist yet.
func create() (*Registry, error) {
	fd, err := unix.MemfdCreate(fileName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("smc: registry: memfd_create: %w", err)
	}
	size := func(records int) int64 { return int64(HeaderSize + records*RecordSize) }
	if err := unix.Ftruncate(fd, size(initialRecords)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("smc: registry: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("smc: registry: sealing: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, int(size(MaxRecords)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("smc: registry: mmap: %w", err)
	}
	// The descriptor stays open: readers find the file through /proc/PID/fd.
	return &Registry{
		mem:    mem,
		shared: true,
		cap:    initialRecords,
		grow:   func(records int) error { return unix.Ftruncate(fd, size(records)) },
	}, nil
}
