package shm

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

func supported() error { return nil }

func closeFD(fd int) { unix.Close(fd) }

// maxHelloFDs bounds the descriptors one handshake message may carry before it is
// rejected; the kernel closes any beyond the control buffer (and sets MSG_CTRUNC).
const maxHelloFDs = 4

// readHello reads one handshake message and the single memfd it must carry. On any error
// every descriptor received is closed.
func readHello(c *net.UnixConn) (h hello, fd int, err error) {
	var buf [helloLen + 1]byte // one spare byte: a longer message shows as MSG_TRUNC or n > helloLen
	oob := make([]byte, unix.CmsgSpace(maxHelloFDs*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf[:], oob)
	var fds []int
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			err = violation("handshake control data: %v", perr)
		}
		for _, m := range msgs {
			got, rerr := unix.ParseUnixRights(&m)
			if rerr != nil {
				err = violation("handshake control message type %d", m.Header.Type)
				continue
			}
			fds = append(fds, got...)
		}
	}
	defer func() {
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}()
	switch {
	case err != nil:
		return hello{}, -1, fmt.Errorf("smc: shm: handshake: %w", err)
	case n == 0:
		return hello{}, -1, violation("handshake: connection closed")
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		return hello{}, -1, violation("handshake message truncated (flags %#x)", flags)
	case len(fds) != 1:
		err = violation("handshake carried %d descriptors, want 1", len(fds))
		return hello{}, -1, err
	}
	h, err = parseHello(buf[:n])
	if err != nil {
		return hello{}, -1, err
	}
	return h, fds[0], nil
}

// writeHello sends one handshake message carrying fd.
func writeHello(c *net.UnixConn, h hello, fd int) error {
	_, _, err := c.WriteMsgUnix(h.append(make([]byte, 0, helloLen)), unix.UnixRights(fd), nil)
	return err
}
