package shm

import (
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bells. Each side of a link owns a bell: a pipe whose read end it keeps, and whose
// write end it passes to the peer with its poller page (POLL). The peer rings it, one
// byte, where it would send a WAKE for a sleep our poller announced; the stream of ours
// that leads the link's waiters (see poller.go) waits in the netpoller on the read end,
// so a ring readies the waiting goroutine itself, with no hand-off from the link's
// reader.
//
// A pipe, not an eventfd: both ends of an eventfd share one open file description, whose
// O_NONBLOCK either process may clear, and eventfd writes ignore RWF_NOWAIT, so a peer
// that cleared it and filled the counter would block our write, and the goroutine in it,
// for good. The read end of a pipe is ours alone, and a write into the peer's pipe is
// pwritev2 with RWF_NOWAIT, which never blocks whatever the file's flags (a full pipe
// fails with EAGAIN: rings are pending already). Kernels whose pipes refuse RWF_NOWAIT
// (before Linux 6.6) get no bells: rings go as WAKEs, as before (see bellsRing).

// bellsRing reports whether this kernel's pipes take RWF_NOWAIT writes, which ringing
// a peer's bell needs. Both ends of a link run on one kernel.
var bellsRing = sync.OnceValue(func() bool {
	var p [2]int
	if unix.Pipe2(p[:], unix.O_CLOEXEC) != nil {
		return false
	}
	defer closeFDs(p[:])
	return ringFD(uintptr(p[1])) == nil
})

// newBell makes our bell: the read end, registered with the netpoller, and the write
// end's descriptor for the peer.
func newBell() (*os.File, int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, -1, err
	}
	return os.NewFile(uintptr(p[0]), "smc-bell"), p[1], nil
}

// pipefsMagic is the file system magic of anonymous pipes (Linux magic.h: PIPEFS_MAGIC).
const pipefsMagic = 0x50495045

// peerBell validates the descriptor a peer's POLL carried as the write end of an
// anonymous pipe, and takes ownership of it. A descriptor that is anything else is a
// violation (and closed).
func peerBell(fd int) (*bellEnd, error) {
	var fs unix.Statfs_t
	var st unix.Stat_t
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	switch {
	case err != nil:
	case unix.Fstatfs(fd, &fs) != nil || fs.Type != pipefsMagic:
		err = violation("bell is not a pipe (filesystem magic %#x)", fs.Type)
	case unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO:
		err = violation("bell is not a pipe (mode %#o)", st.Mode)
	case fl&unix.O_ACCMODE != unix.O_WRONLY:
		err = violation("bell is not a pipe's write end (flags %#x)", fl)
	}
	if err != nil {
		unix.Close(fd)
		if _, ok := err.(*ProtocolError); !ok {
			err = violation("bell: %v", err)
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "smc-peer-bell")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, violation("bell: %v", err)
	}
	return &bellEnd{f, rc}, nil
}

// A bellEnd is the write end of the peer's bell. rc keeps the descriptor open while a
// ring uses it, so that a concurrent close at the link's end never lets a ring write
// into a reused descriptor number.
type bellEnd struct {
	f  *os.File
	rc syscall.RawConn
}

// ring rings the bell, without ever blocking. A full pipe has rings pending already; a
// pipe the peer closed the read end of only stalls its own streams.
func (b *bellEnd) ring() { b.rc.Control(ringOne) }

// ringOne is bellEnd.ring's Control function: a function value, so that a ring
// allocates nothing.
var ringOne = func(fd uintptr) { ringFD(fd) }

var oneByte = [1]byte{1}

// ringFD writes one byte into a pipe with RWF_NOWAIT, at the current position (offset
// -1, split into low and high words as golang.org/x/sys/unix.Pwritev2 does).
func ringFD(fd uintptr) error {
	iov := unix.Iovec{Base: &oneByte[0]}
	iov.SetLen(1)
	off := int64(-1)
	lo, hi := uintptr(off), uintptr(uint64(off)>>(unsafe.Sizeof(uintptr(0))*8-1)>>1)
	for {
		_, _, e := unix.Syscall6(unix.SYS_PWRITEV2, fd, uintptr(unsafe.Pointer(&iov)), 1, lo, hi, unix.RWF_NOWAIT)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}
