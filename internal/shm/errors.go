package shm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// ErrNotSupported is returned on platforms without sealed memfds (anything but Linux).
var ErrNotSupported = errors.New("smc: shm: shared-memory data path not supported on this platform")

// ErrMemoryLimit is returned by [Endpoint.Offer] and [Connect] (and by a server-side handshake)
// when mapping another DMB would take the process past its shared-memory bound
// ([SetMemoryLimit]). The root package maps it to Linux's MAX_DMB decline.
var ErrMemoryLimit = errors.New("smc: shm: shared-memory limit reached")

// ErrBadSize is returned when a ring size is not a power of two in [MinRingSize, MaxRingSize].
var ErrBadSize = errors.New("smc: shm: ring size must be a power of two between MinRingSize and MaxRingSize")

// ErrOfferClosed is returned by [Offer.Bind] after the offer was cancelled, bound or its
// link ended, and by [Connect] when the server withdrew the offer.
var ErrOfferClosed = errors.New("smc: shm: offer cancelled")

// ProtocolError reports that the peer broke the shared-memory protocol: a cursor out of
// range or moving backwards, a flag cleared or unknown, a malformed handshake message or
// file descriptor. The stream that saw it is aborted; the peer sees a reset.
type ProtocolError struct {
	What string // what was wrong, for humans
}

func (e *ProtocolError) Error() string { return "smc: shm: peer protocol violation: " + e.What }

// Unwrap returns syscall.ECONNRESET: to the application, a violation is a reset.
func (e *ProtocolError) Unwrap() error { return syscall.ECONNRESET }

func violation(format string, args ...any) error {
	return &ProtocolError{What: fmt.Sprintf(format, args...)}
}

// timeoutError is returned when a deadline passes. It satisfies net.Error with Timeout()
// true and errors.Is(err, os.ErrDeadlineExceeded), like the errors of the net package.
type timeoutError struct{ op string }

func (e *timeoutError) Error() string   { return "smc: shm: " + e.op + ": i/o timeout" }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }

var _ net.Error = (*timeoutError)(nil)

func errClosed(op string) error { return fmt.Errorf("smc: shm: %s: %w", op, net.ErrClosed) }

// errReset is what a stream returns after the peer aborted it, died, or broke the protocol
// (the ProtocolError is wrapped alongside in that case).
func errReset(why string) error {
	return fmt.Errorf("smc: shm: connection reset: %s: %w", why, syscall.ECONNRESET)
}

func errPipe(op string) error { return fmt.Errorf("smc: shm: %s: %w", op, syscall.EPIPE) }
