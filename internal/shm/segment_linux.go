package shm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// requiredSeals are the seals every segment carries: its size can never change (so no
// peer can truncate it under our mapping and make us SIGBUS), and no further seal can be
// added (so no peer can later forbid our writes). F_SEAL_EXEC is tolerated on top:
// kernels with vm.memfd_noexec set add it to every memfd.
const (
	requiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	optionalSeals = unix.F_SEAL_EXEC
)

// newSegment creates, seals and maps an own segment of n slots of ringSize bytes, and
// populates its slot headers, reserving them against the process bound. Ring pages are
// populated (and reserved) as the rings are used (see firstWindow), always by the owner
// before the peer may write into them: so the owner is the one charged for them, and the
// peer only maps pages that exist.
func newSegment(idx uint16, ringSize, n int) (g *segment, err error) {
	if !validRingSize(ringSize) || n < 1 || n > maxSegSlots {
		return nil, ErrBadSize
	}
	total, hdrs := segmentSize(ringSize, n), int64(headersSize(n))
	if err := reserve(hdrs); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unreserve(hdrs)
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
		return nil, fmt.Errorf("smc: shm: sizing segment: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		return nil, fmt.Errorf("smc: shm: sealing segment: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("smc: shm: segment: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, int(total), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("smc: shm: mapping segment: %w", err)
	}
	populate(mem[:hdrs])
	g = &segment{idx: idx, ringSize: ringSize, n: n, mem: mem, fd: fd, ino: st.Ino}
	g.held.Store(hdrs)
	return g, nil
}

// populate allocates the pages of b, a page-aligned range of an own segment's mapping,
// and writes them (zeros), so that they are charged to this process. Best effort:
// before Linux 5.14 pages are allocated as they are first touched, by whichever side
// touches them.
func populate(b []byte) {
	unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}

// discard returns the pages of b, a page-aligned range of an own segment's mapping, to
// the system: the range reads as zeros again, in every mapping of the memfd, and no
// longer counts against this process. The memfd keeps its size (MADV_REMOVE punches a
// hole; our seals forbid shrinking and growing, not that), so no mapping of it faults.
// Where the kernel refuses, the range is zeroed instead.
func discard(b []byte) {
	if unix.Madvise(b, unix.MADV_REMOVE) != nil {
		clear(b)
	}
}

// mapPeerSegment validates a memfd received from the peer and maps it. It takes
// ownership of fd: the fd is closed whatever happens (the mapping keeps the memory).
//
// Nothing is mapped unless the file is a non-hugetlb memfd (tmpfs) of exactly the size
// of a segment of n slots of ringSize bytes, open read-write, carrying exactly
// requiredSeals (plus, optionally, F_SEAL_EXEC). A hugetlb memfd could SIGBUS us when
// the huge page pool runs dry; a file without F_SEAL_SHRINK could be truncated under
// our mapping. Its slot headers are reserved against the cap on peer memory (the rings
// are counted as we accept their windows, see txCursor.observe).
func mapPeerSegment(fd int, idx uint16, ringSize, n int) (g *segment, err error) {
	defer unix.Close(fd)
	if !validRingSize(ringSize) || n < 1 || n > maxSegSlots {
		return nil, violation("peer segment of %d slots of %d bytes", n, ringSize)
	}
	total := segmentSize(ringSize, n)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return nil, violation("peer segment: fstatfs: %v", err)
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return nil, violation("peer segment is not a memfd (filesystem magic %#x)", fs.Type)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, violation("peer segment cannot be sealed (%v)", err)
	}
	if seals&^optionalSeals != requiredSeals {
		return nil, violation("peer segment seals are %#x, want %#x", seals, requiredSeals)
	}
	// The size is read after the seals were seen: once F_SEAL_SHRINK|F_SEAL_GROW are
	// on, the size we read now is the size forever. (A size read before may be the one
	// before a shrink that the peer made just ahead of its seals.)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, violation("peer segment: fstat: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, violation("peer segment is not a regular file (mode %#o)", st.Mode)
	}
	if st.Size != total {
		return nil, violation("peer segment is %d bytes, want %d", st.Size, total)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, violation("peer segment: %v", err)
	}
	if fl&unix.O_ACCMODE != unix.O_RDWR {
		return nil, violation("peer segment is not open read-write")
	}
	hdrs := int64(headersSize(n))
	if err := reservePeer(hdrs); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(fd, 0, int(total), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unreservePeer(hdrs)
		return nil, fmt.Errorf("smc: shm: mapping peer segment: %w", err)
	}
	counters.peerSegments.Add(1)
	counters.peerSegmentsMapped.Add(1)
	g = &segment{idx: idx, ringSize: ringSize, n: n, mem: mem, fd: -1, ino: st.Ino}
	g.held.Store(hdrs)
	return g, nil
}

// closeFD closes an own segment's memfd once the peer has mapped it.
func (g *segment) closeFD() {
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
}

// unmap releases an own segment's mapping and what it held of the process bound.
func (g *segment) unmap() {
	g.closeFD()
	if g.mem != nil {
		unix.Munmap(g.mem)
		g.mem = nil
		unreserve(g.held.Swap(0))
	}
}

// unmapPeer releases a peer segment's mapping and what it held of the cap on peer
// memory.
func (g *segment) unmapPeer() {
	if g.mem != nil {
		unix.Munmap(g.mem)
		g.mem = nil
		unreservePeer(g.held.Swap(0))
		counters.peerSegments.Add(-1)
	}
}
