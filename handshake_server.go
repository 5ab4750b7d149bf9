package smc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/smc-go/smc/internal/wire"
)

// serverHandshake runs the server side: it waits for the client's first CLC
// message and answers a Proposal it can serve with an Accept naming a freshly
// offered DMB, or declines. Linux rules apply where they say something: a Decline as
// the first message (what a Linux client with no SMC device sends) means plain TCP
// with PEERDECL and no answer; a Decline is never answered with a Decline.
//
// A client that advertised SMC in the TCP handshake but then sends bytes that cannot
// start a CLC message is not speaking CLC at all (a replayed option, a foreign
// stack): the connection is plain TCP and those bytes are the application's.
func (c *Conn) serverHandshake(ctx context.Context) error {
	if c.limit != nil {
		if c.limit.Add(1) > int64(c.config.maxHandshakes()) && c.config.maxHandshakes() > 0 {
			defer c.limit.Add(-1)
			return c.serverDeclineAll(ReasonHandshakeLimit)
		}
		defer c.limit.Add(-1)
	}
	m, raw, err := c.readCLC()
	if err != nil {
		if errors.Is(err, wire.ErrNotCLC) {
			c.logDecision("client does not speak CLC", ReasonPeerNotCLC, 0)
			return c.finishTCP(&replayTCP{TCPConn: c.tcp, pending: raw}, ReasonPeerNotCLC, 0)
		}
		var pe *wire.ParseError
		if errors.As(err, &pe) {
			return c.decline(Reason(pe.Code), versionOf(raw))
		}
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: waiting for CLC proposal: %w", err))
	}
	var p *wire.Proposal
	switch m := m.(type) {
	case *wire.Decline:
		return c.peerDeclined(m)
	case *wire.Proposal:
		p = m
	default:
		// Linux answers an unexpected message type with -EPROTO, not a fallback.
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: expected a CLC proposal, got %T", m))
	}
	if reason := c.checkProposal(p); reason != ReasonNone {
		return c.decline(reason, p.Version)
	}
	gid, _ := localGID() // checkProposal matched it
	ep, err := endpoint(c.config.endpointDir())
	if err != nil {
		return c.decline(ReasonNoSMCDDev, wire.Version2)
	}
	offer, err := ep.Offer(c.config.bufferSize())
	if err != nil {
		return c.decline(shmReason(err), wire.Version2)
	}
	a := &wire.AcceptConfirm{
		Type:     wire.TypeAccept,
		GID:      gid[0],
		GIDExt:   gid[1],
		DMBToken: offer.Token(),
		DMBESize: compressedSize(c.config.bufferSize()),
		LinkID:   ep.ID(),
		CHID:     localCHID,
		EID:      localEID,
		FCE:      firstContact(),
	}
	if err := c.writeCLC(a); err != nil {
		offer.Cancel()
		return c.handshakeError(ReasonIntErr, err)
	}
	m, _, err = c.readCLC()
	if err != nil {
		offer.Cancel()
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: waiting for CLC confirm: %w", err))
	}
	switch m := m.(type) {
	case *wire.Decline:
		offer.Cancel()
		return c.peerDeclined(m)
	case *wire.AcceptConfirm:
		if m.Type != wire.TypeConfirm || m.DMBToken != a.DMBToken || m.LinkID != a.LinkID ||
			m.GID != gid[0] || m.GIDExt != gid[1] || m.CHID != localCHID || m.EID != localEID {
			offer.Cancel()
			return c.handshakeError(ReasonIntErr, errors.New("smc: CLC confirm does not answer our accept"))
		}
		// The client attached to the offer before it sent the Confirm, so Wait returns
		// at once unless the client is broken.
		s, err := offer.Wait(ctx)
		if err != nil {
			return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: client confirmed without attaching: %w", err))
		}
		if s.PeerRingSize() != wire.BufferSize(m.DMBESize) {
			s.Abort()
			return c.handshakeError(ReasonIntErr, errors.New("smc: CLC confirm announces another buffer size than the client attached"))
		}
		return c.finishSMC(s)
	}
	offer.Cancel()
	return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: expected a CLC confirm, got %T", m))
}

// serverDeclineAll reads the client's first CLC message and declines whatever it
// is, without offering anything: used when the server cannot take the handshake on.
func (c *Conn) serverDeclineAll(local Reason) error {
	m, raw, err := c.readCLC()
	switch {
	case errors.Is(err, wire.ErrNotCLC):
		return c.finishTCP(&replayTCP{TCPConn: c.tcp, pending: raw}, ReasonPeerNotCLC, 0)
	case err != nil && !isParseError(err):
		return c.handshakeError(ReasonIntErr, err)
	}
	if d, ok := m.(*wire.Decline); ok {
		return c.peerDeclined(d)
	}
	// The peer hears of a resource shortage; locally the reason is the limit.
	d := &wire.Decline{Version: versionOf(raw), Diagnosis: wire.CodeMem}
	if d.Version >= wire.Version2 {
		d.OSType = wire.OSLinux
	}
	if err := c.writeCLC(d); err != nil {
		return c.handshakeError(ReasonIntErr, err)
	}
	return c.finishTCP(c.tcp, local, 0)
}

func isParseError(err error) bool {
	var pe *wire.ParseError
	return errors.As(err, &pe)
}

// checkProposal returns the reason to decline p, or ReasonNone if this server can
// serve it: SMC-D v2 from this host's device, with our EID.
func (c *Conn) checkProposal(p *wire.Proposal) Reason {
	if p.Version < wire.Version2 {
		return ReasonVersMismatch
	}
	if p.TypeV2 == wire.SMCTypeN {
		return ReasonNoV2Ext
	}
	if !p.TypeV2.HasD() {
		return ReasonNoSMCDDev // SMC-R only: we have no RoCE device
	}
	gid, err := localGID()
	if err != nil {
		return ReasonNoSMCDev
	}
	if !offersDevice(p, gid) {
		return ReasonNoSMCD2Dev // real ISM, loopback-ism, or another host
	}
	for _, e := range p.UEIDs {
		if e == localEID {
			return ReasonNone
		}
	}
	return ReasonNoUEID
}

// offersDevice reports whether p offers our device, its devices read as a Linux
// server reads them.
func offersDevice(p *wire.Proposal, gid [2]uint64) bool {
	for _, d := range p.Devices() {
		if d == (wire.ISMDevice{CHID: localCHID, GID: gid[0], GIDExt: gid[1]}) {
			return true
		}
	}
	return false
}

// versionOf returns the version of the raw message's header, so that a Decline
// answers in the version of the message it refuses (Linux does the same).
func versionOf(raw []byte) uint8 {
	if len(raw) >= wire.HeaderLen && raw[7]>>4 >= wire.Version2 {
		return wire.Version2
	}
	return wire.Version1
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
