package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// A Process is a process that uses smc, as its registry shows it.
type Process struct {
	PID      int
	Name     string // the command name, /proc/PID/comm
	Instance uint64 // a random number the process chose: PID and Instance name it
	Start    time.Time
	Status   string // what the process's signalling is
	MarksMap uint32 // the ID of its signalling's socket-storage map, or 0
	Snapshot Snapshot
	Entries  []Entry
	Sockets  map[uint64]bool // inodes of the process's sockets, from /proc/PID/fd
	NetNS    uint64          // inode of the process's network namespace, or 0

	mem []byte // the registry's mapping; nil once closed
}

// An Entry is a record as read, with what is needed to check later that it still
// describes the same connection.
type Entry struct {
	Record
	index int
	seq   uint32
}

// ErrGone is returned by [Process.Counts] for a record that changed since it was read:
// its connection closed.
var ErrGone = errors.New("smc: registry: the connection is gone")

// parse validates a registry image and reads its header, counters and records into p.
func (p *Process) parse(mem []byte) error {
	ne := binary.NativeEndian
	if len(mem) < HeaderSize || string(mem[:len(Magic)]) != Magic {
		return errors.New("not a registry (magic)")
	}
	if ne.Uint32(mem[offHeaderSize:]) != HeaderSize || ne.Uint32(mem[offRecordSize:]) != RecordSize {
		return errors.New("another layout version")
	}
	p.mem = mem
	p.Instance = ne.Uint64(mem[offInstance:])
	p.Start = time.Unix(0, int64(ne.Uint64(mem[offStart:])))
	p.Status, p.MarksMap = p.status()
	p.Snapshot = snapshotOf(mem)
	n := min(int(p.word32(offInUse).Load()), (len(mem)-HeaderSize)/RecordSize, MaxRecords)
	for i := range n {
		if e, ok := p.entry(i); ok {
			p.Entries = append(p.Entries, e)
		}
	}
	return nil
}

func (p *Process) word32(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&p.mem[off]))
}

// status reads the status text and the map ID under their sequence lock.
func (p *Process) status() (string, uint32) {
	for range 100 {
		seq := p.word32(offStatusSeq).Load()
		var b [statusLen]byte
		loadWords(b[:], p.mem[offStatus:offStatus+statusLen])
		id := p.word32(offMarksMap).Load()
		if seq&1 == 0 && p.word32(offStatusSeq).Load() == seq {
			n := 0
			for n < len(b) && b[n] != 0 {
				n++
			}
			return printable(b[:n]), id
		}
	}
	return "(being written)", 0
}

// printable replaces what a terminal should not receive.
func printable(b []byte) string {
	out := make([]rune, 0, len(b))
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			r = '?'
		}
		out = append(out, r)
	}
	return string(out)
}

// entry reads record i under its sequence lock; ok is false for a free, malformed
// or constantly changing record.
func (p *Process) entry(i int) (Entry, bool) {
	off := HeaderSize + i*RecordSize
	for range 100 {
		seq := p.word32(off).Load()
		if seq&1 != 0 {
			continue
		}
		var b [RecordSize]byte
		loadWords(b[8:], p.mem[off+8:off+RecordSize])
		binary.NativeEndian.PutUint32(b[4:], p.word32(off+4).Load())
		if p.word32(off).Load() != seq {
			continue
		}
		rec, ok := decode(b[:])
		return Entry{Record: rec, index: i, seq: seq}, ok
	}
	return Entry{}, false
}

// current reports whether e's record is unchanged since it was read.
func (p *Process) current(e Entry) bool {
	return p.mem != nil && p.word32(HeaderSize+e.index*RecordSize).Load() == e.seq
}

// Counts reads the byte counters of a shared-memory connection's entry from the
// process's memory (process_vm_readv), and checks afterwards that the entry still
// describes the same connection. It fails for an entry without shared memory, when
// this process may not read the other's memory, and with [ErrGone] when the
// connection closed meanwhile.
func (p *Process) Counts(e Entry) (Counts, error) {
	if e.Cursors == [4]uint64{} {
		return Counts{}, errors.New("smc: registry: the connection has no shared memory")
	}
	w, err := readWords(p.PID, e.Cursors)
	if err != nil {
		return Counts{}, fmt.Errorf("smc: registry: reading the cursors of pid %d: %w", p.PID, err)
	}
	if !p.current(e) {
		return Counts{}, ErrGone
	}
	return CountsOf(w, e.RxRing, e.TxRing), nil
}
