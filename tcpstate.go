package smc

import "net"

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
