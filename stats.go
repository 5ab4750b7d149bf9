package smc

import (
	"sync"

	"github.com/smc-go/smc/internal/registry"
	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/signal"
)

// Statistics are this process's counts of what SMC decided, since the process
// started, in the shape of Linux's MPTCP and SMC counters (nstat's MPTcpExt*,
// smcd stats): what was offered, what peers answered, how handshakes ended and why
// connections fell back. The counters only grow; subtract two snapshots for
// rates. [Stats] returns them; `smc stats` shows them for every process of the host.
//
// As with MPTCP, a peer that never announced SMC (PeerNoSMC) is counted apart from
// a connection that negotiated SMC and then fell back (Fallbacks). Connections that
// were never offered SMC (by policy, the negative cache, or because the process
// cannot announce SMC) are plain net connections and are not counted at all.
//
// The zero Statistics count nothing, as for a process that made no connection.
type Statistics struct {
	// Client counts the connections this process dialed, Server those it accepted.
	Client, Server SideStatistics

	// HandshakesInFlight is the number of CLC handshakes running now.
	HandshakesInFlight int64
	// HandshakesRefused counts server handshakes refused because
	// [Config.MaxHandshakes] handshakes were in progress on their listener (reason
	// HANDSHAKE_LIMIT, which Server.Fallbacks counts too).
	HandshakesRefused uint64

	// OpenSMCD and OpenTCP are the *Conn connections open now whose handshake
	// ended in each mode.
	OpenSMCD, OpenTCP int64
	// Links is the number of shared-memory links open now: one per pair of
	// processes with SMC-D connections between them (in either role), kept for a
	// while after their last connection closed so that the next one reuses it.
	Links int64
	// MemoryInUse is the shared memory this process holds resident now, in bytes
	// (see [MemoryInUse]), and MemoryLimit the bound beyond which new connections
	// fall back with MAX_DMB.
	MemoryInUse, MemoryLimit int64
	// WakeupsSent and WakeupsReceived count the wake-ups this process sent to and
	// received from its peers over shared-memory links: one per waiting Read or
	// Write of a peer that had to be woken through the kernel (a wait that a spin
	// ended costs none).
	WakeupsSent, WakeupsReceived uint64
}

// SideStatistics count the connections of one side, client or server. The zero
// SideStatistics count nothing; its nil maps read as empty.
type SideStatistics struct {
	// Offered counts the connections on which this side offered SMC: dials whose
	// socket was marked, connections accepted from a listener that offers SMC. It is
	// PeerNoSMC + NotSent + Conflicts + Negotiated.
	Offered uint64
	// PeerNoSMC counts offered connections whose peer never announced SMC (reason
	// PEERNOSMC): plain TCP peers.
	PeerNoSMC uint64
	// NotSent counts the client's offered connections whose SYN did not carry the
	// option after all (no room left in it, or its record could not be read), and
	// Conflicts those whose SYN another program had written it into (reason
	// SIGNALLING_CONFLICT): both plain TCP, with nothing negotiated. Zero for a server.
	NotSent, Conflicts uint64
	// Negotiated counts the connections on which both sides announced SMC: each
	// runs a CLC handshake. SMCD, Fallbacks and Failed count how those handshakes
	// ended; the rest have not ended yet, or never ran (a server's Conn closed
	// before its first Read or Write).
	Negotiated uint64
	// SMCD counts the CLC handshakes that ended in SMC-D.
	SMCD uint64
	// Fallbacks counts the negotiated connections that then ended in TCP, by
	// [ConnectionState.Fallback]: PEERDECL when the peer declined, the local reason
	// when this side did, PEER_NOT_CLC, HANDSHAKE_LIMIT. Peers that never
	// announced SMC are not fallbacks: they are PeerNoSMC.
	Fallbacks map[Reason]uint64
	// LocalDeclines counts the Declines this side sent, by its reason, and
	// PeerDeclines those the peer sent, by the peer's diagnosis.
	LocalDeclines, PeerDeclines map[Reason]uint64
	// Failed counts the CLC handshakes that failed, leaving the connection
	// unusable (a Dial error, or an error from the server's first Read or Write).
	Failed uint64
}

// Stats returns a snapshot of this process's statistics.
func Stats() Statistics {
	st := statisticsOf(processRegistry().Snapshot())
	st.MemoryInUse, st.MemoryLimit = shm.MemoryInUse(), shm.SetMemoryLimit(-1)
	st.Links = shm.ReadCounters().Links
	return st
}

// SetMemoryLimit sets this process's bound on shared memory, in bytes, and returns
// the previous bound; a negative n only reports it. The bound covers the pools this
// process receives into: memory it allocates, faults in and is charged for (its
// memory cgroup pays for it, never the peer's), counted as it is resident (a buffer's
// first pages when a connection starts, more as its data needs them). The peers'
// buffers it may write into are capped by the same bound, apart. Beyond the bound a
// new connection falls back to TCP with [ReasonMaxDMB], and the buffers of existing
// connections stop growing (they keep working within what they have). The default is
// 1 GiB.
func SetMemoryLimit(n int64) int64 {
	old := shm.SetMemoryLimit(n)
	if n >= 0 {
		noteMemory(processRegistry())
	}
	return old
}

// MemoryInUse returns the shared memory this process holds now, in bytes: the resident
// part of its own pools, which [SetMemoryLimit] bounds. A pool keeps freed buffers for
// reuse (their first pages resident) and shrinks back a few seconds after a burst.
func MemoryInUse() int64 { return shm.MemoryInUse() }

// statisticsOf turns a registry snapshot into Statistics.
func statisticsOf(s registry.Snapshot) Statistics {
	st := Statistics{
		Client:             sideOf(s.Side(registry.Client)),
		Server:             sideOf(s.Side(registry.Server)),
		HandshakesInFlight: s.Gauges[registry.HandshakesInFlight],
		OpenSMCD:           s.Gauges[registry.OpenSMCD],
		OpenTCP:            s.Gauges[registry.OpenTCP],
		Links:              s.Gauges[registry.Links],
		MemoryInUse:        s.Gauges[registry.MemoryInUse],
		MemoryLimit:        s.Gauges[registry.MemoryLimit],
		WakeupsSent:        s.Counters[registry.WakeupsSent],
		WakeupsReceived:    s.Counters[registry.WakeupsReceived],
	}
	st.HandshakesRefused = st.Server.Fallbacks[ReasonHandshakeLimit]
	return st
}

func sideOf(s registry.Side) SideStatistics {
	reasons := func(m map[uint32]uint64) map[Reason]uint64 {
		out := make(map[Reason]uint64, len(m))
		for code, n := range m {
			out[Reason(code)] = n
		}
		return out
	}
	return SideStatistics{
		Offered:       s.Offered,
		PeerNoSMC:     s.PeerNoSMC,
		NotSent:       s.NotSent,
		Conflicts:     s.Conflicts,
		Negotiated:    s.Negotiated,
		SMCD:          s.SMCD,
		Fallbacks:     reasons(s.Fallbacks),
		LocalDeclines: reasons(s.LocalDeclines),
		PeerDeclines:  reasons(s.PeerDeclines),
		Failed:        s.Failed,
	}
}

// processRegistry returns the process's registry (internal/registry), created on
// first use: where smc ss and smc stats read this process's counters and
// connections.
var processRegistry = sync.OnceValue(func() *registry.Registry {
	r := registry.New()
	shm.CountWakeups(r.Counter(registry.WakeupsSent), r.Counter(registry.WakeupsReceived))
	return r
})

// count adds one to a counter of the process's registry: one atomic add.
func count(c registry.Counter) { processRegistry().Add(c) }

// roleOf returns a Conn's side for the registry.
func (c *Conn) role() registry.Role {
	if c.isClient {
		return registry.Client
	}
	return registry.Server
}

// noteSignalling records in the registry what the process's signalling is, once it
// is opened (or failed to open), for smc stats and smc ss.
func noteSignalling(s *signal.Signaller, err error) {
	r := processRegistry()
	if err != nil {
		r.SetStatus("unavailable: "+err.Error(), 0)
		noteMemory(r)
		return
	}
	r.SetStatus("works ("+s.Mode()+")", s.MarksMapID())
	noteMemory(r)
}
