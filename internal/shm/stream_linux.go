package shm

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// samePeerProcess reports whether the other end of the control socket is this process
// (SO_PEERCRED, as seen from our PID namespace).
func samePeerProcess(rc syscall.RawConn) bool {
	same := false
	rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		same = err == nil && int(cred.Pid) == os.Getpid()
	})
	return same
}

// wake sends a one-byte wake-up to the peer's watch goroutine. MSG_DONTWAIT: we never block
// on a peer. If its socket buffer is full, the wake-up is dropped: the peer still has
// wake-ups queued that it will read after our cursor was published, and each of them makes
// it recheck both directions (see watch). A dead peer needs none.
func (s *Stream) wake(b byte) {
	if p := s.local.Load(); p != nil {
		p.kick() // the peer is in this process: no system call, no netpoller round
		return
	}
	msg := [1]byte{b}
	s.rc.Write(func(fd uintptr) bool {
		for {
			err := unix.Sendto(int(fd), msg[:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
			if err != unix.EINTR {
				return true
			}
		}
	})
}
