package shm

import "golang.org/x/sys/unix"

// wake sends a one-byte wake-up to the peer's watch goroutine. MSG_DONTWAIT: we never block
// on a peer. If its socket buffer is full, the wake-up is dropped: the peer still has
// wake-ups queued that it will read after our cursor was published, and each of them makes
// it recheck both directions (see watch). A dead peer needs none.
func (s *Stream) wake(b byte) {
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
