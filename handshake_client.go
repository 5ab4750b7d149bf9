package smc

import (
	"context"
	"errors"
	"fmt"

	"github.com/smc-go/smc/internal/wire"
)

// clientHandshake runs the client side: Proposal → Accept → Confirm, or a Decline
// from either side, after which the connection is plain TCP.
//
// The Proposal offers only SMC-D v2 with this host's GID. The server's Accept
// names its DMB (token, size) and its shared-memory endpoint (the link ID); the
// client attaches to it before sending the Confirm, so that once the server reads
// the Confirm both DMBs are mapped and data written by either side is never lost.
func (c *Conn) clientHandshake(ctx context.Context) error {
	gid, err := localGID()
	if err != nil {
		// No way to say which host we are: decline before proposing, as a Linux client
		// without an SMC device does.
		return c.decline(ReasonNoSMCDev, wire.Version1)
	}
	p := &wire.Proposal{
		TypeV1:      wire.SMCTypeN,
		TypeV2:      wire.SMCTypeD,
		Release:     1,
		UEIDs:       []wire.EID{localEID},
		FeatureMask: 1, // Emulated-ISM: 128-bit GIDs as two entries
		GIDs:        wire.GIDEntries(wire.ISMDevice{CHID: localCHID, GID: gid[0], GIDExt: gid[1]}),
	}
	if err := c.writeCLC(p); err != nil {
		return c.handshakeError(ReasonIntErr, err)
	}
	m, _, err := c.readCLC()
	if err != nil {
		if errors.Is(err, wire.ErrNotCLC) {
			// The peer advertised SMC but answers with something else: its option was
			// not meant (a replayed SYN, a foreign stack). Stop offering it SMC.
			c.config.policy().remember(c.remoteAddrPort())
			return c.handshakeError(ReasonPeerNotCLC, fmt.Errorf("smc: server answered the CLC proposal with non-CLC data: %w", err))
		}
		var pe *wire.ParseError
		if errors.As(err, &pe) {
			return c.decline(Reason(pe.Code), wire.Version2)
		}
		return c.handshakeError(ReasonIntErr, fmt.Errorf("smc: waiting for CLC accept: %w", err))
	}
	var a *wire.AcceptConfirm
	switch m := m.(type) {
	case *wire.Decline:
		return c.peerDeclined(m)
	case *wire.AcceptConfirm:
		if m.Type != wire.TypeAccept {
			return c.decline(ReasonModeUnsupp, wire.Version2)
		}
		a = m
	default:
		return c.decline(ReasonModeUnsupp, wire.Version2)
	}
	if a.CHID != localCHID || a.GID != gid[0] || a.GIDExt != gid[1] {
		return c.decline(ReasonNoSMCD2Dev, wire.Version2) // not this host's device
	}
	if a.EID != localEID {
		return c.decline(ReasonNoUEID, wire.Version2)
	}
	s, err := connectSMC(ctx, c.config, a)
	if err != nil {
		return c.decline(shmReason(err), wire.Version2)
	}
	confirm := &wire.AcceptConfirm{
		Type:     wire.TypeConfirm,
		GID:      gid[0],
		GIDExt:   gid[1],
		DMBToken: a.DMBToken,
		DMBESize: compressedSize(s.RingSize()),
		LinkID:   a.LinkID,
		CHID:     localCHID,
		EID:      localEID,
		FCE:      firstContact(),
	}
	if err := c.writeCLC(confirm); err != nil {
		s.Abort()
		return c.handshakeError(ReasonIntErr, err)
	}
	return c.finishSMC(s)
}
