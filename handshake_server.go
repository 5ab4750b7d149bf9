package smc

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// serverHandshakeState is the state of one server handshake, thrown away when the
// handshake ends. Its cleanup releases what the handshake took and did not hand to
// the Conn: its slot among the listener's handshakes, the DMB it offered, the stream
// a client attached to.
type serverHandshakeState struct {
	c      *Conn
	ctx    context.Context
	slot   *atomic.Int64       // the listener's handshake count this one added to, else nil
	gid    [2]uint64           // this host's GID, once the Proposal matched it
	accept *wire.AcceptConfirm // the Accept sent
	offer  *shm.Offer          // the DMB offered in the Accept, until Bind consumes it
	stream *shm.Stream         // the client's attachment to it, until the Conn takes it
}

// serverHandshake runs the server side: it waits for the client's first CLC
// message and answers a Proposal it can serve with an Accept naming a freshly
// offered slot (or, for a client process without a link to this one, a new link's
// secret), or declines. Linux rules apply where they say something: a Decline as
// the first message (what a Linux client with no SMC device sends) means plain TCP
// with PEERDECL and no answer; a Decline is never answered with a Decline.
//
// A client that advertised SMC in the TCP handshake but then sends bytes that cannot
// start a CLC message is not speaking CLC at all (a replayed option, a foreign
// stack): the connection is plain TCP and those bytes are the application's.
//
// Beyond [Config.MaxHandshakes] handshakes in progress on the listener, the server
// offers nothing: it declines whatever the client sent, with MEM on the wire and
// HANDSHAKE_LIMIT locally.
func (c *Conn) serverHandshake(ctx context.Context) error {
	hs := serverHandshakeState{c: c, ctx: ctx}
	defer hs.cleanup()
	return hs.handshake()
}

func (hs *serverHandshakeState) handshake() error {
	c := hs.c
	overLimit := !hs.takeSlot()
	m, version, err := c.readCLC()
	switch r := readErrorReason(err); r {
	case ReasonNone:
	case ReasonPeerNotCLC:
		c.logDecision("client does not speak CLC", r, 0)
		// Every byte consumed, in c.ahead, is the application's.
		return c.finishTCP(r, 0)
	case ReasonIntErr:
		return c.handshakeError(r, fmt.Errorf("smc: waiting for CLC proposal: %w", err))
	default:
		if overLimit {
			break
		}
		return c.decline(r, wire.Code(r), version)
	}
	if d, ok := m.(*wire.Decline); ok {
		return c.peerDeclined(d)
	}
	if overLimit {
		// The peer hears of a resource shortage; locally the reason is the limit.
		return c.decline(ReasonHandshakeLimit, wire.CodeMem, version)
	}
	p, ok := m.(*wire.Proposal)
	if !ok {
		// Linux answers an unexpected message type with -EPROTO, not a fallback.
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: expected a CLC proposal, got %T", m))
	}
	if r := hs.checkProposal(p); r != ReasonNone {
		return c.decline(r, wire.Code(r), p.Version)
	}
	ep, err := endpoint(c.config.endpointDir())
	if err != nil {
		return hs.decline(ReasonNoSMCDDev)
	}
	if hs.offer, err = ep.Offer(hs.ctx, shm.PeerID(p.PeerID), c.config.bufferSize(), c.config.maxPeerBuffer()); err != nil {
		return hs.decline(shmReason(err))
	}
	hs.accept = &wire.AcceptConfirm{
		Type:     wire.TypeAccept,
		GID:      hs.gid[0],
		GIDExt:   hs.gid[1],
		DMBToken: hs.offer.Token(),
		DMBESize: compressedSize(c.config.bufferSize()),
		LinkID:   hs.offer.LinkID(),
		CHID:     localCHID,
		EID:      localEID,
		FCE:      firstContact(),
	}
	if err := c.writeCLC(hs.accept); err != nil {
		return c.handshakeError(ReasonIntErr, err)
	}
	// From here on the offer is out: any failure is an internal error, not a decline.
	m, _, err = c.readCLC()
	if err != nil {
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: waiting for CLC confirm: %w", err))
	}
	var confirm *wire.AcceptConfirm
	switch m := m.(type) {
	case *wire.Decline:
		return c.peerDeclined(m)
	case *wire.AcceptConfirm:
		confirm = m
	default:
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: expected a CLC confirm, got %T", m))
	}
	if err := c.checkNothingAhead("confirm"); err != nil {
		return err
	}
	if !hs.answers(confirm) {
		return c.handshakeError(ReasonIntErr, errors.New("smc: CLC confirm does not answer our accept"))
	}
	// The client bound its slot to ours before it sent the Confirm, which names it:
	// bind ours to it, with no further message. A Confirm naming a slot the client
	// did not bind to this offer fails this handshake only (it may come from another
	// process that copied the client's PeerID), and withdraws the offer. Bind consumes
	// the offer either way.
	offer := hs.offer
	hs.offer = nil
	if hs.stream, err = offer.Bind(confirm.DMBToken, wire.BufferSize(confirm.DMBESize)); err != nil {
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: binding the slot the CLC confirm names: %w", err))
	}
	s := hs.stream
	hs.stream = nil // the Conn's now
	return c.finishSMC(s)
}

// takeSlot counts this handshake among the listener's, and reports whether it is
// within [Config.MaxHandshakes]. cleanup gives the slot back.
func (hs *serverHandshakeState) takeSlot() bool {
	c := hs.c
	if c.limit == nil {
		return true
	}
	hs.slot = c.limit
	max := c.config.maxHandshakes()
	return hs.slot.Add(1) <= int64(max) || max <= 0
}

// cleanup gives back what the handshake took and did not hand to the Conn.
func (hs *serverHandshakeState) cleanup() {
	if hs.offer != nil {
		hs.offer.Cancel()
	}
	if hs.stream != nil {
		hs.stream.Abort()
	}
	if hs.slot != nil {
		hs.slot.Add(-1)
	}
}

// decline declines the client's v2 Proposal with reason.
func (hs *serverHandshakeState) decline(reason Reason) error {
	return hs.c.decline(reason, declineCode(reason), wire.Version2)
}

// checkProposal returns the reason to decline p, or ReasonNone if this server can
// serve it: SMC-D v2 from this host's device, with our EID.
func (hs *serverHandshakeState) checkProposal(p *wire.Proposal) Reason {
	if p.Version < wire.Version2 {
		return ReasonVersMismatch
	}
	if p.TypeV2 == wire.SMCTypeN {
		return ReasonNoV2Ext
	}
	if !p.TypeV2.HasD() {
		return ReasonNoSMCDDev // SMC-R only: we have no RoCE device
	}
	var err error
	if hs.gid, err = localGID(); err != nil {
		return ReasonNoSMCDev
	}
	if !offersDevice(p, hs.gid) {
		return ReasonNoSMCD2Dev // real ISM, loopback-ism, or another host
	}
	for _, e := range p.UEIDs {
		if e == localEID {
			return ReasonNone
		}
	}
	return ReasonNoUEID
}

// answers reports whether m is the Confirm of our Accept: same link, from this
// host's device, with our EID. Its DMB token names the client's own slot, which
// Bind checks.
func (hs *serverHandshakeState) answers(m *wire.AcceptConfirm) bool {
	a := hs.accept
	return m.Type == wire.TypeConfirm && m.LinkID == a.LinkID &&
		m.GID == hs.gid[0] && m.GIDExt == hs.gid[1] && m.CHID == localCHID && m.EID == localEID
}

// offersDevice reports whether p offers our device, its devices read as a Linux
// server reads them.
func offersDevice(p *wire.Proposal, gid [2]uint64) bool {
	for d := range p.Devices() {
		if d == (wire.ISMDevice{CHID: localCHID, GID: gid[0], GIDExt: gid[1]}) {
			return true
		}
	}
	return false
}
