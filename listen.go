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

// A ListenConfig creates TCP listeners that offer SMC when its [Config.Policy] says
// so and the process can announce it. Its zero value is usable. The fields other than
// Config mean what they mean in [net.ListenConfig]; Control runs before this
// package's own hook.
type ListenConfig struct {
	Control         func(network, address string, c syscall.RawConn) error
	KeepAlive       time.Duration
	KeepAliveConfig net.KeepAliveConfig

	// Config tunes SMC; nil means defaults.
	Config *Config
}

// Listen announces on the local address using a zero [ListenConfig].
func Listen(network, address string) (net.Listener, error) {
	var lc ListenConfig
	return lc.Listen(context.Background(), network, address)
}

// Listen announces on the local address; network must be "tcp", "tcp4" or "tcp6".
//
// When the listener does not offer SMC (by policy, or because the process cannot
// announce it), the result is a *net.TCPListener from the standard library and
// nothing of this package runs on its connections. Otherwise its Accept returns the
// kernel connection, a *net.TCPConn, for every client that did not advertise SMC, and
// a *[Conn] for those that did; that Conn runs its SMC handshake on its first Read
// or Write, or on [Conn.Handshake], never inside Accept.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	if err := checkNetwork(network); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if err := lc.Config.checkEndpointDir(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	nlc := net.ListenConfig{Control: lc.Control, KeepAlive: lc.KeepAlive, KeepAliveConfig: lc.KeepAliveConfig}
	s, err := signalling()
	policy := lc.Config.policy()
	if err != nil || !offerListenAddress(policy, address) {
		return nlc.Listen(ctx, network, address)
	}
	// sock_ops sees only the subflow of an MPTCP listener, so a mark on it would be
	// silently lost: a listener that offers SMC is plain TCP.
	nlc.SetMultipathTCP(false)
	var marked atomic.Bool
	nlc.Control = func(network, address string, c syscall.RawConn) error {
		if lc.Control != nil {
			if err := lc.Control(network, address, c); err != nil {
				return err
			}
		}
		if ap, err := netip.ParseAddrPort(address); err == nil && !policy.OfferListen(ap) {
			return nil
		}
		if markRaw(s, c) == nil {
			marked.Store(true)
		}
		return nil
	}
	l, err := nlc.Listen(ctx, network, address)
	if err != nil || !marked.Load() {
		return l, err
	}
	ml := &listener{tl: l.(*net.TCPListener), sig: s, config: lc.Config}
	ml.register()
	return ml, nil
}

// offerListenAddress applies the listen rules to an address before it is resolved:
// a literal or empty host is decided here; a host name is decided again once
// resolved, in the Control hook.
func offerListenAddress(p *Policy, address string) bool {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return true // net.ListenConfig reports the error
	}
	pn, err := net.LookupPort("tcp", port)
	if err != nil {
		return true
	}
	a := netip.IPv6Unspecified()
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return true
		}
	}
	return p.OfferListen(netip.AddrPortFrom(a, uint16(pn)))
}

// listener is a TCP listener whose socket offers SMC. It does not expose the
// *net.TCPListener's AcceptTCP: a connection accepted that way from a client that
// advertised SMC would never answer its handshake.
type listener struct {
	tl         *net.TCPListener
	sig        *signal.Signaller
	config     *Config
	handshakes atomic.Int64  // server handshakes in progress on this listener's connections
	slot       atomic.Uint32 // its record in the process's registry (info.go)
}

// Addr returns the listener's network address.
func (l *listener) Addr() net.Addr { return l.tl.Addr() }

// Close stops listening; connections already accepted are not affected.
func (l *listener) Close() error {
	l.unregister()
	return l.tl.Close()
}

// SetDeadline sets the deadline of Accept, as [net.TCPListener.SetDeadline] does.
func (l *listener) SetDeadline(t time.Time) error { return l.tl.SetDeadline(t) }

// Accept waits for the next connection. It returns a *net.TCPConn when the client
// did not advertise SMC, and a *Conn whose handshake is still to run when it did.
func (l *listener) Accept() (net.Conn, error) {
	tc, err := l.tl.AcceptTCP()
	if err != nil {
		return nil, err
	}
	// The signalling records only clients that advertised SMC; "no record" is
	// exact here because net's AcceptTCP has taken the socket's lock (it sets
	// TCP_NODELAY), after which the kernel's ESTABLISHED callback has run
	// (internal/signal: AcceptedResult).
	res, err := acceptedOf(l.sig, tc)
	if err != nil || !res.Negotiated() {
		count(registry.ServerPeerNoSMC)
		return tc, nil
	}
	count(registry.ServerNegotiated)
	c := newConn(tc, false, l.config, res)
	c.limit = &l.handshakes
	return c, nil
}
