package shm

import (
	"encoding/binary"
	"errors"
	"math"
	"syscall"
	"testing"
)

func TestRxCursorObserve(t *testing.T) {
	const size = 4096
	type obs struct {
		flags uint32
		prod  uint64
	}
	tests := []struct {
		name string
		cons uint64 // where both cursors start
		seq  []obs
		ok   bool // whether the last observation is accepted
	}{
		{"empty", 0, []obs{{0, 0}}, true},
		{"full ring", 0, []obs{{0, size}}, true},
		{"overfull", 0, []obs{{0, size + 1}}, false},
		{"forward", 0, []obs{{0, 10}, {0, 20}}, true},
		{"backwards", 0, []obs{{0, 20}, {0, 10}}, false},
		{"far backwards", 0, []obs{{0, 20}, {0, math.MaxUint64}}, false},
		{"unknown flag", 0, []obs{{8, 0}}, false},
		{"flag cleared", 0, []obs{{fDone, 5}, {0, 5}}, false},
		{"moved after done", 0, []obs{{fDone, 5}, {fDone, 6}}, false},
		{"done then closed", 0, []obs{{fDone, 5}, {fDone | fClosed, 5}}, true},
		{"abort ignores cursor", 0, []obs{{fAbort, math.MaxUint64}}, true},
		{"after consuming", 100, []obs{{0, 100}, {0, 100 + size}}, true},
		{"after consuming, overfull", 100, []obs{{0, 100}, {0, 101 + size}}, false},
		{"wraps at 2^64", math.MaxUint64 - 10, []obs{{0, math.MaxUint64 - 10}, {0, 20}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rxCursor{size: size, cons: tt.cons, prod: tt.cons}
			var err error
			for i, o := range tt.seq {
				err = r.observe(o.flags, o.prod)
				if i < len(tt.seq)-1 && err != nil {
					t.Fatalf("observation %d: %v", i, err)
				}
			}
			if (err == nil) != tt.ok {
				t.Fatalf("observe = %v, want ok=%v", err, tt.ok)
			}
			var pe *ProtocolError
			if err != nil && (!errors.As(err, &pe) || !errors.Is(err, syscall.ECONNRESET)) {
				t.Fatalf("error %v is not a *ProtocolError wrapping ECONNRESET", err)
			}
		})
	}
}

func TestTxCursorObserve(t *testing.T) {
	tests := []struct {
		name  string
		prod  uint64
		flags uint32
		cons  uint64
		ok    bool
	}{
		{"nothing consumed", 100, 0, 0, true},
		{"all consumed", 100, 0, 100, true},
		{"consumed more than produced", 100, 0, 101, false},
		{"backwards", 100, 0, math.MaxUint64, false},
		{"unknown flag", 100, 16, 0, false},
		{"closed", 100, fClosed, 50, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := txCursor{size: 4096, prod: tt.prod}
			err := c.observe(tt.flags, tt.cons)
			if (err == nil) != tt.ok {
				t.Fatalf("observe = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && c.free() > c.size {
				t.Fatalf("free = %d > size", c.free())
			}
		})
	}
}

// FuzzCursors drives both cursor validators with arbitrary values as a hostile peer could
// write them, interleaved with local progress, and checks the invariants every accepted
// observation must keep: never more unread bytes than the ring holds, never less free
// space than zero, nothing accepted after an error.
func FuzzCursors(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(binary.LittleEndian.AppendUint64([]byte{1, 0}, 1<<12))
	f.Add(binary.LittleEndian.AppendUint64([]byte{7, 3}, math.MaxUint64))
	f.Fuzz(func(t *testing.T, data []byte) {
		const size = 1 << 12
		r := rxCursor{size: size}
		tx := txCursor{size: size}
		rxDead, txDead := false, false
		for len(data) >= 10 {
			flags, local := uint32(data[0]), data[1]
			v := binary.LittleEndian.Uint64(data[2:10])
			data = data[10:]
			// Local progress: consume some of what is available, produce some into free space.
			r.cons += uint64(local) % (r.avail() + 1)
			tx.prod += uint64(local) % (tx.free() + 1)
			if !rxDead {
				before := r
				if err := r.observe(flags&15, v); err != nil {
					rxDead = true
					if r != before {
						t.Fatalf("rejected observation changed the state: %+v -> %+v", before, r)
					}
				} else if r.flags&fAbort == 0 && r.avail() > size {
					t.Fatalf("accepted %d unread bytes in a %d-byte ring", r.avail(), size)
				}
			}
			if !txDead {
				if err := tx.observe(flags>>4&15, v); err != nil {
					txDead = true
				} else if tx.flags&fAbort == 0 && (tx.free() > size || tx.prod-tx.cons > size) {
					t.Fatalf("accepted consumer cursor %d with producer at %d", tx.cons, tx.prod)
				}
			}
		}
	})
}
