package smc

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smc-go/smc/internal/shm"
)

// A Conn is a connection whose peer advertised SMC in the TCP handshake. It
// implements [net.Conn]. Its SMC handshake runs in [Dialer.DialContext] on the
// client, and on the server on the first Read or Write or an explicit
// [Conn.Handshake]. After the handshake it moves data through shared memory
// ([ModeSMCD]) or, if SMC was declined, through its TCP connection ([ModeTCP]); the
// TCP connection stays open for the connection's life either way.
//
// Conns come from [Dialer.DialContext] and a [ListenConfig.Listen] listener's
// Accept; the zero Conn is not usable, as the zero tls.Conn is not.
type Conn struct {
	tcp      *net.TCPConn
	isClient bool
	config   *Config
	signal   sigResult
	limit    *atomic.Int64 // server: the listener's count of handshakes in progress

	// handshakeMu serialises handshakes; handshakeErr is sticky and guarded by it,
	// and so is ahead: bytes the handshake read past its last CLC message.
	handshakeMu  sync.Mutex
	handshakeErr error
	ahead        []byte
	// handshakeDone is set after data and state are final; a load that sees true
	// orders all later reads of data and state after their writes.
	handshakeDone atomic.Bool

	// mu guards data until handshakeDone, state, closed and the caller's deadlines,
	// which the handshake overrides on the TCP connection and then puts back.
	mu            sync.Mutex
	data          dataPath
	stream        *shm.Stream // data when it is shared memory, else nil
	state         ConnectionState
	closed        bool
	readDeadline  time.Time
	writeDeadline time.Time
	hsCtx         *handshakeContext // the running handshake's context (&hctx), else nil

	hctx handshakeContext // the context of the Conn's handshake, set up by runHandshake

	linger atomic.Int64 // seconds as in SetLinger; -1 (the default) is the OS default

	obs connObs // what Info and smc ss show of the Conn (info.go)
}

// dataPath is what moves the bytes once the handshake is over: the TCP connection
// itself, or a shared-memory stream.
type dataPath interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	CloseRead() error
	CloseWrite() error
	Close() error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

func newConn(tcp *net.TCPConn, isClient bool, config *Config, res sigResult) *Conn {
	c := &Conn{tcp: tcp, isClient: isClient, config: config, signal: res}
	c.state = ConnectionState{Mode: ModeTCP, Offered: res.Sent, PeerAdvertised: res.Received}
	c.linger.Store(-1)
	c.register()
	return c
}

// Handshake runs the SMC handshake if it has not run yet; see
// [Conn.HandshakeContext].
func (c *Conn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext runs the SMC handshake if it has not run yet. A handshake that
// declines SMC is not an error: the connection goes on over TCP and
// [Conn.ConnectionState] says why. An error means the connection is unusable; it
// is returned again by every later call, as with crypto/tls (a timeout too: the
// peer may be in the middle of a CLC message). The handshake is bounded by ctx,
// [Config.HandshakeTimeout], the caller's read deadline for what it reads and write
// deadline for what it writes, and Close.
//
// The server's handshake starts by reading: a client that advertised SMC in the
// TCP handshake but then waits for the server to speak (it does not speak CLC)
// holds the server's first Write until the handshake times out. A client whose
// first bytes are not CLC gets plain TCP with those bytes delivered to the server
// unchanged. A server that answers our Proposal with non-CLC bytes fails the dial:
// the Proposal is already in its stream, so the connection cannot be saved.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	return c.handshakeUntil(ctx, time.Time{})
}

// handshakeUntil is HandshakeContext with a further deadline dl, unless zero.
func (c *Conn) handshakeUntil(ctx context.Context, dl time.Time) error {
	if c.handshakeDone.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil {
		return c.handshakeErr
	}
	if c.handshakeDone.Load() {
		return nil
	}
	if err := c.runHandshake(ctx, dl); err != nil {
		c.handshakeErr = err
		return err
	}
	return nil
}

// finish installs the data path and the final state; runHandshake publishes them
// once the caller's deadlines are back. It fails, releasing a shared-memory data
// path, when the Conn was closed while the handshake ran.
func (c *Conn) finish(data dataPath, st ConnectionState) error {
	st.HandshakeComplete = true
	stream, _ := data.(*shm.Stream)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		if stream != nil {
			if c.linger.Load() == 0 {
				stream.Abort()
			} else {
				stream.Close()
			}
		}
		return errClosedHandshake
	}
	c.data, c.stream, c.state = data, stream, st
	// A new stream has no deadlines. Setting one also kicks the stream's waiter, whose
	// first wait would then return at once for nothing: set only those the caller set.
	if stream != nil && !c.readDeadline.IsZero() {
		stream.SetReadDeadline(c.readDeadline)
	}
	if stream != nil && !c.writeDeadline.IsZero() {
		stream.SetWriteDeadline(c.writeDeadline)
	}
	return nil
}

// ConnectionState returns a snapshot of what the connection negotiated.
func (c *Conn) ConnectionState() ConnectionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// NetConn returns the underlying TCP connection. Reading from or writing to it
// directly corrupts the connection.
func (c *Conn) NetConn() *net.TCPConn { return c.tcp }

// Read reads data from the connection, running the handshake first if needed.
func (c *Conn) Read(b []byte) (int, error) {
	if !c.handshakeDone.Load() {
		if err := c.Handshake(); err != nil {
			return 0, err
		}
	}
	return c.data.Read(b)
}

// Write writes data to the connection, running the handshake first if needed.
func (c *Conn) Write(b []byte) (int, error) {
	if !c.handshakeDone.Load() {
		if err := c.Handshake(); err != nil {
			return 0, err
		}
	}
	return c.data.Write(b)
}

// Close closes the connection. Blocked Read, Write and handshake calls return; later
// calls fail with an error satisfying errors.Is(err, net.ErrClosed).
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Source: c.tcp.LocalAddr(), Addr: c.tcp.RemoteAddr(), Err: net.ErrClosed}
	}
	c.closed = true
	stream := c.stream
	if c.hsCtx != nil {
		// End the handshake: a wait on shared-memory set-up, and blocked TCP I/O.
		c.hsCtx.cancel(context.Canceled)
		c.tcp.SetDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
	c.unregister() // before the shared memory goes
	var err error
	if stream != nil {
		if c.linger.Load() == 0 {
			err = stream.Abort()
		} else {
			err = stream.Close()
		}
	}
	if terr := c.tcp.Close(); err == nil {
		err = terr
	}
	return err
}

// CloseWrite shuts down the writing side: the peer reads io.EOF once it has read
// everything written before.
func (c *Conn) CloseWrite() error {
	if err := c.Handshake(); err != nil {
		return err
	}
	return c.data.CloseWrite()
}

// CloseRead shuts down the reading side.
func (c *Conn) CloseRead() error {
	if err := c.Handshake(); err != nil {
		return err
	}
	return c.data.CloseRead()
}

// LocalAddr returns the local address of the TCP connection.
func (c *Conn) LocalAddr() net.Addr { return c.tcp.LocalAddr() }

// RemoteAddr returns the remote address of the TCP connection.
func (c *Conn) RemoteAddr() net.Addr { return c.tcp.RemoteAddr() }

// SetDeadline sets the read and write deadlines, as [net.Conn] describes. They apply
// to the handshake too.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for Read calls, and for what a handshake reads.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.readDeadline, t, (*net.TCPConn).SetReadDeadline, (*shm.Stream).SetReadDeadline)
}

// SetWriteDeadline sets the deadline for Write calls, and for what a handshake writes.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.writeDeadline, t, (*net.TCPConn).SetWriteDeadline, (*shm.Stream).SetWriteDeadline)
}

// setDeadline records the caller's deadline *d (guarded by c.mu) and applies it to
// the TCP connection, bounded by a running handshake's own, and to the shared-memory
// stream if there is one.
func (c *Conn) setDeadline(d *time.Time, t time.Time, onTCP func(*net.TCPConn, time.Time) error, onStream func(*shm.Stream, time.Time) error) error {
	c.mu.Lock()
	*d = t
	if c.closed {
		c.mu.Unlock()
		return onTCP(c.tcp, t) // reports the closed connection
	}
	c.applyDeadlinesLocked()
	stream := c.stream
	c.mu.Unlock()
	if stream != nil {
		return onStream(stream, t)
	}
	return nil
}

// remoteAddrPort returns the peer's address.
func (c *Conn) remoteAddrPort() netip.AddrPort {
	return c.tcp.RemoteAddr().(*net.TCPAddr).AddrPort()
}

// replayTCP is the data path of a connection that settled on TCP after its
// handshake read application data: a client's that advertised SMC and then sent
// no CLC, or what a peer sent after its Decline in the same read. Those bytes are
// read first.
type replayTCP struct {
	*net.TCPConn
	mu      sync.Mutex
	pending []byte // guarded by mu
}

func (r *replayTCP) Read(b []byte) (int, error) {
	r.mu.Lock()
	if len(r.pending) > 0 {
		n := copy(b, r.pending)
		r.pending = r.pending[n:]
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	return r.TCPConn.Read(b)
}

// SetLinger sets the behaviour of Close with unsent data, as [net.TCPConn.SetLinger]
// does; with sec == 0, Close resets the connection on either data path.
func (c *Conn) SetLinger(sec int) error {
	if err := c.tcp.SetLinger(sec); err != nil {
		return err
	}
	if sec < 0 {
		sec = -1
	}
	c.linger.Store(int64(sec))
	return nil
}

// SetNoDelay controls Nagle's algorithm on the TCP connection. Shared-memory writes
// are never delayed.
func (c *Conn) SetNoDelay(noDelay bool) error { return c.tcp.SetNoDelay(noDelay) }

// SetKeepAlive enables TCP keep-alive probes, which keep watching the peer in SMC
// mode too.
func (c *Conn) SetKeepAlive(keepalive bool) error { return c.tcp.SetKeepAlive(keepalive) }

// SetKeepAlivePeriod sets the TCP keep-alive period.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error { return c.tcp.SetKeepAlivePeriod(d) }

// SyscallConn returns the raw TCP socket, as Linux IPPROTO_SMC forwards socket
// options to its TCP socket.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.tcp.SyscallConn() }

// ReadFrom copies from r to the connection until r is exhausted; in SMC-D mode it
// reads straight into the peer's ring. It implements [io.ReaderFrom].
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if c.stream != nil {
		return c.stream.ReadFrom(r)
	}
	return c.tcp.ReadFrom(r)
}

// WriteTo copies from the connection to w until the peer is done writing; in
// SMC-D mode it writes straight from the ring. It implements [io.WriterTo].
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if c.stream != nil {
		return c.stream.WriteTo(w)
	}
	var n int64
	if r, ok := c.data.(*replayTCP); ok {
		r.mu.Lock()
		pending := r.pending
		r.pending = nil
		r.mu.Unlock()
		if len(pending) > 0 {
			m, err := w.Write(pending)
			n += int64(m)
			if err != nil {
				return n, err
			}
		}
	}
	m, err := c.tcp.WriteTo(w)
	return n + m, err
}
