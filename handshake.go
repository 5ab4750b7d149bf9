package smc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/smc-go/smc/internal/wire"
)

// runHandshake runs the client or server side of the CLC handshake and installs the
// data path it settles on.
//
// The whole handshake, shared-memory set-up included, runs under one context that
// ends at the earliest of ctx's deadline, dl (if not zero) and Config.HandshakeTimeout,
// and that Close cancels. Its TCP I/O is bounded by the same deadline and by the
// caller's own read and write deadlines, each for its own direction, as crypto/tls's
// handshake I/O is; the caller's deadlines are back in place before any other Read or
// Write can see the connection as handshaken.
func (c *Conn) runHandshake(ctx context.Context, dl time.Time) error {
	dl = earliest(dl, time.Now().Add(c.config.handshakeTimeout()))
	if d, ok := ctx.Deadline(); ok {
		dl = earliest(dl, d)
	}
	// When the caller's ctx ends, interrupt blocked TCP I/O. The callback checks hsCtx
	// under mu, so it cannot act after the handshake ended. (Close interrupts it
	// itself, and the deadline is on the TCP connection already.) The context is the
	// Conn's own: a Conn runs one handshake at most (handshakeUntil).
	hctx := &c.hctx
	hctx.start(ctx, dl, c)
	// Ending hctx stops its timer, if Done armed one, and its watch of ctx, and ends
	// whatever still waits on it.
	defer hctx.cancel(context.Canceled)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosedHandshake
	}
	c.hsCtx = hctx
	c.applyDeadlinesLocked()
	c.mu.Unlock()
	var err error
	c.noteHandshakeStart()
	if c.isClient {
		err = c.clientHandshake(hctx)
	} else {
		err = c.serverHandshake(hctx)
	}
	c.noteHandshakeEnd(err)
	c.mu.Lock()
	c.hsCtx = nil
	c.applyDeadlinesLocked()
	closed := c.closed
	c.mu.Unlock()
	if err == nil {
		c.handshakeDone.Store(true)
		return nil
	}
	if closed {
		return errClosedHandshake
	}
	var cerr error
	switch {
	case ctx.Err() != nil:
		cerr = ctx.Err() // the caller's context ended
	case hctx.Err() != nil || !time.Now().Before(dl):
		// The handshake timeout; the TCP deadline may fire a moment before hctx
		// reports it.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil {
		err = fmt.Errorf("smc: handshake: %w: %w", cerr, err)
	}
	return err
}

// interruptHandshake interrupts the blocked TCP I/O of the handshake running under h,
// if it is still running.
func (c *Conn) interruptHandshake(h *handshakeContext) {
	c.mu.Lock()
	if c.hsCtx == h {
		c.tcp.SetDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
}

// errClosedHandshake is the handshake's error once the Conn was closed.
var errClosedHandshake = fmt.Errorf("smc: handshake: %w", net.ErrClosed)

// aLongTimeAgo is a deadline that has passed, used to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// applyDeadlinesLocked puts the effective deadlines on the TCP connection: the
// caller's, each bounded by the handshake's while one runs, in one call when they
// are the same (one runtime timer rather than two). c.mu must be held.
func (c *Conn) applyDeadlinesLocked() {
	rdl, wdl := c.readDeadline, c.writeDeadline
	if h := c.hsCtx; h != nil {
		if h.Err() != nil {
			rdl, wdl = aLongTimeAgo, aLongTimeAgo // the handshake was cancelled: stay interrupted
		} else {
			rdl, wdl = earliest(rdl, h.deadline), earliest(wdl, h.deadline)
		}
	}
	if rdl.Equal(wdl) {
		c.tcp.SetDeadline(rdl)
		return
	}
	c.tcp.SetReadDeadline(rdl)
	c.tcp.SetWriteDeadline(wdl)
}

// earliest returns the earlier of two deadlines, where zero means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// writeCLC sends one CLC message on the TCP connection.
func (c *Conn) writeCLC(m wire.Message) error {
	b := clcBufs.Get().(*[]byte)
	*b = m.Append((*b)[:0])
	err := c.writeRaw(*b)
	clcBufs.Put(b)
	return err
}

// clcBufs holds buffers for writeCLC's encodings, each of capacity
// wire.MaxMessageLen.
var clcBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, wire.MaxMessageLen)
	return &b
}}

// writeRaw sends the encoding of one CLC message on the TCP connection.
func (c *Conn) writeRaw(b []byte) error {
	if _, err := c.tcp.Write(b); err != nil {
		return fmt.Errorf("smc: sending CLC message: %w", err)
	}
	return nil
}

// readCLC reads and decodes one CLC message, in one read when it arrived whole, and
// returns it with the version its header announces (see versionOf), also on error.
// After an error wrapping wire.ErrNotCLC every byte it consumed is application data:
// it is in c.ahead. Bytes read past a message are kept in c.ahead too: the next
// readCLC reads them first, and finishTCP hands them to the application. The read
// buffer is pooled; c.ahead never points into it.
func (c *Conn) readCLC() (m wire.Message, version uint8, err error) {
	var r io.Reader = c.tcp
	if len(c.ahead) > 0 {
		r = io.MultiReader(bytes.NewReader(c.ahead), c.tcp)
	}
	b := clcBufs.Get().(*[]byte)
	defer clcBufs.Put(b)
	raw, ahead, err := wire.ReadMessageAhead(r, (*b)[:0])
	version = versionOf(raw)
	if errors.Is(err, wire.ErrNotCLC) {
		ahead = raw
	}
	c.ahead = bytes.Clone(ahead)
	if err != nil {
		return nil, version, err
	}
	m, err = wire.Parse(raw)
	return m, version, err
}

// versionOf returns the version of the raw message's header, so that a Decline
// answers in the version of the message it refuses (Linux does the same).
func versionOf(raw []byte) uint8 {
	if len(raw) >= wire.HeaderLen && raw[7]>>4 >= wire.Version2 {
		return wire.Version2
	}
	return wire.Version1
}

// checkNothingAhead returns an error if the peer sent bytes after the CLC message
// just read that no answer of ours could have prompted: after an Accept or a
// Confirm the TCP stream carries nothing until the handshake is over.
func (c *Conn) checkNothingAhead(after string) error {
	if len(c.ahead) > 0 {
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: %d bytes on TCP after the peer's CLC %s", len(c.ahead), after))
	}
	return nil
}

// decline builds and sends a Decline carrying code, in the given version, and
// settles on TCP with reason: the one place a Decline is sent. code is reason
// itself except where the peer hears of a local decision under a Linux code.
func (c *Conn) decline(reason Reason, code wire.Code, version uint8) error {
	d := &wire.Decline{Version: version, Diagnosis: code}
	if version >= wire.Version2 {
		d.OSType = wire.OSLinux
	}
	if err := c.writeCLC(d); err != nil {
		return c.handshakeError(ReasonIntErr, err)
	}
	c.countDecline(true, reason)
	c.logDecision("declined", reason, 0)
	return c.finishTCP(reason, 0)
}

// readErrorReason maps an error of readCLC to the reason the handshake ends with:
// the one place this is decided. It is ReasonNone for no error; ReasonPeerNotCLC
// when the bytes are no CLC message at all (they are the application's); the decline
// code of the *wire.ParseError when they are a malformed or unsupported CLC message;
// and ReasonIntErr when the stream itself failed (a deadline, a reset, Close).
func readErrorReason(err error) Reason {
	switch {
	case err == nil:
		return ReasonNone
	case errors.Is(err, wire.ErrNotCLC):
		return ReasonPeerNotCLC
	}
	if pe, ok := errors.AsType[*wire.ParseError](err); ok {
		return Reason(pe.Code)
	}
	return ReasonIntErr
}

// peerDeclined settles on TCP after the peer's Decline.
func (c *Conn) peerDeclined(d *wire.Decline) error {
	c.countDecline(false, Reason(d.Diagnosis))
	c.logDecision("peer declined", ReasonPeerDecl, Reason(d.Diagnosis))
	return c.finishTCP(ReasonPeerDecl, Reason(d.Diagnosis))
}

// finishTCP completes the handshake in TCP mode. The bytes the handshake read past
// its last CLC message (c.ahead) are the application's, read before the TCP
// connection's.
func (c *Conn) finishTCP(reason, peer Reason) error {
	var data dataPath = c.tcp
	if len(c.ahead) > 0 {
		data = &replayTCP{TCPConn: c.tcp, pending: c.ahead}
		c.ahead = nil
	}
	err := c.finish(data, ConnectionState{Mode: ModeTCP, Fallback: reason, PeerDiagnosis: peer,
		Offered: c.signal.Sent, PeerAdvertised: c.signal.Received})
	if err == nil {
		c.noteSettled()
	}
	return err
}

// finishSMC completes the handshake in SMC-D mode.
func (c *Conn) finishSMC(data dataPath) error {
	c.logDecision("using SMC-D", ReasonNone, 0)
	err := c.finish(data, ConnectionState{Mode: ModeSMCD, Offered: c.signal.Sent, PeerAdvertised: c.signal.Received})
	if err == nil {
		c.noteSettled()
	}
	return err
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

// firstContact returns the first-contact extension both sides send: each
// connection is its own link group.
var firstContact = sync.OnceValue(func() *wire.FirstContactExt {
	f := &wire.FirstContactExt{OSType: wire.OSLinux, Release: 1, V2x: true}
	host, _ := os.Hostname()
	copy(f.Hostname[:], strings.Repeat(" ", len(f.Hostname)))
	copy(f.Hostname[:], host)
	return f
})
