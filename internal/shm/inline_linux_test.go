package shm

import (
	"bytes"
	"io"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inlineCopies reports whether producers on this architecture make inline copies (see
// storeInline); elsewhere every read comes from the ring.
const inlineCopies = runtime.GOARCH == "amd64"

// inlineBytes returns the inline area of l as bytes.
func inlineBytes(l *cursorLine) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&l.inline)), inlineMax)
}

// TestInlineLengths writes every length from 1 to inlineMax+1, enough of them to cross
// the ring's wrap twice, and reads each back whole and in parts. After each write the
// test overwrites the bytes in the receiver's ring: a read then returns the written
// bytes only if it took them from the inline copy, and the overwritten ones if it read
// the ring, as it must for a write longer than inlineMax.
func TestInlineLengths(t *testing.T) {
	for _, parts := range []int{1, 3} {
		a, b := pair(t, MinRingSize, MinRingSize)
		var seed int
		for range 2 {
			for n := 1; n <= inlineMax+1; n++ {
				seed++
				p := pattern(seed*17, n)
				if _, err := a.Write(p); err != nil {
					t.Fatal(err)
				}
				scribbled := make([]byte, n)
				for i := range n {
					off := (b.rx.cons + uint64(i)) & uint64(MinRingSize-1)
					b.rxRing[off] ^= 0xff
					scribbled[i] = b.rxRing[off]
				}
				want := p
				if !inlineCopies || n > inlineMax {
					want = scribbled
				}
				got := make([]byte, 0, n)
				for len(got) < n {
					buf := make([]byte, max(1, n/parts))
					k, err := b.Read(buf[:min(len(buf), n-len(got))])
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, buf[:k]...)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("parts %d, length %d: read %x, want %x (written %x)", parts, n, got, want, p)
				}
			}
		}
	}
}

// TestInlineFallback checks that a reader takes the ring whenever the inline copy is not
// that of what it reads: a copy torn by the producer's next write (its tag already
// changed), a stale one (of an earlier write), one that covers less than the unread
// bytes, and a hostile length. An honest peer's bytes are always read right.
func TestInlineFallback(t *testing.T) {
	tests := []struct {
		name string
		// write writes through the producer a; evil then changes the inline area of
		// the producer line as a peer may.
		write func(a *Stream) []byte
		evil  func(l *cursorLine)
	}{
		{"torn by the next write", func(a *Stream) []byte {
			p := pattern(17, 64)
			a.Write(p)
			return p
		}, func(l *cursorLine) {
			l.tag.Store(l.cursor.Load() + 10) // the next write began its copy
			copy(inlineBytes(l), pattern(153, inlineMax))
		}},
		{"stale after a long write", func(a *Stream) []byte {
			p, q := pattern(17, 10), pattern(34, inlineMax+50)
			a.Write(p)
			a.Write(q)
			return append(p, q...)
		}, nil},
		{"two writes unread", func(a *Stream) []byte {
			p, q := pattern(17, 10), pattern(34, 20)
			a.Write(p)
			a.Write(q)
			return append(p, q...)
		}, nil},
		{"length beyond the area", func(a *Stream) []byte {
			p := pattern(17, 64)
			a.Write(p)
			return p
		}, func(l *cursorLine) { l.length.Store(1 << 31) }},
		{"length shorter than the write", func(a *Stream) []byte {
			p := pattern(17, 64)
			a.Write(p)
			return p
		}, func(l *cursorLine) { l.length.Store(32) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pair(t, MinRingSize, MinRingSize)
			want := tt.write(a)
			if tt.evil != nil {
				tt.evil(&a.txh.prod)
			}
			got := make([]byte, len(want))
			if _, err := io.ReadFull(b, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %x, want %x", got, want)
			}
		})
	}
}

// TestInlineHostile lets the producer's line claim a copy of exactly the unread bytes
// with arbitrary contents: the reader returns those bytes (the peer could have written
// them into the ring), from the right offset of the area, and goes on. (Where producers
// make no inline copies, the tag of the ring's first write never matches.)
func TestInlineHostile(t *testing.T) {
	a, b := pair(t, MinRingSize, MinRingSize)
	written := pattern(17, 40)
	a.Write(written)
	l := &a.txh.prod
	evil := pattern(100, inlineMax)
	copy(inlineBytes(l), evil)
	l.length.Store(inlineMax)
	got := make([]byte, 40)
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	want := evil[inlineMax-40:]
	if !inlineCopies {
		want = written // the tag never matches: the reader reads the ring
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %x, want %x", got, want)
	}
	p := pattern(51, 30)
	a.Write(p)
	if _, err := io.ReadFull(b, got[:30]); err != nil || !bytes.Equal(got[:30], p) {
		t.Fatalf("next read %x, %v, want %x", got[:30], err, p)
	}
}

// FuzzLoadInline feeds loadInline arbitrary line words and reader positions: it never
// panics, and when it takes the copy, b holds the area's bytes that end where the tag's
// write ends.
func FuzzLoadInline(f *testing.F) {
	f.Add(uint64(64), uint32(64), uint64(0), uint64(64), 64, []byte("abc"))
	f.Add(uint64(100), uint32(96), uint64(90), uint64(100), 5, []byte{1, 2, 3})
	f.Add(uint64(100), uint32(1<<31), uint64(0), uint64(100), 100, []byte{})
	f.Add(uint64(1<<63), uint32(8), ^uint64(0), uint64(1<<63), 1, []byte{9})
	f.Fuzz(func(t *testing.T, tag uint64, length uint32, cons, prod uint64, blen int, area []byte) {
		if blen < 0 || blen > 1<<12 {
			return
		}
		var l cursorLine
		l.tag.Store(tag)
		l.length.Store(length)
		copy(inlineBytes(&l), area)
		b := make([]byte, blen)
		if !l.loadInline(b, cons, prod) {
			return
		}
		n, unread := uint64(length), prod-cons
		if tag != prod || n > inlineMax || unread > n || uint64(blen) > unread {
			t.Fatalf("took a copy with tag %d length %d for [%d, %d) and %d bytes", tag, length, cons, prod, blen)
		}
		if want := inlineBytes(&l)[n-unread:][:blen]; !bytes.Equal(b, want) {
			t.Fatalf("copied %x, want %x", b, want)
		}
	})
}

// TestInlineTorn has a producer rewrite the inline copy of one line as fast as it can
// while a reader takes copies from it: every copy the reader takes is whole, the bytes
// of the write its tag names. The line is in memory outside Go's heap, as a slot is.
func TestInlineTorn(t *testing.T) {
	if !inlineCopies {
		t.Skip("no inline copies on " + runtime.GOARCH)
	}
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	l := (*cursorLine)(unsafe.Pointer(&mem[0]))
	const writes, n = 200000, 64
	done := make(chan struct{})
	go func() {
		defer close(done)
		p := make([]byte, n)
		for end := uint64(n); end <= writes*n; end += n {
			for i := range p {
				p[i] = byte(end / n)
			}
			storeInline(l, end, p)
			l.cursor.Store(end)
		}
	}()
	defer func() { <-done }() // before the unmap, also when the test fails
	b := make([]byte, n)
	for {
		select {
		case <-done:
			return
		default:
		}
		prod := l.cursor.Load()
		if prod == 0 || !l.loadInline(b, prod-n, prod) {
			continue
		}
		for _, c := range b {
			if c != byte(prod/n) {
				t.Fatalf("copy of the write ending at %d holds %x", prod, b)
			}
		}
	}
}
