package shm

import (
	"errors"
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

// wake sends a one-byte wake-up to the peer's waiting Read or Write. MSG_DONTWAIT: we never
// block on a peer. If its socket buffer is full, the wake-up is dropped: the peer still has
// wake-ups queued that it will read after our cursor was published, and each of them makes
// it recheck both directions (see poll). A dead peer needs none.
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

// readWakeups is poll's read loop: through the netpoller, it reads one-byte wake-ups from
// the control socket until the socket is drained and recheck, told whether any wake-up
// was read, reports true. It returns early, with hungUp set, at EOF or a socket error
// (the kernel closes a dead process's sockets, so peer death is seen at once), with a
// violation for any other message, after 64 wake-ups in one go (a flooding peer must not
// keep the caller from its deadline), and with nothing when the socket's read deadline
// passes (the poller's own deadline, or a kick).
func (s *Stream) readWakeups(recheck func(woken bool) bool) (hungUp bool, err error) {
	rerr := s.rc.Read(func(fd uintptr) bool {
		var buf [16]byte
		woken := false
		for range 64 {
			n, rerr := unix.Read(int(fd), buf[:])
			switch {
			case rerr == unix.EINTR:
				continue
			case rerr == unix.EAGAIN:
				return recheck(woken)
			case rerr != nil || n <= 0:
				hungUp = true
				return true
			case n != 1 || buf[0]&^wakeKnown != 0 || buf[0] == 0:
				err = violation("unexpected %d-byte control message %#x", n, buf[0])
				return true
			}
			woken = true
		}
		return true
	})
	if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
		hungUp = true
	}
	return hungUp, err
}
