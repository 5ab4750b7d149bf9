package registry

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// A Registry is a process's registry: its counters always, and its records when the
// shared file could be created. Its methods are safe for concurrent use; the counting
// methods take no lock.
type Registry struct {
	mem      []byte // the header, then the records when shared
	counters *[NumCounters]atomic.Uint64
	gauges   *[NumGauges]atomic.Int64
	reasons  *[ReasonSlots]reasonEntry
	shared   bool  // mem is the memfd others read; records are kept
	err      error // why the registry is not shared, if it is not
	grow     func(records int) error

	mu    sync.Mutex // guards the fields below and every write of a record or the status
	free  []uint32   // indices of freed records
	inUse uint32     // records below this index have been used
	cap   uint32     // records the file holds
}

type reasonEntry struct {
	key   atomic.Uint64
	count atomic.Uint64
}

// New returns the process's registry: a shared file (see the package documentation)
// or, where that cannot be created, private memory with the same counters, which
// [Registry.Err] explains. Call it once per process.
func New() *Registry {
	r, err := create()
	if err != nil {
		r = &Registry{mem: make([]byte, HeaderSize), err: err}
	}
	r.counters = (*[NumCounters]atomic.Uint64)(unsafe.Pointer(&r.mem[offCounters]))
	r.gauges = (*[NumGauges]atomic.Int64)(unsafe.Pointer(&r.mem[offGauges]))
	r.reasons = (*[ReasonSlots]reasonEntry)(unsafe.Pointer(&r.mem[offReasons]))
	ne := binary.NativeEndian
	copy(r.mem, Magic)
	ne.PutUint32(r.mem[offHeaderSize:], HeaderSize)
	ne.PutUint32(r.mem[offRecordSize:], RecordSize)
	ne.PutUint64(r.mem[offInstance:], randomUint64())
	ne.PutUint64(r.mem[offStart:], uint64(nowNanos()))
	r.word32(offCapacity).Store(r.cap)
	return r
}

// Err reports why the registry is private to the process (smc ss and smc stats do
// not see it), or nil when it is shared.
func (r *Registry) Err() error { return r.err }

func (r *Registry) word32(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&r.mem[off]))
}

// Add adds one to counter c.
func (r *Registry) Add(c Counter) { r.counters[c].Add(1) }

// Counter returns counter c's word, for a package that counts without importing this
// one (internal/shm's wake-ups).
func (r *Registry) Counter(c Counter) *atomic.Uint64 { return &r.counters[c] }

// Gauge returns gauge g, to add to or store.
func (r *Registry) Gauge(g Gauge) *atomic.Int64 { return &r.gauges[g] }

// CountReason adds one to the count of (role, kind, code). A full table counts it
// under the overflow entry's code Other.
func (r *Registry) CountReason(role Role, kind Kind, code uint32) {
	key := reasonKey(role, kind, code)
	const n = ReasonSlots - 1 // the last entry is the overflow
	start := int(key * 0x9e3779b97f4a7c15 >> 57 % n)
	for i := range n {
		e := &r.reasons[(start+i)%n]
		k := e.key.Load()
		if k == 0 && e.key.CompareAndSwap(0, key) {
			k = key
		} else if k == 0 {
			k = e.key.Load() // another writer claimed it just now
		}
		if k == key {
			e.count.Add(1)
			return
		}
	}
	e := &r.reasons[n]
	e.key.Store(reasonKey(0, 0, Other))
	e.count.Add(1)
}

// SetStatus records what the process's signalling is (text, cut to fit) and the ID of
// its socket-storage map (0 if none).
func (r *Registry) SetStatus(status string, marksMap uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := r.word32(offStatusSeq)
	seq.Add(1)
	var b [statusLen]byte
	copy(b[:], status)
	storeWords(r.mem[offStatus:offStatus+statusLen], b[:])
	r.word32(offMarksMap).Store(marksMap)
	seq.Add(1)
}

// A Slot names a record; the zero Slot names none.
type Slot uint32

// Register stores rec in a free record and returns its slot, or the zero Slot when
// the registry is private or full.
func (r *Registry) Register(rec *Record) Slot {
	if !r.shared {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var idx uint32
	switch {
	case len(r.free) > 0:
		idx = r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
	case r.inUse < r.cap:
		idx = r.inUse
	case r.cap < MaxRecords && r.grow(int(min(2*r.cap, MaxRecords))) == nil:
		r.cap = min(2*r.cap, MaxRecords)
		r.word32(offCapacity).Store(r.cap)
		idx = r.inUse
	default:
		return 0
	}
	r.writeLocked(idx, rec)
	if idx == r.inUse {
		r.inUse++
		r.word32(offInUse).Store(r.inUse)
	}
	return Slot(idx + 1)
}

// Update rewrites the record of slot s.
func (r *Registry) Update(s Slot, rec *Record) {
	if s == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeLocked(uint32(s-1), rec)
}

// Unregister frees the record of slot s: its kind becomes Free, which readers skip,
// and its other words keep what they held until the record is used again. A reader
// that read it before sees its sequence change.
func (r *Registry) Unregister(s Slot) {
	if s == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	off := HeaderSize + int(s-1)*RecordSize
	seq := r.word32(off)
	seq.Add(1)
	r.word32(off + recKind).Store(0) // the kind, and the bytes beside it
	seq.Add(1)
	r.free = append(r.free, uint32(s-1))
}

// writeLocked writes rec into record idx under its sequence lock. The words between
// the two increments of the sequence are plain stores, one copy: the increments are
// atomic read-modify-writes, which order the copy after the first and before the
// second, and a reader keeps what it read only when it saw the same even sequence
// before and after, so it never keeps a word the copy was writing. (An atomic store
// per word costs a locked instruction each, on every connection's set-up.) Only
// other processes, and other mappings of the file, read records.
func (r *Registry) writeLocked(idx uint32, rec *Record) {
	off := HeaderSize + int(idx)*RecordSize
	var b [RecordSize]byte
	rec.encode(b[:])
	seq := r.word32(off)
	seq.Add(1)
	copy(r.mem[off+4:off+RecordSize], b[4:])
	seq.Add(1)
}

// storeWords copies src into dst (both multiples of 8 bytes long, dst 8-aligned) one
// atomic 64-bit store per word.
func storeWords(dst, src []byte) {
	for i := 0; i+8 <= len(src); i += 8 {
		(*atomic.Uint64)(unsafe.Pointer(&dst[i])).Store(binary.NativeEndian.Uint64(src[i:]))
	}
}

// loadWords copies src into dst one atomic 64-bit load per word.
func loadWords(dst, src []byte) {
	for i := 0; i+8 <= len(src); i += 8 {
		binary.NativeEndian.PutUint64(dst[i:], (*atomic.Uint64)(unsafe.Pointer(&src[i])).Load())
	}
}

// Snapshot returns the process's counters, gauges and reason counts.
func (r *Registry) Snapshot() Snapshot { return snapshotOf(r.mem) }

// A Snapshot is a process's counters at one time.
type Snapshot struct {
	Counters [NumCounters]uint64
	Gauges   [NumGauges]int64
	Reasons  []ReasonCount
}

// snapshotOf reads the counters of a registry image at least HeaderSize long.
func snapshotOf(mem []byte) Snapshot {
	var s Snapshot
	for i := range s.Counters {
		s.Counters[i] = (*atomic.Uint64)(unsafe.Pointer(&mem[offCounters+8*i])).Load()
	}
	for i := range s.Gauges {
		s.Gauges[i] = (*atomic.Int64)(unsafe.Pointer(&mem[offGauges+8*i])).Load()
	}
	for i := range ReasonSlots {
		off := offReasons + 16*i
		key := (*atomic.Uint64)(unsafe.Pointer(&mem[off])).Load()
		if key>>63 == 0 {
			continue
		}
		s.Reasons = append(s.Reasons, ReasonCount{
			Role:  Role(key >> 41 & 1),
			Kind:  Kind(key >> 32 & 3),
			Code:  uint32(key),
			Count: (*atomic.Uint64)(unsafe.Pointer(&mem[off+8])).Load(),
		})
	}
	return s
}

// Sub returns s minus base, counter by counter (gauges are levels: s's are kept). A
// counter below its base (it cannot be, unless base is another process's) is zero.
func (s Snapshot) Sub(base Snapshot) Snapshot {
	d := Snapshot{Gauges: s.Gauges}
	for i := range s.Counters {
		d.Counters[i] = sub(s.Counters[i], base.Counters[i])
	}
	for _, rc := range s.Reasons {
		for _, b := range base.Reasons {
			if b.Role == rc.Role && b.Kind == rc.Kind && b.Code == rc.Code {
				rc.Count = sub(rc.Count, b.Count)
			}
		}
		if rc.Count > 0 {
			d.Reasons = append(d.Reasons, rc)
		}
	}
	return d
}

// Plus returns s plus o: counters, gauges and reason counts added.
func (s Snapshot) Plus(o Snapshot) Snapshot {
	for i := range s.Counters {
		s.Counters[i] += o.Counters[i]
	}
	for i := range s.Gauges {
		s.Gauges[i] += o.Gauges[i]
	}
	reasons := append([]ReasonCount(nil), s.Reasons...)
next:
	for _, rc := range o.Reasons {
		for i, r := range reasons {
			if r.Role == rc.Role && r.Kind == rc.Kind && r.Code == rc.Code {
				reasons[i].Count += rc.Count
				continue next
			}
		}
		reasons = append(reasons, rc)
	}
	s.Reasons = reasons
	return s
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func randomUint64() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.NativeEndian.Uint64(b[:])
}

func nowNanos() int64 { return time.Now().UnixNano() }

// A Side is a snapshot's counts of one side, as smc.SideStatistics documents them,
// with reasons by code.
type Side struct {
	Offered, PeerNoSMC, NotSent, Conflicts, Negotiated, SMCD, Failed uint64
	Fallbacks, LocalDeclines, PeerDeclines                           map[uint32]uint64
}

// Side returns the counts of one side.
func (s Snapshot) Side(role Role) Side {
	d := Side{Fallbacks: map[uint32]uint64{}, LocalDeclines: map[uint32]uint64{}, PeerDeclines: map[uint32]uint64{}}
	c := &s.Counters
	if role == Client {
		d.PeerNoSMC, d.Negotiated, d.SMCD, d.Failed = c[ClientPeerNoSMC], c[ClientNegotiated], c[ClientSMCD], c[ClientFailed]
		d.NotSent, d.Conflicts = c[ClientNotSent], c[ClientConflict]
		d.Offered = d.PeerNoSMC + d.NotSent + d.Conflicts + d.Negotiated
	} else {
		d.PeerNoSMC, d.Negotiated, d.SMCD, d.Failed = c[ServerPeerNoSMC], c[ServerNegotiated], c[ServerSMCD], c[ServerFailed]
		d.Offered = d.PeerNoSMC + d.Negotiated
	}
	for _, rc := range s.Reasons {
		if rc.Role != role {
			continue
		}
		switch rc.Kind {
		case Fallback:
			d.Fallbacks[rc.Code] += rc.Count
		case LocalDecline:
			d.LocalDeclines[rc.Code] += rc.Count
		case PeerDecline:
			d.PeerDeclines[rc.Code] += rc.Count
		}
	}
	return d
}
