package shm

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"testing"
	"time"
)

// pattern returns n bytes that differ with their position in the stream from off, so
// that a byte written at the wrong ring offset shows.
func pattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + i) % 251)
	}
	return b
}

// windowSizes are writes that stop short of, at and just past a window's edge, then
// run through every window size to the whole ring and around it many times.
var windowSizes = []int{1, firstWindow - 2, 1, firstWindow, 3*firstWindow + 1, 100, 64<<10 + 3, 1 << 20}

// TestWindowData sends data through rings whose windows grow under it, with Write and
// Read, and with ReadFrom and WriteTo, which copy straight from and into the ring: the
// data must arrive intact and the receiver's window end as the whole ring.
func TestWindowData(t *testing.T) {
	forEachPairKind(t, func(t *testing.T, pair pairFunc) {
		for _, direct := range []bool{false, true} {
			t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
				defer checkLeaks(t)()
				a, b := pair(t, 16<<10, 64<<10)
				a.SetDeadline(time.Now().Add(time.Minute))
				b.SetDeadline(time.Now().Add(time.Minute))
				total := 0
				for _, n := range windowSizes {
					total += n
				}
				go func() {
					off := 0
					for _, n := range windowSizes {
						var err error
						if direct {
							_, err = a.ReadFrom(bytes.NewReader(pattern(off, n)))
						} else {
							_, err = a.Write(pattern(off, n))
						}
						if err != nil {
							t.Error(err)
							return
						}
						off += n
					}
					a.CloseWrite()
				}()
				var got bytes.Buffer
				if direct {
					if _, err := b.WriteTo(&got); err != nil {
						t.Fatal(err)
					}
				} else {
					if _, err := io.CopyBuffer(&got, struct{ io.Reader }{b}, make([]byte, 1500)); err != nil {
						t.Fatal(err)
					}
				}
				if got.Len() != total || !bytes.Equal(got.Bytes(), pattern(0, total)) {
					t.Fatalf("received %d bytes, want %d: data differs", got.Len(), total)
				}
				if b.rx.win != b.rx.size {
					t.Errorf("receiver's window is %d after %d bytes, want the whole ring (%d)", b.rx.win, total, b.rx.size)
				}
				a.Close()
				b.Close()
			})
		}
	})
}

// TestWindowEdgeWakes parks a writer at the window's edge, and checks that a reader
// that only looks (a Read of nothing, which consumes nothing and so does not wake the
// writer as consuming does) wakes it by growing the window.
func TestWindowEdgeWakes(t *testing.T) {
	forEachPairKind(t, func(t *testing.T, pair pairFunc) {
		defer checkLeaks(t)()
		a, b := pair(t, 64<<10, 64<<10)
		msg := pattern(0, firstWindow+100)
		done := make(chan error, 1)
		go func() {
			a.SetWriteDeadline(time.Now().Add(20 * time.Second))
			_, err := a.Write(msg)
			done <- err
		}()
		waitFor(t, "the writer to sleep at the window's edge", func() bool {
			return b.rxh.prodCtl.sleep.Load() != 0 && b.rxh.prod.cursor.Load() == firstWindow
		})
		if _, err := b.Read(nil); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("writer at the window's edge: %v", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatal("data differs")
		}
		a.Close()
		b.Close()
	})
}

// TestWindowResidency checks what a stream keeps resident of its own ring: a small
// exchange leaves the first window only, a bulk transfer the whole ring, and once the
// stream closed and its slot is free, the first window only again.
func TestWindowResidency(t *testing.T) {
	const size = 64 << 10
	// The endpoint stays open, so that the link outlives both streams (a link of a
	// closed endpoint ends, and unmaps its segments, as soon as it has no slot in use),
	// and the freed slot's ring can still be looked at.
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, b := pairOn(t, e, ProcessID(), size, size)
	a.local.Store(nil)
	b.local.Store(nil)
	msg := pattern(0, 64)
	for _, dir := range [][2]*Stream{{a, b}, {b, a}} {
		if _, err := dir[0].Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(dir[1], make([]byte, len(msg))); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*Stream{a, b} {
		if got := resident(t, s.rxRing); got != firstWindow/4096 {
			t.Fatalf("after 64 bytes each way: %d of the ring's pages resident, want %d", got, firstWindow/4096)
		}
	}
	go func() {
		a.Write(make([]byte, 1<<20))
		a.Close()
	}()
	if _, err := io.Copy(io.Discard, b); err != nil {
		t.Fatal(err)
	}
	if got := resident(t, b.rxRing); got != size/4096 {
		t.Fatalf("after 1 MiB: %d of the ring's pages resident, want all %d", got, size/4096)
	}
	g, i, l := b.own, b.ownIdx, b.link
	b.Close()
	waitFor(t, "the slot to be freed", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return g.slots[i].state == slotFree
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if got := resident(t, g.ring(i)); got != firstWindow/4096 {
		t.Fatalf("slot freed: %d of the ring's pages resident, want %d", got, firstWindow/4096)
	}
}

// TestHostileWindow lets the hostile end h publish window values in the ring its victim
// v writes into: a window that shrinks is a violation; no window (0) stalls the victim's
// writes until their deadline, like a peer that does not read; a window beyond the ring
// is clamped to the ring.
func TestHostileWindow(t *testing.T) {
	const size = 64 << 10
	for _, w := range []uint32{firstWindow / 2, 0} {
		t.Run(fmt.Sprintf("shrinks to %d", w), func(t *testing.T) {
			v, h := socketPair(t, size, size)
			v.SetDeadline(time.Now().Add(5 * time.Second))
			if err := write(v); err != nil {
				t.Fatal(err)
			}
			h.rxh.consCtl.window.Store(w)
			if err := write(v); !isViolation(err) {
				t.Fatalf("victim: %v, want a protocol violation", err)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		v, h := socketPair(t, size, size)
		h.rxh.consCtl.window.Store(0)
		v.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := v.Write(make([]byte, 10)); n != 0 || !isTimeout(err) {
			t.Fatalf("Write with no window = %d, %v; want 0, timeout", n, err)
		}
		h.rxh.consCtl.window.Store(firstWindow) // the owner makes amends
		v.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := write(v); err != nil {
			t.Fatalf("Write once the window opened: %v", err)
		}
	})
	t.Run("beyond the ring", func(t *testing.T) {
		v, h := socketPair(t, size, size)
		h.rxh.consCtl.window.Store(math.MaxUint32)
		v.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := v.Write(make([]byte, 2*size)); n != size || !isTimeout(err) {
			t.Fatalf("Write = %d, %v; want %d (the ring), timeout", n, err, size)
		}
		if v.tx.win != size {
			t.Fatalf("window %d, want it clamped to %d", v.tx.win, size)
		}
	})
	t.Run("producer beyond the window", func(t *testing.T) {
		v, h := socketPair(t, size, size)
		h.txh.prod.cursor.Store(firstWindow + 1)
		v.SetDeadline(time.Now().Add(5 * time.Second))
		if err := read(v); !isViolation(err) {
			t.Fatalf("victim: %v, want a protocol violation", err)
		}
	})
}

// BenchmarkFirstLap measures a ring's first lap on a new stream, where the window grows
// under the writer, against its second: 64 KiB written (in writes of a quarter ring)
// and read, through a 64 KiB ring, reported as first-ns and second-ns per lap.
func BenchmarkFirstLap(b *testing.B) {
	const size = 64 << 10
	msg := make([]byte, size)
	got := make([]byte, size)
	var first, second time.Duration
	var wakes [2]uint64
	lap := func(x, y *Stream, wakes *uint64) time.Duration {
		w0 := ReadCounters().WakeupsSent
		start := time.Now()
		go x.Write(msg)
		if _, err := io.ReadFull(y, got); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		*wakes += ReadCounters().WakeupsSent - w0
		return d
	}
	for b.Loop() {
		x, y := socketPair(b, size, size)
		first += lap(x, y, &wakes[0])
		second += lap(x, y, &wakes[1])
		x.Close()
		y.Close()
	}
	b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "first-ns")
	b.ReportMetric(float64(second.Nanoseconds())/float64(b.N), "second-ns")
	b.ReportMetric(float64(wakes[0])/float64(b.N), "first-wakes")
	b.ReportMetric(float64(wakes[1])/float64(b.N), "second-wakes")
}
