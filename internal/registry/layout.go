package registry

import (
	"encoding/binary"
	"net/netip"
)

// Layout of the file (see the package documentation).
const (
	Magic       = "smcreg\x00\x01"
	HeaderSize  = 4096
	RecordSize  = 128
	MaxRecords  = 1 << 18 // records a file may hold: 32 MiB of address space, mapped as used
	ReasonSlots = 128     // entries of the reason table, the last one the overflow

	initialRecords = 64 // records a new file holds; it doubles as needed

	offHeaderSize = 8
	offRecordSize = 12
	offInUse      = 16
	offCapacity   = 20
	offInstance   = 24
	offStart      = 32
	offMarksMap   = 40
	offStatusSeq  = 44
	offStatus     = 48
	statusLen     = 208
	offCounters   = 256
	offReasons    = 1024
)

// A Counter is a monotonic process-wide count. Client and server counters of the
// connection paths sit on separate cache lines.
type Counter int

const (
	// Dials that offered SMC (the socket was marked), by what the TCP handshake carried.
	ClientPeerNoSMC  Counter = iota // our SYN carried the option, the SYN-ACK did not
	ClientNegotiated                // both carried it: a CLC handshake follows
	ClientNotSent                   // marked, but our SYN did not carry the option
	ClientConflict                  // another program had written the option into our SYN
	_
	_
	_
	_
	// Connections accepted from listeners that offer SMC.
	ServerPeerNoSMC  // the client's SYN did not carry the option
	ServerNegotiated // both carried it: a CLC handshake follows
	_
	_
	_
	_
	_
	_
	// Ends of CLC handshakes.
	ClientSMCD   // the client's handshake ended in SMC-D
	ServerSMCD   // the server's handshake ended in SMC-D
	ClientFailed // the client's handshake failed: the connection is unusable
	ServerFailed // the server's handshake failed
	_
	_
	_
	_
	// Wake-ups sent to and received from peers over links (internal/shm counts them
	// in these words).
	WakeupsSent
	WakeupsReceived
	NumCounters = iota
)

// A Gauge is a process-wide level, stored as a signed count.
type Gauge int

const (
	HandshakesInFlight Gauge = iota // CLC handshakes running now
	OpenSMCD                        // connections open in SMC-D mode
	OpenTCP                         // connections of this package open in TCP mode after a CLC handshake
	Links                           // shared-memory links in use
	MemoryInUse                     // bytes of shared memory held, as of the last connection set up or closed
	MemoryLimit                     // the process's bound on it, likewise
	Listeners                       // listeners that offer SMC
	NumGauges          = iota
	offGauges          = offCounters + NumCounters*8
	countersSize       = NumCounters*8 + NumGauges*8
)

// Compile-time checks that the counters and gauges fit their area.
var _ [offReasons - offCounters - countersSize]byte

// A Kind is what a reason count counts.
type Kind uint8

const (
	Fallback     Kind = iota // a connection that negotiated or offered SMC ended in TCP mode with this reason
	LocalDecline             // this side sent a Decline with this reason
	PeerDecline              // the peer sent a Decline with this diagnosis
)

// Other is the code under which a full reason table counts.
const Other = 0xffffffff

// A Role is the side of a connection.
type Role uint8

const (
	Client Role = iota
	Server
)

// reasonKey packs a reason table key; the top bit marks a used entry.
func reasonKey(role Role, kind Kind, code uint32) uint64 {
	return 1<<63 | uint64(role&1)<<41 | uint64(kind&3)<<32 | uint64(code)
}

// A ReasonCount is one entry of the reason table.
type ReasonCount struct {
	Role  Role
	Kind  Kind
	Code  uint32
	Count uint64
}

// RecordKind says what a record describes.
type RecordKind uint8

const (
	Free RecordKind = iota
	Conn
	Listener
)

// Modes of a connection record.
const (
	ModeTCP  = 0
	ModeSMCD = 1
	ModeInit = 2 // the CLC handshake has not ended yet
)

// A Record describes one listener or connection.
type Record struct {
	Kind           RecordKind
	Server         bool
	Mode           uint8
	Offered        bool // our SYN or SYN-ACK carried the SMC option
	PeerAdvertised bool // the peer's did
	Fallback       uint32
	PeerDiagnosis  uint32
	Local, Remote  netip.AddrPort
	Start          int64 // unix nanoseconds
	RxRing, TxRing uint32
	LinkID         uint64
	Slot, PeerSlot uint32
	// Cursors are the addresses, in the writing process, of the producer and
	// consumer cursors of the ring this side receives into, then of the ring it sends
	// into; zero when the connection has no shared memory.
	Cursors [4]uint64
}

// Record layout, after the sequence word at 0.
const (
	recKind     = 4
	recServer   = 5
	recMode     = 6
	recFlags    = 7
	recFallback = 8
	recPeerDiag = 12
	recLocal    = 16 // [16]byte address, then u16 port at 32
	recLPort    = 32
	recRPort    = 34
	recFamily   = 36 // 4 or 6
	recRemote   = 40
	recStart    = 56
	recRxRing   = 64
	recTxRing   = 68
	recLinkID   = 72
	recSlot     = 80
	recPeerSlot = 84
	recCursors  = 88 // 4 × u64, to 120
)

const (
	flagOffered = 1 << iota
	flagPeerAdvertised
)

// encode writes rec into b (RecordSize bytes) but for the sequence word.
func (rec *Record) encode(b []byte) {
	ne := binary.NativeEndian
	clear(b[4:])
	b[recKind] = byte(rec.Kind)
	if rec.Server {
		b[recServer] = 1
	}
	b[recMode] = rec.Mode
	var f byte
	if rec.Offered {
		f |= flagOffered
	}
	if rec.PeerAdvertised {
		f |= flagPeerAdvertised
	}
	b[recFlags] = f
	ne.PutUint32(b[recFallback:], rec.Fallback)
	ne.PutUint32(b[recPeerDiag:], rec.PeerDiagnosis)
	la, ra := rec.Local.Addr().As16(), rec.Remote.Addr().As16()
	copy(b[recLocal:], la[:])
	copy(b[recRemote:], ra[:])
	ne.PutUint16(b[recLPort:], rec.Local.Port())
	ne.PutUint16(b[recRPort:], rec.Remote.Port())
	b[recFamily] = 6
	if rec.Local.Addr().Is4() {
		b[recFamily] = 4
	}
	ne.PutUint64(b[recStart:], uint64(rec.Start))
	ne.PutUint32(b[recRxRing:], rec.RxRing)
	ne.PutUint32(b[recTxRing:], rec.TxRing)
	ne.PutUint64(b[recLinkID:], rec.LinkID)
	ne.PutUint32(b[recSlot:], rec.Slot)
	ne.PutUint32(b[recPeerSlot:], rec.PeerSlot)
	for i, a := range rec.Cursors {
		ne.PutUint64(b[recCursors+8*i:], a)
	}
}

// decode reads a record written by encode; ok is false for a free or malformed one.
func decode(b []byte) (rec Record, ok bool) {
	ne := binary.NativeEndian
	rec.Kind = RecordKind(b[recKind])
	if rec.Kind != Conn && rec.Kind != Listener || b[recServer] > 1 || b[recMode] > ModeInit {
		return Record{}, false
	}
	rec.Server = b[recServer] == 1
	rec.Mode = b[recMode]
	rec.Offered = b[recFlags]&flagOffered != 0
	rec.PeerAdvertised = b[recFlags]&flagPeerAdvertised != 0
	rec.Fallback = ne.Uint32(b[recFallback:])
	rec.PeerDiagnosis = ne.Uint32(b[recPeerDiag:])
	la := netip.AddrFrom16([16]byte(b[recLocal : recLocal+16]))
	ra := netip.AddrFrom16([16]byte(b[recRemote : recRemote+16]))
	switch b[recFamily] {
	case 4:
		la, ra = la.Unmap(), ra.Unmap()
	case 6:
	default:
		return Record{}, false
	}
	rec.Local = netip.AddrPortFrom(la, ne.Uint16(b[recLPort:]))
	rec.Remote = netip.AddrPortFrom(ra, ne.Uint16(b[recRPort:]))
	rec.Start = int64(ne.Uint64(b[recStart:]))
	rec.RxRing = ne.Uint32(b[recRxRing:])
	rec.TxRing = ne.Uint32(b[recTxRing:])
	rec.LinkID = ne.Uint64(b[recLinkID:])
	rec.Slot = ne.Uint32(b[recSlot:])
	rec.PeerSlot = ne.Uint32(b[recPeerSlot:])
	for i := range rec.Cursors {
		rec.Cursors[i] = ne.Uint64(b[recCursors+8*i:])
	}
	return rec, true
}

// Counts are the byte counts of a shared-memory connection, from its four cursors.
type Counts struct {
	Sent          uint64 // bytes written into the peer's ring, ever
	Received      uint64 // bytes the peer wrote into our ring, ever
	SendQueued    uint64 // bytes in the peer's ring it has not read yet
	ReceiveQueued uint64 // bytes in our ring not read yet
}

// CountsOf computes Counts from the cursor words (as Record.Cursors orders them)
// and the ring sizes. The words may have been written by a hostile peer: a queue is
// clamped to its ring.
func CountsOf(w [4]uint64, rxRing, txRing uint32) Counts {
	queued := func(prod, cons uint64, size uint32) uint64 {
		return min(prod-cons, uint64(size)) // modular, as the data path reads them
	}
	return Counts{
		Sent:          w[2],
		Received:      w[0],
		SendQueued:    queued(w[2], w[3], txRing),
		ReceiveQueued: queued(w[0], w[1], rxRing),
	}
}
