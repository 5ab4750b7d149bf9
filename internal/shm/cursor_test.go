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
		{"unknown flag", 0, []obs{{16, 0}}, false},
		{"released", 0, []obs{{fClosed, 5}, {fClosed | fReleased, 5}}, true},
		{"released cleared", 0, []obs{{fClosed | fReleased, 5}, {fClosed, 5}}, false},
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
			r := rxCursor{size: size, cons: tt.cons, prod: tt.cons, win: size}
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

func TestRxCursorWindow(t *testing.T) {
	const size = 64 << 10
	tests := []struct {
		name string
		win  uint64
		prod uint64
		ok   bool
	}{
		{"within", 4096, 4000, true},
		{"at the edge", 4096, 4096, true},
		{"beyond", 4096, 4097, false},
		{"whole ring", size, size, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rxCursor{size: size, win: tt.win}
			if err := r.observe(0, tt.prod); (err == nil) != tt.ok {
				t.Fatalf("observe = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestTxCursorObserve(t *testing.T) {
	const size = 4096
	tests := []struct {
		name     string
		prod     uint64
		prevWin  uint64 // window validated before
		flags    uint32
		cons     uint64
		win      uint32
		ok       bool
		wantFree uint64
	}{
		{"nothing consumed", 100, size, 0, 0, size, true, size - 100},
		{"all consumed", 100, size, 0, 100, size, true, size},
		{"consumed more than produced", 100, size, 0, 101, size, false, 0},
		{"backwards", 100, size, 0, math.MaxUint64, size, false, 0},
		{"unknown flag", 100, size, 16, 0, size, false, 0},
		{"released is a producer flag", 100, size, fReleased, 0, size, false, 0},
		{"closed", 100, size, fClosed, 50, size, true, size - 50},
		{"first window", 0, 0, 0, 0, 1024, true, 1024},
		{"within the window", 100, 1024, 0, 100, 1024, true, 924},
		{"at the window's edge", 1024, 1024, 0, 1024, 1024, true, 0},
		{"window grown", 1024, 1024, 0, 1024, 2048, true, 1024},
		{"window beyond the ring: clamped", 100, 1024, 0, 0, math.MaxUint32, true, size - 100},
		{"no window", 0, 0, 0, 0, 0, true, 0},
		{"window shrank", 100, 2048, 0, 100, 1024, false, 0},
		{"window shrank to nothing", 100, 2048, 0, 100, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := txCursor{size: size, prod: tt.prod, win: tt.prevWin}
			err := c.observe(tt.flags, tt.cons, tt.win)
			if (err == nil) != tt.ok {
				t.Fatalf("observe = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && c.free() != tt.wantFree {
				t.Fatalf("free = %d, want %d", c.free(), tt.wantFree)
			}
		})
	}
}

// FuzzCursors drives both cursor validators with arbitrary values as a hostile peer could
// write them, interleaved with local progress, and checks the invariants every accepted
// observation must keep: never more unread bytes than the ring holds, never less free
// space than zero, never a write beyond the window or a wrap before the window is the
// whole ring, nothing accepted after an error.
func FuzzCursors(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(binary.LittleEndian.AppendUint64([]byte{1, 0, 0, 4}, 1<<12))
	f.Add(binary.LittleEndian.AppendUint64([]byte{7, 3, 0xff, 0xff}, math.MaxUint64))
	f.Add(binary.LittleEndian.AppendUint64([]byte{0, 200, 0, 2}, 1<<9))
	f.Fuzz(func(t *testing.T, data []byte) {
		const size = 1 << 12
		r := rxCursor{size: size, win: size / 8}
		tx := txCursor{size: size}
		rxDead, txDead := false, false
		for len(data) >= 12 {
			flags, local := uint32(data[0]), data[1]
			win := uint32(binary.LittleEndian.Uint16(data[2:4]))
			v := binary.LittleEndian.Uint64(data[4:12])
			data = data[12:]
			// Local progress: consume some of what is available, produce some into free
			// space, grow the receiver's window as its owner does once it is filled.
			r.cons += uint64(local) % (r.avail() + 1)
			if r.win < size && r.prod >= r.win/2 {
				r.win *= 2
			}
			tx.prod += uint64(local) % (tx.free() + 1)
			if tx.win < size && tx.prod > tx.win {
				t.Fatalf("produced to %d beyond the window of %d", tx.prod, tx.win)
			}
			if c := tx.chunk(); c == 0 || c > size/4 {
				t.Fatalf("write chunk %d with window %d", c, tx.win)
			}
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
				w0 := tx.win
				if err := tx.observe(flags>>4&15, v, win); err != nil {
					txDead = true
				} else if tx.flags&fAbort == 0 && (tx.free() > size || tx.prod-tx.cons > size) {
					t.Fatalf("accepted consumer cursor %d with producer at %d", tx.cons, tx.prod)
				} else if tx.flags&fAbort == 0 && (tx.win < w0 || tx.win > size) {
					t.Fatalf("accepted window %d after %d in a %d-byte ring", tx.win, w0, size)
				}
			}
		}
	})
}
