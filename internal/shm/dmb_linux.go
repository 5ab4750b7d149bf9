package shm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// newDMB creates, seals and maps a DMB with a ring of size bytes, reserving it against the
// process memory bound.
func newDMB(size int) (d *dmb, err error) {
	if !validRingSize(size) {
		return nil, ErrBadSize
	}
	total := int64(HeaderSize + size)
	if err := reserve(total); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unreserve(total)
		}
	}()
	fd, err := unix.MemfdCreate("smc-dmb", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if err == unix.EINVAL {
		// Kernels before 6.3 do not know MFD_NOEXEC_SEAL.
		fd, err = unix.MemfdCreate("smc-dmb", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("smc: shm: memfd_create: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := unix.Ftruncate(fd, total); err != nil {
		return nil, fmt.Errorf("smc: shm: sizing DMB: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		return nil, fmt.Errorf("smc: shm: sealing DMB: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("smc: shm: DMB: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, int(total), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("smc: shm: mapping DMB: %w", err)
	}
	return &dmb{mem: mem, ring: mem[HeaderSize:], fd: fd, ino: st.Ino}, nil
}

// mapPeerDMB validates a memfd received from the peer and maps it. It takes ownership of
// fd: the fd is closed whatever happens (the mapping keeps the memory alive).
//
// Nothing is mapped unless the file is a non-hugetlb memfd (tmpfs) of exactly
// HeaderSize+size bytes, open read-write, carrying exactly requiredSeals (plus, optionally,
// F_SEAL_EXEC). A hugetlb memfd could SIGBUS us when the huge page pool runs dry; a file
// without F_SEAL_SHRINK could be truncated under our mapping.
func mapPeerDMB(fd, size int) (d *dmb, err error) {
	defer unix.Close(fd)
	if !validRingSize(size) {
		return nil, ErrBadSize
	}
	total := int64(HeaderSize + size)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return nil, fmt.Errorf("smc: shm: peer DMB: fstatfs: %w", err)
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return nil, violation("peer DMB is not a memfd (filesystem magic %#x)", fs.Type)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("smc: shm: peer DMB: fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, violation("peer DMB is not a regular file (mode %#o)", st.Mode)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, violation("peer DMB cannot be sealed (%v)", err)
	}
	if seals&^optionalSeals != requiredSeals {
		return nil, violation("peer DMB seals are %#x, want %#x", seals, requiredSeals)
	}
	// Seals are checked before the size: once F_SEAL_SHRINK|F_SEAL_GROW are on, the size
	// we read now is the size forever.
	if st.Size != total {
		return nil, violation("peer DMB is %d bytes, want %d", st.Size, total)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, fmt.Errorf("smc: shm: peer DMB: %w", err)
	}
	if fl&unix.O_ACCMODE != unix.O_RDWR {
		return nil, violation("peer DMB is not open read-write")
	}
	if err := reserve(total); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(fd, 0, int(total), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unreserve(total)
		return nil, fmt.Errorf("smc: shm: mapping peer DMB: %w", err)
	}
	return &dmb{mem: mem, ring: mem[HeaderSize:], fd: -1, ino: st.Ino}, nil
}

// closeFD closes the memfd once the peer has it (or on failure); the mapping stays.
func (d *dmb) closeFD() {
	if d != nil && d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// release unmaps the DMB, closes its fd if still open, and returns its reservation.
func (d *dmb) release() {
	if d == nil {
		return
	}
	d.closeFD()
	if d.mem != nil {
		n := int64(len(d.mem))
		unix.Munmap(d.mem)
		d.mem, d.ring = nil, nil
		unreserve(n)
	}
}

// First lap of a ring. A ring's pages are allocated and mapped only as data first passes
// (a connection that moves little touches little), and on a virtual machine each of
// those page faults is expensive: on the 2-vCPU test VM, 16 connections passing 1 KiB
// messages through the first lap of 4 MiB rings spent a fifth of their time handling
// page faults. Past its first prefaultFrom bytes, a ring is therefore mapped ahead of
// the data in prefaultChunk steps, one madvise(MADV_POPULATE_*) instead of a fault per
// page; after the first lap nothing is left to do.
const (
	prefaultFrom  = 64 << 10
	prefaultChunk = 512 << 10
)

// prefault maps the ring ahead of offset end (at most len(ring): first lap only), for
// writing or for reading. It is best effort: if the kernel lacks MADV_POPULATE_* (before
// 5.14) or refuses, pages fault in on demand as before.
func (d *dmb) prefault(end uint64, write bool) {
	size := uint64(len(d.ring))
	if end <= d.populated || end <= prefaultFrom {
		return
	}
	start := max(d.populated, prefaultFrom)
	page := uint64(os.Getpagesize())
	d.populated = min(size, (end+prefaultChunk+page-1)&^(page-1))
	advice := unix.MADV_POPULATE_READ
	if write {
		advice = unix.MADV_POPULATE_WRITE
	}
	unix.Madvise(d.ring[start:d.populated], advice)
}
