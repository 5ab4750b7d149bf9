package smc

import (
	"errors"
	"fmt"

	"github.com/smc-go/smc/internal/wire"
)

//go:generate go run reason_gen.go

// Reason says why a connection is not using SMC. Its value is the Linux
// SMC_CLC_DECL_* code (Linux smc_clc.h) whenever Linux has one, so that figures from
// this package and from smcss / smcd stats read alike; reasons Linux has no code for
// (the decision was local and nothing went on the wire) use values in the 0x7f
// category, which Linux does not use and which are never sent to a peer.
//
// The zero Reason, [ReasonNone], means the connection did not fall back.
type Reason uint32

// ReasonNone is the zero Reason: the connection did not fall back.
const ReasonNone Reason = 0

// Reasons this package reports that Linux has a code for: each is the Linux code of
// its name (SMC_CLC_DECL_ and the name [Reason.String] prints). A peer may send any
// Linux code in its Decline; [Reason.String] names all of them.
const (
	ReasonMem          = Reason(wire.CodeMem)        // MEM: out of memory
	ReasonPeerNoSMC    = Reason(wire.CodePeerNoSMC)  // PEERNOSMC: the peer did not advertise SMC in the TCP handshake
	ReasonNoSMCDev     = Reason(wire.CodeNoSMCDev)   // NOSMCDEV: no usable SMC device
	ReasonNoSMCDDev    = Reason(wire.CodeNoSMCDDev)  // NOSMCDDEV: no SMC-D device
	ReasonNoV2Ext      = Reason(wire.CodeNoV2Ext)    // NOV2EXT: the Proposal carried no v2 extension
	ReasonNoV2DExt     = Reason(wire.CodeNoV2DExt)   // NOV2DEXT: the Proposal carried no SMC-Dv2 extension
	ReasonNoSMCD2Dev   = Reason(wire.CodeNoSMCD2Dev) // NOSMCD2DEV: no SMC-Dv2 device matches the proposed GID/CHIDs
	ReasonNoUEID       = Reason(wire.CodeNoUEID)     // NOUEID: no common EID
	ReasonModeUnsupp   = Reason(wire.CodeModeUnsupp) // MODEUNSUPP: the Accept chose a mode that was not proposed
	ReasonVersMismatch = Reason(wire.CodeVersMismat) // VERSMISMAT: SMC version mismatch
	ReasonMaxDMB       = Reason(wire.CodeMaxDMB)     // MAX_DMB: the shared-memory limit is reached
	ReasonPeerDecl     = Reason(wire.CodePeerDecl)   // PEERDECL: the peer sent a Decline
	ReasonIntErr       = Reason(wire.CodeIntErr)     // INTERR: internal error
)

// Local reasons: decisions this side made without a code on the wire. Adding one is
// one line here, with the next value, followed by `go generate`: [Reason.String]
// prints a local reason's constant name without "Reason", in upper snake case
// (ReasonPeerNotCLC prints PEER_NOT_CLC), from reason_string.go, which reason_gen.go
// writes from this block.
const (
	ReasonSignallingUnavailable Reason = 0x7f000001 // no eBPF signalling for this process
	ReasonNotOffered            Reason = 0x7f000002 // policy or the negative cache chose not to offer SMC
	ReasonHandshakeLimit        Reason = 0x7f000003 // too many server handshakes in progress (Linux limit_smc_hs)
	ReasonPeerNotCLC            Reason = 0x7f000004 // the peer advertised SMC but sent no CLC message
	ReasonSignallingConflict    Reason = 0x7f000005 // another program on the cgroup's sockets makes announcing SMC unsafe
	ReasonPeerUnreachable       Reason = 0x7f000006 // the server's shared-memory endpoint is not reachable from here (another network namespace without a shared EndpointDir)
	ReasonLinkSetup             Reason = 0x7f000007 // the shared-memory link could not be set up, or a slot not bound over it (the endpoint did not prove itself, the link ended, the set-up outlasted the handshake)
)

// String returns the Linux name of the code without its SMC_CLC_DECL_ prefix (for
// example "PEERNOSMC"), the name of a local reason, "NONE" for the zero Reason, or
// the value in hex.
func (r Reason) String() string {
	if r == ReasonNone {
		return "NONE"
	}
	if n := r.localName(); n != "" {
		return n
	}
	return wire.Code(r).String()
}

// MarshalText returns what [Reason.String] returns, so that JSON and expvar show
// reasons by name, as map keys too.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText sets r to the reason [Reason.String] names text, or fails with an
// error.
func (r *Reason) UnmarshalText(text []byte) error {
	s := string(text)
	if s == "NONE" {
		*r = ReasonNone
		return nil
	}
	for v := ReasonSignallingUnavailable; v.localName() != ""; v++ {
		if v.localName() == s {
			*r = v
			return nil
		}
	}
	if c, ok := wire.ParseCode(s); ok && c != 0 && Reason(c).localName() == "" {
		*r = Reason(c)
		return nil
	}
	return fmt.Errorf("smc: unknown reason %q", s)
}

// Local reports whether r is a decision this side made without a peer's word.
func (r Reason) Local() bool { return r>>24 == 0x7f }

// DeclineError reports an SMC handshake that ended with a reason instead of a
// connection: the peer's Decline, or a failure this side detected. Use [errors.As] to
// reach it. Its zero value reports [ReasonNone] and wraps no error.
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
