package smc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/smc-go/smc/internal/wire"
)

// runHandshake runs the client or server side of the CLC handshake and installs the
// data path it settles on.
func (c *Conn) runHandshake(ctx context.Context) error {
	restore := c.handshakeDeadline(ctx)
	var err error
	if c.isClient {
		err = c.clientHandshake(ctx)
	} else {
		err = c.serverHandshake(ctx)
	}
	restore()
	if err != nil {
		// The TCP deadline may fire a moment before ctx reports it ended.
		cerr := ctx.Err()
		if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded
		}
		if cerr != nil {
			err = fmt.Errorf("smc: handshake: %w: %w", cerr, err)
		}
	}
	return err
}

// aLongTimeAgo is a deadline that has passed, used to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// handshakeDeadline bounds the handshake's TCP I/O by the handshake timeout, ctx
// and the caller's own deadlines, and returns a function that puts the caller's
// deadlines back.
func (c *Conn) handshakeDeadline(ctx context.Context) (restore func()) {
	dl := time.Now().Add(c.config.handshakeTimeout())
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.mu.Lock()
	rdl, wdl := c.readDeadline, c.writeDeadline
	c.mu.Unlock()
	for _, d := range []time.Time{rdl, wdl} {
		if !d.IsZero() && d.Before(dl) {
			dl = d
		}
	}
	c.tcp.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.tcp.SetDeadline(aLongTimeAgo) })
	return func() {
		stop()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.tcp.SetReadDeadline(c.readDeadline)
		c.tcp.SetWriteDeadline(c.writeDeadline)
	}
}

// writeCLC sends one CLC message on the TCP connection.
func (c *Conn) writeCLC(m wire.Message) error {
	if _, err := c.tcp.Write(m.Append(make([]byte, 0, m.Length()))); err != nil {
		return fmt.Errorf("smc: sending CLC message: %w", err)
	}
	return nil
}

// readCLC reads and decodes one CLC message. raw holds every byte consumed, also
// on error: after an error wrapping wire.ErrNotCLC they are application data.
func (c *Conn) readCLC() (m wire.Message, raw []byte, err error) {
	raw, err = wire.ReadMessage(c.tcp, make([]byte, 0, wire.MaxMessageLen))
	if err != nil {
		return nil, raw, err
	}
	m, err = wire.Parse(raw)
	return m, raw, err
}

// decline sends a Decline with code and settles on TCP with that reason.
func (c *Conn) decline(code Reason, version uint8) error {
	d := &wire.Decline{Version: version, Diagnosis: wire.Code(code)}
	if version >= wire.Version2 {
		d.OSType = wire.OSLinux
	}
	if err := c.writeCLC(d); err != nil {
		return err
	}
	c.logDecision("declined", code, 0)
	return c.finishTCP(c.tcp, code, 0)
}

// peerDeclined settles on TCP after the peer's Decline.
func (c *Conn) peerDeclined(d *wire.Decline) error {
	c.logDecision("peer declined", ReasonPeerDecl, Reason(d.Diagnosis))
	return c.finishTCP(c.tcp, ReasonPeerDecl, Reason(d.Diagnosis))
}

// finishTCP completes the handshake in TCP mode.
func (c *Conn) finishTCP(data dataPath, reason, peer Reason) error {
	return c.finish(data, ConnectionState{Mode: ModeTCP, Fallback: reason, PeerDiagnosis: peer,
		Offered: c.signal.Sent, PeerAdvertised: c.signal.Received})
}

// finishSMC completes the handshake in SMC-D mode.
func (c *Conn) finishSMC(data dataPath) error {
	c.logDecision("using SMC-D", ReasonNone, 0)
	return c.finish(data, ConnectionState{Mode: ModeSMCD, Offered: c.signal.Sent, PeerAdvertised: c.signal.Received})
}

// handshakeError returns the error for a handshake that can go neither way; the
// connection is unusable.
func (c *Conn) handshakeError(reason Reason, err error) error {
	if errors.Is(err, net.ErrClosed) {
		return err
	}
	return &DeclineError{Reason: reason, Err: err}
}

func (c *Conn) logDecision(msg string, reason, peer Reason) {
	l := c.config.logger()
	if l == nil {
		return
	}
	role := "server"
	if c.isClient {
		role = "client"
	}
	l.Debug("smc: "+msg, "role", role, "local", c.tcp.LocalAddr(), "remote", c.tcp.RemoteAddr(),
		"reason", reason, "peer", peer)
}
