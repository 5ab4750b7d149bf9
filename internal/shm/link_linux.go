package shm

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

func supported() error { return nil }

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func dupFD(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }

func isAgain(err error) bool { return err == unix.EAGAIN }

// samePeerProcess reports whether the other end of the link's socket is this process
// (SO_PEERCRED, as seen from our PID namespace).
func samePeerProcess(rc syscall.RawConn) bool {
	same := false
	rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		same = err == nil && int(cred.Pid) == os.Getpid()
	})
	return same
}

// peerUID returns the peer's uid (SO_PEERCRED), ok false if unknown.
func peerUID(c *net.UnixConn) (uint32, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var uid uint32
	ok := false
	rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		uid, ok = cred.Uid, err == nil
	})
	return uid, ok
}

// sendRaw sends one message on a seqpacket socket without blocking, with fd in
// SCM_RIGHTS if fd >= 0.
func sendRaw(sfd int, b []byte, fd int) error {
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	for {
		err := unix.Sendmsg(sfd, b, oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if err != unix.EINTR {
			return err
		}
	}
}

// trySend sends m (and fd) at once or fails, EAGAIN when the socket buffer is full.
func (l *link) trySend(m msg, fd int) error {
	var serr error
	if err := l.rc.Control(func(sfd uintptr) { serr = sendRaw(int(sfd), m, fd) }); err != nil {
		return err
	}
	return serr
}

// maxMsgFDs bounds the descriptors one message may carry before it is rejected; the
// kernel closes any beyond the control buffer (and sets MSG_CTRUNC).
const maxMsgFDs = 4

var oobSpace = unix.CmsgSpace(maxMsgFDs * 4)

// readMsg reads one message through the netpoller, with the descriptors it carried. A
// truncated message or control data is a violation; EOF (a zero-length read: the peer
// closed or died) is io.EOF-like errLinkDown. On error no descriptor is left open.
func readMsg(c *net.UnixConn, buf, oob []byte) (n int, fds []int, err error) {
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil && err == nil {
			err = violation("control data: %v", perr)
		}
		for _, m := range msgs {
			got, rerr := unix.ParseUnixRights(&m)
			if rerr != nil {
				if err == nil {
					err = violation("control message type %d", m.Header.Type)
				}
				continue
			}
			fds = append(fds, got...)
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		err = errLinkDown
	case err != nil:
	case n == 0:
		err = errLinkDown
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > len(buf)-1:
		err = violation("link message truncated (flags %#x)", flags)
	}
	if err != nil {
		closeFDs(fds)
		return 0, nil, err
	}
	return n, fds, nil
}

// Process identity for the link proof. With pidfs (Linux 6.9+), the inode of a
// pidfd is unique to a process for the boot: the server proves its own, and the client
// checks it against the pidfd of the process at the other end of its socket
// (SO_PEERPIDFD), which a relay cannot fake. Without pidfs both ends use 0 and a relay
// that forwards the whole exchange is not detected (see doc.go).
const pidfsMagic = 0x50494446

var selfPidfdIno = sync.OnceValue(func() uint64 {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	return pidfsIno(fd)
})

func pidfsIno(fd int) uint64 {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != pidfsMagic {
		return 0
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

// peerPidfdIno returns the pidfs inode of the process at the other end of c, or 0.
func peerPidfdIno(c *net.UnixConn) uint64 {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var ino uint64
	rc.Control(func(fd uintptr) {
		pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		if err != nil {
			return
		}
		ino = pidfsIno(pfd)
		unix.Close(pfd)
	})
	return ino
}

// unreachable reports whether a dial error means nobody listens at the address.
func unreachable(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOTDIR)
}
