package shm

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Config configures an [Endpoint]. The zero value is ready to use.
type Config struct {
	// Dir, if not empty, is a directory in which the endpoint creates its socket file
	// (see [Addr]), so that peers in other network namespaces sharing the directory can
	// connect. Empty means a socket in the abstract namespace, reachable from the same
	// network namespace only.
	Dir string

	// HandshakeTimeout bounds the server side of one fd exchange, from connection to
	// reply. Zero means 5 seconds.
	HandshakeTimeout time.Duration
}

// Addr returns the address of the endpoint with the given ID under dir (see
// [Config.Dir]). It lets a client derive the address from the 4-byte ID a server sends.
func Addr(dir string, id uint32) string {
	name := fmt.Sprintf("smc-%08x", id)
	if dir == "" {
		return "@smc-go/shm/" + name
	}
	return filepath.Join(dir, name+".sock")
}

// An Endpoint is a process's listener for fd exchanges: the Unix socket through which
// clients holding a token from one of its [Offer]s attach to a server's DMB. A process
// needs one, created lazily.
type Endpoint struct {
	cfg  Config
	id   uint32
	addr string
	ln   *net.UnixListener
	wg   sync.WaitGroup // the accept loop and the handshakes in progress

	mu     sync.Mutex // guards the fields below
	offers map[uint64]*Offer
	conns  map[*net.UnixConn]struct{} // handshakes in progress
	closed bool
}

// Listen creates an endpoint with a random ID. It does no I/O beyond creating the socket.
func Listen(cfg Config) (*Endpoint, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	var lastErr error
	for range 8 {
		var b [4]byte
		rand.Read(b[:])
		id := binary.LittleEndian.Uint32(b[:])
		addr := Addr(cfg.Dir, id)
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: addr, Net: "unixpacket"})
		if errors.Is(err, syscall.EADDRINUSE) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("smc: shm: listen %s: %w", addr, err)
		}
		e := &Endpoint{
			cfg:    cfg,
			id:     id,
			addr:   addr,
			ln:     ln,
			offers: make(map[uint64]*Offer),
			conns:  make(map[*net.UnixConn]struct{}),
		}
		e.wg.Add(1)
		go e.acceptLoop()
		return e, nil
	}
	return nil, fmt.Errorf("smc: shm: listen: %w", lastErr)
}

// ID returns the endpoint's 32-bit ID; Addr(cfg.Dir, ID()) is its address.
func (e *Endpoint) ID() uint32 { return e.id }

// Addr returns the address clients pass to [Connect].
func (e *Endpoint) Addr() string { return e.addr }

// Close stops the endpoint: its socket is removed, pending offers fail with
// [ErrOfferClosed], handshakes in progress are cut. Established streams are unaffected.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errClosed("close endpoint")
	}
	e.closed = true
	offers := e.offers
	e.offers = nil
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	err := e.ln.Close()
	for _, o := range offers {
		o.finish(nil, ErrOfferClosed)
	}
	e.wg.Wait()
	if err != nil {
		return fmt.Errorf("smc: shm: close endpoint: %w", err)
	}
	return nil
}

// maxHandshakes bounds the fd exchanges an endpoint serves at once.
const maxHandshakes = 1024

func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	for {
		c, err := e.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off a little rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		e.mu.Lock()
		if e.closed || len(e.conns) >= maxHandshakes {
			// Past the bound, a flood of strangers costs them their connection, not
			// us a goroutine each for HandshakeTimeout.
			e.mu.Unlock()
			c.Close()
			continue
		}
		e.conns[c] = struct{}{}
		e.wg.Add(1)
		e.mu.Unlock()
		go e.serve(c)
	}
}

// serve runs the server side of one fd exchange. Nothing is sent back before the client's
// token matched a pending offer; the token is then consumed, whatever happens next.
func (e *Endpoint) serve(c *net.UnixConn) {
	defer e.wg.Done()
	// untrack removes c from the handshakes Close would cut; it reports false if Close
	// has already cut it.
	untrack := func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.conns, c)
		return !e.closed
	}
	c.SetDeadline(time.Now().Add(e.cfg.HandshakeTimeout))
	h, fd, err := readHello(c)
	if err != nil {
		untrack()
		c.Close() // nothing to tell a stranger
		return
	}
	e.mu.Lock()
	o := e.offers[h.token]
	delete(e.offers, h.token)
	e.mu.Unlock()
	var d *dmb
	if o != nil {
		d = o.claim()
	}
	if d == nil {
		closeFD(fd)
		untrack()
		c.Close()
		return
	}
	s, err := exchange(c, d, fd, int(h.size), false)
	if !untrack() && err == nil {
		s.Abort() // the endpoint closed under the handshake and cut c
		s, err = nil, ErrOfferClosed
	}
	if err != nil {
		c.Close()
	}
	o.finish(s, err)
}

// An Offer is a server's DMB waiting for the client that holds its token.
type Offer struct {
	e     *Endpoint
	token uint64
	done  chan struct{}

	mu      sync.Mutex // guards the fields below
	d       *dmb       // own DMB until a handshake claims it
	claimed bool       // a handshake took the offer out of the endpoint's table
	s       *Stream    // result, once done is closed
	err     error      // result, once done is closed
	taken   bool       // Wait returned s to the caller
}

// Offer allocates a DMB with a ring of size bytes (a power of two, see [MinRingSize]) and
// a one-time random token for it. The client that presents the token through [Connect]
// gets the stream; the token is valid once, until [Offer.Cancel] or the end of the
// context passed to [Offer.Wait]. It fails with [ErrMemoryLimit] beyond the process bound.
func (e *Endpoint) Offer(size int) (*Offer, error) {
	d, err := newDMB(size)
	if err != nil {
		return nil, err
	}
	o := &Offer{e: e, d: d, done: make(chan struct{})}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		d.release()
		return nil, errClosed("offer")
	}
	for o.token == 0 || e.offers[o.token] != nil {
		var b [8]byte
		rand.Read(b[:])
		o.token = binary.LittleEndian.Uint64(b[:])
	}
	e.offers[o.token] = o
	return o, nil
}

// Token returns the one-time token the client must present.
func (o *Offer) Token() uint64 { return o.token }

// Wait returns the stream once a client presented the token and the DMBs were exchanged.
// If ctx ends first, the offer is cancelled and ctx's error returned.
func (o *Offer) Wait(ctx context.Context) (*Stream, error) {
	select {
	case <-o.done:
	case <-ctx.Done():
		select {
		case <-o.done: // a result that is already there wins
		default:
			o.Cancel()
			return nil, fmt.Errorf("smc: shm: waiting for client: %w", ctx.Err())
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return nil, o.err
	}
	if o.taken {
		return nil, ErrOfferClosed
	}
	o.taken = true
	return o.s, nil
}

// Cancel withdraws the offer and releases its DMB. A handshake already past the token
// check is aborted. After Wait has returned the stream, Cancel does nothing.
func (o *Offer) Cancel() {
	e := o.e
	e.mu.Lock()
	if e.offers[o.token] == o {
		delete(e.offers, o.token)
	}
	e.mu.Unlock()
	o.finish(nil, ErrOfferClosed)
}

// claim hands the offer's DMB to a handshake; it returns nil if the offer already finished.
func (o *Offer) claim() *dmb {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.done:
		return nil
	default:
	}
	o.claimed = true
	d := o.d
	o.d = nil
	return d
}

// finish records the first outcome. A later outcome means a cancellation raced with the
// handshake: a stream nobody can own any more is aborted.
func (o *Offer) finish(s *Stream, err error) {
	o.mu.Lock()
	select {
	case <-o.done:
		var orphan *Stream
		switch {
		case s != nil: // the handshake finished after a cancellation
			orphan = s
		case !o.taken && o.s != nil: // cancelled after the handshake, before Wait
			orphan, o.s, o.err = o.s, nil, err
		}
		o.mu.Unlock()
		if orphan != nil {
			orphan.Abort()
		}
		return
	default:
	}
	if !o.claimed {
		o.d.release() // never handed to a handshake
		o.d = nil
	}
	o.s, o.err = s, err
	close(o.done)
	o.mu.Unlock()
}

// Connect is the client side: it creates a DMB with a ring of size bytes, connects to the
// endpoint at addr, presents token with the DMB's memfd, and maps the server's DMB, which
// must have a ring of peerSize bytes (announced in the CLC Accept). ctx bounds the
// exchange. It fails with [ErrMemoryLimit] beyond the process bound.
func Connect(ctx context.Context, addr string, token uint64, size, peerSize int) (*Stream, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if !validRingSize(peerSize) {
		return nil, ErrBadSize
	}
	d, err := newDMB(size)
	if err != nil {
		return nil, err
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unixpacket", addr)
	if err != nil {
		d.release()
		return nil, fmt.Errorf("smc: shm: connect %s: %w", addr, err)
	}
	c := conn.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeHello(c, hello{token: token, size: uint64(size)}, d.fd); err != nil {
		d.release()
		c.Close()
		return nil, fmt.Errorf("smc: shm: connect %s: %w", addr, err)
	}
	d.closeFD()
	h, fd, err := readHello(c)
	if err != nil {
		d.release()
		c.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("smc: shm: connect %s: %w", addr, err)
	}
	if h.token != 0 || h.size != uint64(peerSize) {
		closeFD(fd)
		d.release()
		c.Close()
		return nil, violation("server replied token %#x, ring size %d (want 0, %d)", h.token, h.size, peerSize)
	}
	if !stop() {
		closeFD(fd)
		d.release()
		c.Close()
		return nil, fmt.Errorf("smc: shm: connect %s: %w", addr, ctx.Err())
	}
	s, err := exchange(c, d, fd, peerSize, true)
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// exchange maps the peer's DMB (fd, validated), sends our own DMB on the server side, and
// starts the stream. It takes ownership of d and fd in every case; c only on success.
func exchange(c *net.UnixConn, d *dmb, fd, peerSize int, client bool) (*Stream, error) {
	peer, err := mapPeerDMB(fd, peerSize)
	if err != nil {
		d.release()
		return nil, err
	}
	if !client {
		if err := writeHello(c, hello{size: uint64(len(d.ring))}, d.fd); err != nil {
			d.release()
			peer.release()
			return nil, fmt.Errorf("smc: shm: handshake reply: %w", err)
		}
	}
	d.closeFD()
	c.SetDeadline(time.Time{})
	s, err := newStream(c, d, peer)
	if err != nil {
		d.release()
		peer.release()
		return nil, err
	}
	return s, nil
}

// The fd-exchange message, one per direction, carrying one memfd in SCM_RIGHTS:
//
//	0  4  magic "SMCs"
//	4  2  version (1)
//	6  2  reserved (0)
//	8  8  token (client → server), 0 (server → client)
//	16 8  ring size of the sender's DMB
//
// Little-endian; both ends are on one host anyway.
const (
	helloLen     = 24
	helloVersion = 1
	helloMagic   = "SMCs"
)

type hello struct {
	token uint64
	size  uint64
}

func (h hello) append(b []byte) []byte {
	b = append(b, helloMagic...)
	b = binary.LittleEndian.AppendUint16(b, helloVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint64(b, h.token)
	return binary.LittleEndian.AppendUint64(b, h.size)
}

// parseHello parses a message body strictly: exact length, magic, version, zero reserved
// bits, a valid ring size.
func parseHello(b []byte) (hello, error) {
	if len(b) != helloLen {
		return hello{}, violation("handshake message of %d bytes, want %d", len(b), helloLen)
	}
	if string(b[:4]) != helloMagic {
		return hello{}, violation("handshake magic %q", b[:4])
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != helloVersion {
		return hello{}, violation("handshake version %d", v)
	}
	if r := binary.LittleEndian.Uint16(b[6:]); r != 0 {
		return hello{}, violation("handshake reserved bits %#x", r)
	}
	h := hello{token: binary.LittleEndian.Uint64(b[8:]), size: binary.LittleEndian.Uint64(b[16:])}
	if h.size > MaxRingSize || !validRingSize(int(h.size)) {
		return hello{}, violation("handshake ring size %d", h.size)
	}
	return h, nil
}
