package smc

import (
	"net"
	"net/netip"
	"time"

	"github.com/smc-go/smc/internal/registry"
	"github.com/smc-go/smc/internal/shm"
)

// ConnInfo is a snapshot of a connection, in the manner of Linux's MPTCP_INFO and of
// smcss: what it negotiated, since when, and what its data path carries. Conn.Info
// returns it; `smc ss` shows the same for every connection of the host. The zero
// ConnInfo describes a connection in TCP mode whose handshake has not ended, with
// nothing counted.
type ConnInfo struct {
	// State is what the connection negotiated, as [Conn.ConnectionState] reports it.
	State ConnectionState
	// Client reports whether this side dialed the connection.
	Client bool
	// Start is when the connection became a Conn: after connect on the client,
	// when it was accepted on the server.
	Start time.Time

	// ReceiveRing and SendRing are the sizes in bytes of the ring this side receives
	// into and of the peer's ring it sends into, in SMC-D mode; zero otherwise.
	ReceiveRing, SendRing int
	// BytesSent and BytesReceived count the bytes of the data path in each
	// direction: through the rings in SMC-D mode; otherwise as TCP counts them
	// (tcp_info's bytes acknowledged by the peer and bytes received), which
	// includes the CLC handshake's messages.
	BytesSent, BytesReceived uint64
	// SendQueued is how many bytes were written and not yet read by the peer (in
	// its ring, or in TCP's send queue), ReceiveQueued how many arrived and were not
	// yet read here.
	SendQueued, ReceiveQueued uint64

	// Link is the shared-memory link the connection runs over, in SMC-D mode.
	Link LinkInfo
}

// LinkInfo names a connection's shared-memory link and its slots in it. The zero
// LinkInfo names no link: a connection in TCP mode, or an SMC-D connection while
// each has a link of its own, which it shares with no other.
type LinkInfo struct {
	ID       uint64 // the link, unique within this process
	Slot     uint32 // this side's slot, which the peer writes into
	PeerSlot uint32 // the peer's slot, which this side writes into
}

// Info returns a snapshot of the connection. It takes no lock that Read or Write
// holds, and costs three system calls in TCP mode (TCP_INFO, SIOCOUTQ, SIOCINQ). The byte counts of an
// SMC-D connection come from cursors the peer writes too: they are for display.
// After Close the byte counts are zero.
func (c *Conn) Info() ConnInfo {
	c.mu.Lock()
	info := ConnInfo{State: c.state, Client: c.isClient, Start: time.Unix(0, c.obs.start)}
	stream, closed := c.stream, c.closed
	c.mu.Unlock()
	if closed {
		return info
	}
	if stream != nil {
		info.ReceiveRing, info.SendRing = stream.RingSize(), stream.PeerRingSize()
		info.Link = linkOf(stream)
		if n, ok := stream.Counts(); ok {
			info.BytesSent, info.BytesReceived = n.Sent, n.Received
			info.SendQueued, info.ReceiveQueued = n.SendQueued, n.ReceiveQueued
		}
		return info
	}
	info.BytesSent, info.BytesReceived, info.SendQueued, info.ReceiveQueued = tcpCounts(c.tcp)
	return info
}

// linkOf returns the link a stream runs over, shared by the connections between
// two processes, and its two slots: the low 32 bits of their tokens (segment << 16 |
// slot; the high 32 bits are the slot's generation).
func linkOf(s *shm.Stream) LinkInfo {
	return LinkInfo{ID: uint64(s.LinkID()), Slot: uint32(s.Token()), PeerSlot: uint32(s.PeerToken())}
}

// connObs is what a Conn keeps so that it can be seen from outside: its record in
// the process's registry, its start, and the gauge it counts in. Fields but start
// are guarded by Conn.mu.
type connObs struct {
	start int64          // unix nanoseconds; set by newConn
	slot  registry.Slot  // the Conn's record, or zero
	open  registry.Gauge // the gauge the Conn counts in once its handshake ended, or -1
}

// register records a new Conn in the process's registry: called by newConn, before
// the Conn is shared.
func (c *Conn) register() {
	c.obs.start = time.Now().UnixNano()
	c.obs.open = -1
	rec := c.recordLocked()
	c.obs.slot = processRegistry().Register(&rec)
}

// recordLocked returns the Conn's registry record. c.mu must be held, or the Conn
// not shared yet.
func (c *Conn) recordLocked() registry.Record {
	rec := registry.Record{
		Kind:           registry.Conn,
		Server:         !c.isClient,
		Mode:           registry.ModeInit,
		Offered:        c.state.Offered,
		PeerAdvertised: c.state.PeerAdvertised,
		Local:          addrPortOf(c.tcp.LocalAddr()),
		Remote:         addrPortOf(c.tcp.RemoteAddr()),
		Start:          c.obs.start,
	}
	if c.state.HandshakeComplete {
		rec.Mode = registry.ModeTCP
		if c.state.Mode == ModeSMCD {
			rec.Mode = registry.ModeSMCD
		}
		rec.Fallback, rec.PeerDiagnosis = uint32(c.state.Fallback), uint32(c.state.PeerDiagnosis)
	}
	if s := c.stream; s != nil {
		rec.RxRing, rec.TxRing = uint32(s.RingSize()), uint32(s.PeerRingSize())
		l := linkOf(s)
		rec.LinkID, rec.Slot, rec.PeerSlot = l.ID, l.Slot, l.PeerSlot
		for i, a := range s.CursorAddrs() {
			rec.Cursors[i] = uint64(a)
		}
	}
	return rec
}

// noteSettled counts the end of a handshake that settled on a data path and
// updates the Conn's record: called once finish succeeded.
func (c *Conn) noteSettled() {
	r := processRegistry()
	st := c.ConnectionState()
	switch {
	case st.Mode == ModeSMCD && c.isClient:
		r.Add(registry.ClientSMCD)
	case st.Mode == ModeSMCD:
		r.Add(registry.ServerSMCD)
	default:
		r.CountReason(c.role(), registry.Fallback, uint32(st.Fallback))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.obs.open = registry.OpenTCP
	if c.stream != nil {
		c.obs.open = registry.OpenSMCD
		noteMemory(r)
	}
	r.Gauge(c.obs.open).Add(1)
	rec := c.recordLocked()
	r.Update(c.obs.slot, &rec)
}

// unregister removes the Conn from the registry and its gauges: called by the
// first Close, before the shared memory is released (a reader of the record reads
// the rings' cursors, and checks the record afterwards).
func (c *Conn) unregister() {
	c.mu.Lock()
	slot, open := c.obs.slot, c.obs.open
	c.obs.slot, c.obs.open = 0, -1
	c.mu.Unlock()
	r := processRegistry()
	r.Unregister(slot)
	if open >= 0 {
		r.Gauge(open).Add(-1)
		if open == registry.OpenSMCD {
			noteMemory(r)
		}
	}
}

// noteMemory copies the process's links, its shared memory in use and its bound
// into the registry, where smc stats reads them: when a connection's shared memory
// comes or goes.
func noteMemory(r *registry.Registry) {
	r.Gauge(registry.Links).Store(shm.Links())
	r.Gauge(registry.MemoryInUse).Store(shm.MemoryInUse())
	r.Gauge(registry.MemoryLimit).Store(shm.SetMemoryLimit(-1))
}

// noteHandshakeStart and noteHandshakeEnd keep the count of handshakes in flight;
// a handshake that failed is counted as such.
func (c *Conn) noteHandshakeStart() { processRegistry().Gauge(registry.HandshakesInFlight).Add(1) }

func (c *Conn) noteHandshakeEnd(err error) {
	r := processRegistry()
	r.Gauge(registry.HandshakesInFlight).Add(-1)
	if err == nil {
		return
	}
	if c.isClient {
		r.Add(registry.ClientFailed)
	} else {
		r.Add(registry.ServerFailed)
	}
}

// countDecline counts a Decline: sent by this side (local) with its reason, or
// received from the peer with the peer's diagnosis.
func (c *Conn) countDecline(local bool, r Reason) {
	kind := registry.PeerDecline
	if local {
		kind = registry.LocalDecline
	}
	processRegistry().CountReason(c.role(), kind, uint32(r))
}

// register records a listener that offers SMC in the process's registry.
func (l *listener) register() {
	r := processRegistry()
	r.Gauge(registry.Listeners).Add(1)
	rec := registry.Record{Kind: registry.Listener, Server: true, Local: addrPortOf(l.tl.Addr()), Start: time.Now().UnixNano()}
	l.slot.Store(uint32(r.Register(&rec)) | listenerCounted)
}

// listenerCounted is set in listener.slot while the listener counts in the
// Listeners gauge, so that a second Close neither counts nor frees twice.
const listenerCounted = 1 << 31

// unregister removes the listener's record, on its first Close.
func (l *listener) unregister() {
	v := l.slot.Swap(0)
	if v&listenerCounted == 0 {
		return
	}
	r := processRegistry()
	r.Gauge(registry.Listeners).Add(-1)
	r.Unregister(registry.Slot(v &^ listenerCounted))
}

func addrPortOf(a net.Addr) (ap netip.AddrPort) {
	if t, ok := a.(*net.TCPAddr); ok {
		ap = t.AddrPort()
	}
	return ap
}
