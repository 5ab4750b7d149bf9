package smc

import (
	"context"
	"fmt"
	"sync"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// clientHandshakeState is the state of one client handshake, thrown away when the
// handshake ends. Its cleanup releases what the handshake set up and did not hand
// to the Conn.
type clientHandshakeState struct {
	c      *Conn
	ctx    context.Context
	gid    [2]uint64           // this host's GID
	accept *wire.AcceptConfirm // the server's Accept, once read
	stream *shm.Stream         // attached to the server's DMB, until the Conn takes it
}

// clientHandshake runs the client side: Proposal → Accept → Confirm, or a Decline
// from either side, after which the connection is plain TCP.
//
// The Proposal offers only SMC-D v2 with this host's GID, and carries this
// process's random identity in its PeerID (Linux uses that field, the system ID,
// only for SMC-R link groups). The server's Accept names a link (its ID: the
// server's endpoint and the link's index) and, in the DMB token, the server's slot
// on that link, or the secret of a new link; the client sets the link up if needed,
// binds a slot of its own to the server's, sends the Confirm, which names that slot,
// and is in SMC mode, as a Linux client is once its Confirm is sent: no message on
// the link waits for the server. The server binds its side when it reads the
// Confirm. Whatever the server refuses that a live, well-behaved server could
// refuse (our ring larger than it maps, a withdrawn offer) fails the bind before the
// Confirm, and the client declines; a server that gives up later withdraws its slot,
// and our stream fails with a reset, as a TCP client's does when the server accepts
// and then resets.
func (c *Conn) clientHandshake(ctx context.Context) error {
	hs := clientHandshakeState{c: c, ctx: ctx}
	defer hs.cleanup()
	return hs.handshake()
}

func (hs *clientHandshakeState) handshake() error {
	c := hs.c
	var err error
	if hs.gid, err = localGID(); err != nil {
		// No way to say which host we are: decline before proposing, as a Linux client
		// without an SMC device does.
		return c.decline(ReasonNoSMCDev, wire.CodeNoSMCDev, wire.Version1)
	}
	if err := c.writeRaw(proposalBytes()); err != nil {
		return c.handshakeError(ReasonIntErr, err)
	}
	m, _, err := c.readCLC()
	switch r := readErrorReason(err); r {
	case ReasonNone:
	case ReasonPeerNotCLC:
		// The peer advertised SMC but answers with something else: its option was
		// not meant (a replayed SYN, a foreign stack). Stop offering it SMC.
		c.config.policy().remember(c.remoteAddrPort())
		return c.handshakeError(r, fmt.Errorf("smc: server answered the CLC proposal with non-CLC data: %w", err))
	case ReasonIntErr:
		return c.handshakeError(r, fmt.Errorf("smc: waiting for CLC accept: %w", err))
	default:
		return hs.decline(r)
	}
	switch m := m.(type) {
	case *wire.Decline:
		return c.peerDeclined(m)
	case *wire.AcceptConfirm:
		if m.Type == wire.TypeAccept {
			hs.accept = m
		}
	}
	if err := c.checkNothingAhead("accept"); err != nil {
		return err
	}
	if hs.accept == nil {
		return hs.decline(ReasonModeUnsupp)
	}
	if r := hs.checkAccept(); r != ReasonNone {
		return hs.decline(r)
	}
	if hs.stream, err = connectSMC(hs.ctx, c.config, hs.accept); err != nil {
		return hs.decline(shmReason(err))
	}
	if err := c.writeCLC(hs.confirm()); err != nil {
		return c.handshakeError(ReasonIntErr, err)
	}
	s := hs.stream
	hs.stream = nil // the Conn's now
	return c.finishSMC(s)
}

// cleanup releases the shared memory the handshake attached and did not hand to
// the Conn.
func (hs *clientHandshakeState) cleanup() {
	if hs.stream != nil {
		hs.stream.Abort()
	}
}

// decline declines the server's Accept with reason. A server endpoint this side
// cannot reach is, to the server, what Linux calls NOSMCDDEV (see declineCode).
func (hs *clientHandshakeState) decline(reason Reason) error {
	return hs.c.decline(reason, declineCode(reason), wire.Version2)
}

// proposalBytes returns the encoding of the client's Proposal, the same for every
// connection of the process, so it is encoded once. Call it only once localGID
// succeeded.
var proposalBytes = sync.OnceValue(func() []byte {
	gid, _ := localGID()
	return proposal(gid).Append(nil)
})

// proposal returns the client's Proposal for this host's GID: SMC-D v2 only, with
// this host's device.
func proposal(gid [2]uint64) *wire.Proposal {
	return &wire.Proposal{
		TypeV1:      wire.SMCTypeN,
		TypeV2:      wire.SMCTypeD,
		Release:     1,
		PeerID:      [8]byte(shm.ProcessID()),
		UEIDs:       []wire.EID{localEID},
		FeatureMask: 1, // Emulated-ISM: 128-bit GIDs as two entries
		GIDs:        wire.GIDEntries(wire.ISMDevice{CHID: localCHID, GID: gid[0], GIDExt: gid[1]}),
	}
}

// checkAccept returns the reason to decline the server's Accept, or ReasonNone if
// it chose this host's device and our EID.
func (hs *clientHandshakeState) checkAccept() Reason {
	a := hs.accept
	if a.CHID != localCHID || a.GID != hs.gid[0] || a.GIDExt != hs.gid[1] {
		return ReasonNoSMCD2Dev // not this host's device
	}
	if a.EID != localEID {
		return ReasonNoUEID
	}
	return ReasonNone
}

// confirm returns the Confirm that answers the server's Accept once the client
// has bound its slot to the server's: it names the client's slot.
func (hs *clientHandshakeState) confirm() *wire.AcceptConfirm {
	return &wire.AcceptConfirm{
		Type:     wire.TypeConfirm,
		GID:      hs.gid[0],
		GIDExt:   hs.gid[1],
		DMBToken: hs.stream.Token(),
		DMBESize: compressedSize(hs.stream.RingSize()),
		LinkID:   hs.accept.LinkID,
		CHID:     localCHID,
		EID:      localEID,
		FCE:      firstContact(),
	}
}
