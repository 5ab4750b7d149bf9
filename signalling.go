package smc

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/smc-go/smc/internal/signal"
)

// sigResult is what the TCP handshake of one connection carried, as recorded by the
// signalling program.
type sigResult struct {
	Marked   bool // this side offered SMC (the socket was marked)
	Sent     bool // our SYN or SYN-ACK carried the SMC option
	Received bool // the peer's SYN-ACK or SYN carried it
	Conflict bool // our SYN already carried the option: another program writes it
}

// advertised reports whether both sides announced SMC in the TCP handshake.
func (r sigResult) advertised() bool { return r.Sent && r.Received }

// A signaller marks sockets before connect/listen and reads back what their
// handshake carried.
type signaller interface {
	mark(fd int) error
	// result reads the record of a connected socket; local and remote are its
	// addresses, which let the record be found without a system call.
	result(fd int, local, remote netip.AddrPort) (sigResult, error)
	// accepted is result for a socket that net's Accept returned from a marked
	// listener, whose plain clients have no record.
	accepted(fd int, local, remote netip.AddrPort) (sigResult, error)
	// cached answers result (accepted false) or accepted (true) without the
	// socket's file descriptor, and reports whether it could.
	cached(local, remote netip.AddrPort, accepted bool) (sigResult, bool)
	// err reports a conflict found since the signaller was opened (nil if none):
	// from then on nothing is marked.
	err() error
	// noteConflict records a conflict a connection's result showed.
	noteConflict()
	close() error
}

var sig struct {
	once sync.Once
	s    signaller
	err  error
}

// signalling returns the process's signaller, opened once, or the reason there is
// none; with none, every connection is plain TCP.
func signalling() (signaller, error) {
	sig.once.Do(func() { sig.s, sig.err = openSignaller() })
	if sig.err != nil {
		return nil, sig.err
	}
	if err := sig.s.err(); err != nil {
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

// markRaw marks the socket behind c.
func markRaw(s signaller, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = s.mark(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

// resultOf reads what the handshake of c, a marked client, carried.
func resultOf(s signaller, c *net.TCPConn) (sigResult, error) {
	return readResult(s, c, false)
}

// acceptedOf reads what the handshake of c, accepted from a marked listener, carried.
func acceptedOf(s signaller, c *net.TCPConn) (sigResult, error) {
	return readResult(s, c, true)
}

// readResult asks the results cache first, which needs only c's addresses, and
// the kernel, through c's file descriptor, when the cache cannot answer.
func readResult(s signaller, c *net.TCPConn, accepted bool) (sigResult, error) {
	la, lok := c.LocalAddr().(*net.TCPAddr)
	ra, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return sigResult{}, syscall.EINVAL // a nil *net.TCPConn
	}
	local, remote := la.AddrPort(), ra.AddrPort()
	if r, ok := s.cached(local, remote, accepted); ok {
		return r, nil
	}
	read := s.result
	if accepted {
		read = s.accepted
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
