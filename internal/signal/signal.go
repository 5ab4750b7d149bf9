package signal

import "errors"

// ErrUnavailable is wrapped by every error that means this process cannot announce
// SMC in TCP handshakes: no privilege and no prepared cgroup, no kernel support, the
// root cgroup, another operating system. Callers then treat every connection as plain
// TCP with reason "signalling unavailable".
var ErrUnavailable = errors.New("smc: signalling unavailable")

// ErrConflict is wrapped (together with [ErrUnavailable]) by the error of a process
// that found a situation its signalling cannot make exact: an older or newer version
// of this package's program on its cgroup's sockets, or another program that writes
// the SMC option into handshakes this process did not mark. Connections are then
// plain TCP with reason "signalling conflict": announcing SMC could make a peer
// start a CLC handshake in the stream of an application that does not expect one.
var ErrConflict = errors.New("smc: signalling conflict")

// ErrNotSupported is wrapped (together with [ErrUnavailable]) on operating systems
// other than Linux.
var ErrNotSupported = errors.New("smc: signal: not supported on this operating system")

// Result is what one connection's TCP handshake carried, as the sock_ops program
// recorded it. The zero value means "not offered": the socket (or its listener) was
// not marked.
type Result struct {
	// Marked reports whether the socket, or the listener it was accepted from, was
	// marked.
	Marked bool
	// Sent reports whether our SYN (client) or our SYN-ACK (server) carried the SMC
	// option.
	Sent bool
	// Received reports whether the peer's SYN-ACK (client) or SYN (server) carried
	// it. A server learns it from the record its first SYN-ACK made; a connection
	// completed by a SYN cookie comes from no request, has no record, and reports
	// as a plain client (Marked only) whatever its SYN carried: a SYN-cookie SYN-ACK
	// never carries the option, so its client sees "not received" and both ends
	// agree on "not negotiated".
	Received bool
	// PeerUnknown reports that a server child was created before its SYN-ACK was
	// sent (TCP Fast Open), so the handshake's outcome was not known to it. Received
	// and Sent are then false.
	PeerUnknown bool
	// Conflict reports that our SYN carried the option before this package's
	// program wrote it: another program on the socket writes the same option.
	// The connection must be treated as plain TCP (the process's Signaller
	// reports the conflict from then on).
	Conflict bool
}

// Negotiated reports whether both ends announced SMC: our handshake packet carried
// the option and the peer's did. Both ends of a connection agree on it.
func (r Result) Negotiated() bool { return r.Sent && r.Received }

// AttachOptions configures [AttachCgroup].
type AttachOptions struct {
	// ForceRoot allows preparing the root cgroup, which puts the program on every
	// TCP socket of the host.
	ForceRoot bool
	// Group, when not empty, is a group name or numeric ID whose members may mark
	// sockets and read results (and counters) through the pinned maps. Without it
	// only root can.
	Group string
}
