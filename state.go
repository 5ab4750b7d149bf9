package smc

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Mode is the data path a connection uses. The zero Mode is [ModeTCP].
type Mode uint8

const (
	// ModeTCP: the connection uses its TCP connection for data, because SMC was not
	// offered, the peer did not take it up, or the handshake declined it.
	ModeTCP Mode = iota
	// ModeSMCD: the connection moves data through shared memory on this host
	// (SMC-D), its TCP connection kept open for liveness.
	ModeSMCD
)

// String returns "TCP", "SMCD", or "Mode(n)" for a value this package does not
// define.
func (m Mode) String() string {
	switch m {
	case ModeTCP:
		return "TCP"
	case ModeSMCD:
		return "SMCD"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText returns what [Mode.String] returns, so that JSON shows modes by name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText sets m to the mode [Mode.String] names text, or fails with an error.
func (m *Mode) UnmarshalText(text []byte) error {
	switch s := string(text); s {
	case "TCP":
		*m = ModeTCP
	case "SMCD":
		*m = ModeSMCD
	default:
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(s, "Mode("), ")"), 10, 8)
		if err != nil || s != "Mode("+strconv.Itoa(int(n))+")" {
			return fmt.Errorf("smc: unknown mode %q", s)
		}
		*m = Mode(n)
	}
	return nil
}

// ConnectionState is a snapshot of what a connection negotiated. The zero
// ConnectionState reports ModeTCP with no reason and HandshakeComplete false: no
// decision made yet.
type ConnectionState struct {
	// Mode is the data path in use. Before the handshake of a [Conn] completes it
	// is ModeTCP and HandshakeComplete is false.
	Mode Mode
	// Fallback says why Mode is ModeTCP; zero when Mode is ModeSMCD.
	Fallback Reason
	// PeerDiagnosis is the code the peer sent in its Decline, if it sent one.
	PeerDiagnosis Reason
	// HandshakeComplete reports whether the SMC decision is final.
	HandshakeComplete bool
	// Offered reports whether this side advertised SMC in the TCP handshake.
	Offered bool
	// PeerAdvertised reports whether the peer's SYN or SYN-ACK carried the SMC option.
	PeerAdvertised bool
}

// State reports the state of any connection this package returned, including a
// fallback *net.TCPConn. For a connection this package did not create, it reports
// ModeTCP with the best reason it can derive.
func State(c net.Conn) ConnectionState {
	switch c := c.(type) {
	case *Conn:
		return c.ConnectionState()
	case *net.TCPConn:
		return tcpState(c)
	}
	return ConnectionState{Mode: ModeTCP, Fallback: ReasonNotOffered, HandshakeComplete: true}
}

// tcpState derives the state of a plain TCP connection from what its handshake
// carried, so that nothing has to be recorded for connections that fell back.
func tcpState(c *net.TCPConn) ConnectionState {
	st := ConnectionState{Mode: ModeTCP, HandshakeComplete: true}
	s, err := signalling()
	if err != nil {
		st.Fallback = signallingReason(err)
		return st
	}
	res, err := resultOf(s, c)
	switch {
	case err == nil && res.Conflict:
		st.Fallback = ReasonSignallingConflict
	case err != nil || !res.Marked:
		st.Fallback = ReasonNotOffered
	case !res.Received:
		st.Fallback = ReasonPeerNoSMC
	default:
		st.Fallback = ReasonNotOffered
	}
	st.Offered, st.PeerAdvertised = res.Sent, res.Received
	return st
}
