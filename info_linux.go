package smc

import (
	"net"

	"golang.org/x/sys/unix"
)

// tcpCounts returns the TCP connection's bytes acknowledged by the peer (less the
// SYN, which tcp_info counts) and received, and its send and receive queues.
func tcpCounts(c *net.TCPConn) (sent, received, sendQ, recvQ uint64) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			sent, received = max(ti.Bytes_acked, 1)-1, ti.Bytes_received
		}
		if n, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil && n > 0 {
			sendQ = uint64(n)
		}
		if n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil && n > 0 {
			recvQ = uint64(n)
		}
	})
	return
}
