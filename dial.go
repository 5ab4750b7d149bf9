package smc

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smc-go/smc/internal/registry"
	"github.com/smc-go/smc/internal/signal"
)

// A Dialer connects to TCP addresses and offers SMC when its [Config.Policy] says so
// and the process can announce it. Its zero value is usable. The fields other than
// Config mean what they mean in [net.Dialer]; Control and ControlContext run before
// this package's own hook.
type Dialer struct {
	Timeout         time.Duration
	Deadline        time.Time
	LocalAddr       net.Addr
	FallbackDelay   time.Duration
	KeepAlive       time.Duration
	KeepAliveConfig net.KeepAliveConfig
	Resolver        *net.Resolver
	Control         func(network, address string, c syscall.RawConn) error
	ControlContext  func(ctx context.Context, network, address string, c syscall.RawConn) error

	// Config tunes SMC; nil means defaults.
	Config *Config
}

// Dial connects to address on network ("tcp", "tcp4" or "tcp6") using a zero
// [Dialer].
func Dial(network, address string) (net.Conn, error) {
	var d Dialer
	return d.DialContext(context.Background(), network, address)
}

// Dial connects to address on network; see [Dialer.DialContext].
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network ("tcp", "tcp4" or "tcp6").
//
// When SMC is not offered (by policy, because the process cannot announce it, or
// because the destination did not answer a recent offer) or the peer does not
// advertise it, the result is the kernel connection itself, a *net.TCPConn. When
// both sides advertised SMC, the result is a *[Conn] whose handshake has completed
// before DialContext returns; it still may use TCP if the handshake declined SMC.
// ctx bounds the connect and the handshake.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if err := checkNetwork(network); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if err := d.Config.checkEndpointDir(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if s, err := signalling(); err == nil && d.Config.policy().offerLiteral(address) {
		return d.dialOffer(ctx, s, network, address)
	}
	// Not offered: no signalling here, or a literal destination that the
	// negative cache knows as a plain peer or the policy refuses. This is the
	// plain net.Dialer path: no hook, no mark, no record to read, and no context
	// of ours (net.Dialer applies Timeout and Deadline itself). It is kept apart
	// from dialOffer so that its stack frame is small: with hundreds of dialing
	// goroutines every stack line a dial touches is a cache miss.
	var nd net.Dialer
	d.netDialer(&nd)
	return nd.DialContext(ctx, network, address)
}

// dialOffer dials offering SMC, as far as the resolved address's policy allows.
func (d *Dialer) dialOffer(ctx context.Context, s *signal.Signaller, network, address string) (net.Conn, error) {
	var nd net.Dialer
	d.netDialer(&nd)
	policy := d.Config.policy()
	// Timeout and Deadline bound the SMC handshake too, as tls.Dialer's do; nd
	// applies them to the connect itself.
	dl := d.deadline()
	// The sock_ops program sees only an MPTCP socket's subflows, so a socket that
	// offers SMC is plain TCP (net.Dialer uses MPTCP only when GODEBUG asks).
	nd.SetMultipathTCP(false)
	var marked atomic.Bool
	nd.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := d.userControl(ctx, network, address, c); err != nil {
			return err
		}
		dst, err := netip.ParseAddrPort(address)
		if err != nil || !policy.OfferDial(dst) {
			return nil
		}
		if markRaw(s, c) == nil {
			marked.Store(true)
		}
		return nil
	}
	c, err := nd.DialContext(ctx, network, address)
	if err != nil || !marked.Load() {
		return c, err
	}
	tc := c.(*net.TCPConn)
	res, err := resultOf(s, tc)
	if err != nil || !res.Marked {
		// A concurrent attempt was marked but this one was not, or the record cannot
		// be read: either way this connection is plain TCP.
		count(registry.ClientNotSent)
		return tc, nil
	}
	if res.Conflict {
		// Another program wrote the option into our SYN: nothing about this
		// connection's handshake is ours to trust, and nothing more is offered.
		noteConflict(s)
		count(registry.ClientConflict)
		return tc, nil
	}
	if !res.Negotiated() {
		if res.Sent {
			policy.remember(tc.RemoteAddr().(*net.TCPAddr).AddrPort())
			count(registry.ClientPeerNoSMC)
		} else {
			count(registry.ClientNotSent)
		}
		return tc, nil
	}
	count(registry.ClientNegotiated)
	conn := newConn(tc, true, d.Config, res)
	if err := conn.handshakeUntil(ctx, dl); err != nil {
		conn.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Source: tc.LocalAddr(), Addr: tc.RemoteAddr(), Err: err}
	}
	return conn, nil
}

// deadline returns the earlier of d.Deadline and now plus d.Timeout, or zero.
func (d *Dialer) deadline() time.Time {
	dl := d.Deadline
	if d.Timeout > 0 {
		dl = earliest(dl, time.Now().Add(d.Timeout))
	}
	return dl
}

// netDialer sets the zero nd to the net.Dialer with d's settings, field by
// field: a composite literal or a returned value would cost the caller's frame a
// second copy of the struct.
func (d *Dialer) netDialer(nd *net.Dialer) {
	nd.Timeout = d.Timeout
	nd.Deadline = d.Deadline
	nd.LocalAddr = d.LocalAddr
	nd.FallbackDelay = d.FallbackDelay
	nd.KeepAlive = d.KeepAlive
	nd.KeepAliveConfig = d.KeepAliveConfig
	nd.Resolver = d.Resolver
	nd.Control = d.Control
	nd.ControlContext = d.ControlContext
}

// userControl runs the caller's hook with net.Dialer's precedence: ControlContext
// wins over Control.
func (d *Dialer) userControl(ctx context.Context, network, address string, c syscall.RawConn) error {
	if d.ControlContext != nil {
		return d.ControlContext(ctx, network, address, c)
	}
	if d.Control != nil {
		return d.Control(network, address, c)
	}
	return nil
}

func checkNetwork(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return nil
	}
	return net.UnknownNetworkError(network)
}
