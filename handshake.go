package smc

import "context"

// runHandshake decides the data path. Until the CLC handshake is built, this side
// has no shared-memory device to offer, so it settles on TCP with NOSMCDEV.
func (c *Conn) runHandshake(ctx context.Context) error {
	return c.finish(c.tcp, ConnectionState{Mode: ModeTCP, Fallback: ReasonNoSMCDev, Offered: c.signal.Sent, PeerAdvertised: c.signal.Received})
}
