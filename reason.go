package smc

import (
	"errors"

	"github.com/smc-go/smc/internal/wire"
)

// Reason says why a connection is not using SMC. Its value is the Linux
// SMC_CLC_DECL_* code (Linux smc_clc.h) whenever Linux has one, so that figures from
// this package and from smcss / smcd stats read alike; reasons Linux has no code for
// (the decision was local and nothing went on the wire) use values in the 0x7f
// category, which Linux does not use and which are never sent to a peer.
//
// The zero Reason means the connection did not fall back.
type Reason uint32

// Reasons this package reports. The full set of Linux codes a peer may send is
// accepted too; [Reason.String] names all of them.
const (
	ReasonNone Reason = 0

	// Linux SMC_CLC_DECL_* codes.
	ReasonMem          Reason = 0x01010000 // out of memory
	ReasonPeerNoSMC    Reason = 0x03010000 // the peer did not advertise SMC in the TCP handshake
	ReasonNoSMCDev     Reason = 0x03030000 // no usable SMC device
	ReasonNoSMCDDev    Reason = 0x03030001 // no SMC-D device
	ReasonNoV2Ext      Reason = 0x03030004 // the Proposal carried no v2 extension
	ReasonNoV2DExt     Reason = 0x03030005 // the Proposal carried no SMC-Dv2 extension
	ReasonNoSMCD2Dev   Reason = 0x03030007 // no SMC-Dv2 device matches the proposed GID/CHIDs
	ReasonNoUEID       Reason = 0x03030008 // no common EID
	ReasonModeUnsupp   Reason = 0x03040000 // the Accept chose a mode that was not proposed
	ReasonVersMismatch Reason = 0x030c0000 // SMC version mismatch
	ReasonMaxDMB       Reason = 0x030d0000 // the shared-memory limit is reached
	ReasonPeerDecl     Reason = 0x05000000 // the peer sent a Decline
	ReasonIntErr       Reason = 0x09990000 // internal error

	// Local reasons, never on the wire.
	ReasonSignallingUnavailable Reason = 0x7f000001 // no eBPF signalling for this process
	ReasonNotOffered            Reason = 0x7f000002 // policy or the negative cache chose not to offer SMC
	ReasonHandshakeLimit        Reason = 0x7f000003 // too many server handshakes in progress (Linux limit_smc_hs)
	ReasonPeerNotCLC            Reason = 0x7f000004 // the peer advertised SMC but sent no CLC message
	ReasonSignallingConflict    Reason = 0x7f000005 // another program on the cgroup's sockets makes announcing SMC unsafe
)

var localReasonNames = map[Reason]string{
	ReasonSignallingUnavailable: "SIGNALLING_UNAVAILABLE",
	ReasonNotOffered:            "NOT_OFFERED",
	ReasonHandshakeLimit:        "HANDSHAKE_LIMIT",
	ReasonPeerNotCLC:            "PEER_NOT_CLC",
	ReasonSignallingConflict:    "SIGNALLING_CONFLICT",
}

// String returns the Linux name of the code without its SMC_CLC_DECL_ prefix (for
// example "PEERNOSMC"), the name of a local reason, or the value in hex.
func (r Reason) String() string {
	if r == ReasonNone {
		return "NONE"
	}
	if n, ok := localReasonNames[r]; ok {
		return n
	}
	return wire.Code(r).String()
}

// Local reports whether r is a decision this side made without a peer's word.
func (r Reason) Local() bool { return r>>24 == 0x7f }

// DeclineError reports an SMC handshake that ended with a reason instead of a
// connection: the peer's Decline, or a failure this side detected. Use [errors.As] to
// reach it.
type DeclineError struct {
	Reason Reason // this side's reason (ReasonPeerDecl when the peer declined)
	Peer   Reason // the peer's diagnosis when it sent a Decline, else zero
	Err    error  // the underlying error, if any
}

func (e *DeclineError) Error() string {
	s := "smc: handshake declined: " + e.Reason.String()
	if e.Peer != 0 {
		s += " (peer: " + e.Peer.String() + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DeclineError) Unwrap() error { return e.Err }

// Timeout reports whether the handshake failed because a deadline passed, so that
// a Dial error's net.Error.Timeout reports it as the net package's errors do.
func (e *DeclineError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}
