package shm

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

// netConn gives a Stream the two address methods net.Conn needs; the root package wraps
// streams with the addresses of their TCP connection.
type netConn struct{ *Stream }

var shmAddr = &net.UnixAddr{Name: "shm", Net: "shm"}

func (netConn) LocalAddr() net.Addr  { return shmAddr }
func (netConn) RemoteAddr() net.Addr { return shmAddr }

func TestNettestConn(t *testing.T) {
	for _, kind := range pairKinds {
		for _, size := range []int{MinRingSize, 1 << 20} {
			t.Run(kind.name+"/"+ringName(size), func(t *testing.T) {
				defer checkLeaks(t)()
				nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
					a, b := kind.make(t, size, size)
					return netConn{a}, netConn{b}, func() { a.Close(); b.Close() }, nil
				})
			})
		}
	}
}

func ringName(n int) string {
	switch {
	case n >= 1<<20:
		return itoa(n>>20) + "MiB"
	default:
		return itoa(n>>10) + "KiB"
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
