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
				err = r.observe(o.flags, o.prod, 0)
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
			if err := r.observe(0, tt.prod, 0); (err == nil) != tt.ok {
				t.Fatalf("observe = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestRxCursorWrap: the producer's wrap is a power of two within our window, declared
// once; from then on it is the ring both sides wrap at.
func TestRxCursorWrap(t *testing.T) {
	const size = 64 << 10
	type obs struct {
		prod uint64
		wrap uint32
	}
	tests := []struct {
		name     string
		win      uint64
		cons     uint64 // where both cursors start
		seq      []obs
		ok       bool
		wantSize uint64
	}{
		{"none", 8192, 0, []obs{{100, 0}}, true, size},
		{"at the window", 8192, 0, []obs{{8192, 8192}}, true, 8192},
		{"below the window", 16384, 0, []obs{{4096, 8192}}, true, 8192},
		{"then wraps", 8192, 4096, []obs{{8192, 8192}, {4096 + 8192, 8192}}, true, 8192},
		{"wrapped beyond it", 8192, 4096, []obs{{8192, 8192}, {4096 + 8193, 8192}}, false, 0},
		{"beyond the window", 8192, 0, []obs{{100, 16384}}, false, 0},
		{"not a power of two", 16384, 0, []obs{{100, 12288}}, false, 0},
		{"changed", 16384, 0, []obs{{100, 8192}, {100, 16384}}, false, 0},
		{"withdrawn", 16384, 0, []obs{{100, 8192}, {100, 0}}, false, 0},
		{"less than what is unread", 16384, 0, []obs{{8192, 4096}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rxCursor{size: size, win: tt.win, cons: tt.cons, prod: tt.cons}
			var err error
			for i, o := range tt.seq {
				err = r.observe(0, o.prod, o.wrap)
				if i < len(tt.seq)-1 && err != nil {
					t.Fatalf("observation %d: %v", i, err)
				}
			}
			if (err == nil) != tt.ok {
				t.Fatalf("observe = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && r.size != tt.wantSize {
				t.Fatalf("ring size %d after the observations, want %d", r.size, tt.wantSize)
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
		{"window not a power of two", 100, 1024, 0, 100, 3072, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := txCursor{size: size, prod: tt.prod, win: tt.prevWin}
			err := c.observe(tt.flags, tt.cons, tt.win, func(int64) bool { return true })
			if (err == nil) != tt.ok {
				t.Fatalf("observe = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && c.free() != tt.wantFree {
				t.Fatalf("free = %d, want %d", c.free(), tt.wantFree)
			}
		})
	}
}

// TestTxCursorFreeze: a growth of the window that the cap on peer memory refuses, or a
// window the owner marked final, freezes the cursor at the window it accepted, which
// becomes the ring it wraps at; what was refused is not counted.
func TestTxCursorFreeze(t *testing.T) {
	const size = 64 << 10
	tests := []struct {
		name       string
		win        uint32 // the window word
		capacity   int64  // what the cap on peer memory still allows
		wantWin    uint64
		wantFrozen bool
		wantCount  int64
	}{
		{"growth counted", 8192, 1 << 20, 8192, false, 4096},
		{"growth refused", 8192, 4095, 4096, true, 0},
		{"final", 4096 | winFinal, 0, 4096, true, 0},
		{"grown and final", 8192 | winFinal, 1 << 20, 8192, true, 4096},
		{"final at the whole ring", size | winFinal, 1 << 20, size, false, size - 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The producer wrote its whole first window; the consumer read 1000 bytes.
			c := txCursor{size: size, prod: 4096, win: 4096}
			var counted int64
			count := func(n int64) bool {
				if n > tt.capacity {
					return false
				}
				counted += n
				return true
			}
			if err := c.observe(0, 1000, tt.win, count); err != nil {
				t.Fatal(err)
			}
			if c.win != tt.wantWin || c.frozen != tt.wantFrozen || counted != tt.wantCount {
				t.Fatalf("window %d, frozen %v, counted %d; want %d, %v, %d",
					c.win, c.frozen, counted, tt.wantWin, tt.wantFrozen, tt.wantCount)
			}
			if !c.frozen {
				return
			}
			// Frozen: the window is the ring, the producer wraps at it.
			if c.size != c.win || c.free() != c.win-(4096-1000) {
				t.Fatalf("frozen at %d: ring %d, free %d", c.win, c.size, c.free())
			}
			if err := c.observe(0, 4096, uint32(size), count); err != nil || c.win != tt.wantWin || counted != tt.wantCount {
				t.Fatalf("a later growth was taken (%v): window %d, counted %d", err, c.win, counted)
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
		tx := txCursor{size: size, win: size / 8}
		rxDead, txDead := false, false
		for len(data) >= 12 {
			flags, local := uint32(data[0]), data[1]
			win := uint32(binary.LittleEndian.Uint16(data[2:4]))
			// local's top bits: the window is final, the producer declares win as its
			// wrap, the cap on peer memory refuses a growth.
			wrap := uint32(0)
			if local&0x40 != 0 {
				wrap = win
			}
			if local&0x80 != 0 {
				win |= winFinal
			}
			capped := local&0x20 != 0
			v := binary.LittleEndian.Uint64(data[4:12])
			data = data[12:]
			// Local progress: consume some of what is available, produce some into free
			// space, grow the receiver's window as its owner does once it is filled.
			r.cons += uint64(local) % (r.avail() + 1)
			if r.win < size && r.prod >= r.win/2 {
				r.win *= 2
			}
			tx.prod += uint64(local) % (tx.free() + 1)
			if !tx.frozen && tx.win < size && tx.prod > tx.win {
				t.Fatalf("produced to %d beyond the window of %d", tx.prod, tx.win)
			}
			if tx.size > size || tx.size&(tx.size-1) != 0 || tx.frozen && tx.size != tx.win {
				t.Fatalf("producer wraps at %d (window %d, frozen %v) in a %d-byte ring", tx.size, tx.win, tx.frozen, size)
			}
			if c := tx.chunk(); c == 0 || c > size/4 {
				t.Fatalf("write chunk %d with window %d", c, tx.win)
			}
			if !rxDead {
				before := r
				if err := r.observe(flags&15, v, wrap); err != nil {
					rxDead = true
					if r != before {
						t.Fatalf("rejected observation changed the state: %+v -> %+v", before, r)
					}
				} else if r.flags&fAbort == 0 && (r.avail() > r.size || r.size > size || r.size&(r.size-1) != 0) {
					t.Fatalf("accepted %d unread bytes in a %d-byte ring (of %d)", r.avail(), r.size, size)
				}
			}
			if !txDead {
				w0 := tx.win
				if err := tx.observe(flags>>4&15, v, win, func(int64) bool { return !capped }); err != nil {
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
