package signal

import "net/netip"

// A Socket is a TCP socket as sock_diag reports it (Linux inet_diag.h), for smc ss.
type Socket struct {
	Local, Remote netip.AddrPort
	State         uint8 // Linux's TCP state (tcp_states.h): 1 ESTABLISHED ... 10 LISTEN
	Inode         uint64
	UID           uint32
	Cookie        uint64
	RecvQ, SendQ  uint32 // bytes not yet read by the application; not yet acknowledged (or backlogs, for a listener)
	// BytesAcked and BytesReceived are tcp_info's counts, when the kernel reports them;
	// as there, BytesAcked counts the sequence number of the SYN (and of a FIN) too.
	BytesAcked, BytesReceived uint64
	// Mark is what the socket's word in one of the requested socket-storage maps says
	// (a marked client: [Signaller.Mark]), when HasMark.
	Mark    Result
	HasMark bool
}
