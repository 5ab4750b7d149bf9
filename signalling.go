package smc

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"github.com/smc-go/smc/internal/signal"
)

// sigResult is what the TCP handshake of one connection carried, as recorded by the
// signalling program: whether this side offered SMC (Marked), whether our SYN or
// SYN-ACK carried the option (Sent), whether the peer's did (Received), and whether
// another program had written it into our SYN (Conflict). Negotiated reports both.
type sigResult = signal.Result

// The process's signalling, opened once by the first connection that may offer SMC.
var sig struct {
	once sync.Once
	s    *signal.Signaller
	err  error
}

// signalling returns the process's signaller, or the reason there is none (or no
// longer is: a conflict found since); with none, every connection is plain TCP.
func signalling() (*signal.Signaller, error) {
	sig.once.Do(func() {
		sig.s, sig.err = signal.Open()
		noteSignalling(sig.s, sig.err)
	})
	if sig.err != nil {
		return nil, sig.err
	}
	if err := sig.s.Err(); err != nil {
		return nil, err
	}
	return sig.s, nil
}

// signallingReason is the fallback reason of a connection made while signalling
// returns err.
func signallingReason(err error) Reason {
	if errors.Is(err, signal.ErrConflict) {
		return ReasonSignallingConflict
	}
	return ReasonSignallingUnavailable
}

// SignallingError reports why this process cannot announce SMC in TCP handshakes,
// or nil when it can. Connections made while it is non-nil are plain TCP with
// reason [ReasonSignallingUnavailable], or [ReasonSignallingConflict] when the
// error says that something else on this cgroup's sockets could make announcing
// SMC unsafe (another version of this package's program, or another program that
// writes the SMC option): see `smc probe`.
func SignallingError() error {
	_, err := signalling()
	return err
}

// noteConflict records that a connection's SYN carried the SMC option before our
// program wrote it: from then on the process offers SMC on no connection.
func noteConflict(s *signal.Signaller) {
	s.NoteConflict(errors.New("a connection's SYN carried the SMC option before this package's program wrote it"))
	noteSignalling(s, s.Err())
}

// markRaw marks the socket behind c.
func markRaw(s *signal.Signaller, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = s.Mark(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

// resultOf reads what the handshake of c, a marked client, carried.
func resultOf(s *signal.Signaller, c *net.TCPConn) (sigResult, error) {
	return readResult(s, c, false)
}

// acceptedOf reads what the handshake of c, accepted from a marked listener, carried.
func acceptedOf(s *signal.Signaller, c *net.TCPConn) (sigResult, error) {
	return readResult(s, c, true)
}

// readResult asks the results cache first, which needs only c's addresses, and
// the kernel, through c's file descriptor, when the cache cannot answer.
func readResult(s *signal.Signaller, c *net.TCPConn, accepted bool) (sigResult, error) {
	la, lok := c.LocalAddr().(*net.TCPAddr)
	ra, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return sigResult{}, syscall.EINVAL // a nil *net.TCPConn
	}
	local, remote := la.AddrPort(), ra.AddrPort()
	if r, ok := s.CachedResult(local, remote, accepted); ok {
		return r, nil
	}
	read := s.ResultAddr
	if accepted {
		read = s.AcceptedResult
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return sigResult{}, err
	}
	var r sigResult
	if cerr := rc.Control(func(fd uintptr) { r, err = read(int(fd), local, remote) }); cerr != nil {
		return sigResult{}, cerr
	}
	return r, err
}
