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
// v writes into: a window that shrinks (to nothing, or below the first window it
// published before the stream started) or that is not a power of two is a violation; a
// window beyond the ring is clamped to the ring.
func TestHostileWindow(t *testing.T) {
	const size = 64 << 10
	for _, w := range []uint32{firstWindow / 2, 3 * firstWindow} {
		t.Run(fmt.Sprintf("window %d", w), func(t *testing.T) {
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
		v.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := v.Write(make([]byte, 10)); !isViolation(err) {
			t.Fatalf("Write with no window: %v, want a protocol violation", err)
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
	for _, wrap := range []uint32{2 * firstWindow, 3 * firstWindow / 4} {
		t.Run(fmt.Sprintf("producer wraps at %d", wrap), func(t *testing.T) {
			// Beyond the victim's window, or not a power of two.
			v, h := socketPair(t, size, size)
			h.txh.prodCtl.window.Store(wrap)
			v.SetDeadline(time.Now().Add(5 * time.Second))
			if err := read(v); !isViolation(err) {
				t.Fatalf("victim: %v, want a protocol violation", err)
			}
		})
	}
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

// TestWindowGrowsWithoutReads: a writer may fill the whole ring while the owner is not
// reading, as a TCP sender fills the socket buffers of a peer that is busy elsewhere.
// The owner grows its window when the writer asks, not only when it reads; before, a
// writer that reached the first window stopped there until the owner read, and an
// echo peer with a client that writes its whole request before reading the answer
// deadlocked, both sides blocked in Write.
func TestWindowGrowsWithoutReads(t *testing.T) {
	forEachPairKind(t, func(t *testing.T, pair pairFunc) {
		t.Run("fill", func(t *testing.T) {
			defer checkLeaks(t)()
			a, b := pair(t, 64<<10, 64<<10)
			defer a.Close()
			defer b.Close()
			a.SetWriteDeadline(time.Now().Add(10 * time.Second))
			msg := pattern(0, 64<<10)
			if n, err := a.Write(msg); err != nil {
				t.Fatalf("a write of the whole ring, the owner not reading: %d bytes, %v", n, err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("read back: %v (data equal: %v)", err, bytes.Equal(got, msg))
			}
		})
		t.Run("echo", func(t *testing.T) {
			defer checkLeaks(t)()
			a, b := pair(t, 64<<10, 64<<10)
			defer a.Close()
			defer b.Close()
			a.SetDeadline(time.Now().Add(10 * time.Second))
			b.SetDeadline(time.Now().Add(10 * time.Second))
			go func() { // echo what arrives, as it arrives
				buf := make([]byte, 8<<10)
				for {
					n, err := b.Read(buf)
					if err != nil {
						return
					}
					if _, err := b.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			requestThenEcho(t, a, 48<<10)
		})
	})
}

// TestWindowGrowsWithoutReadsProcess is TestWindowGrowsWithoutReads's echo between two
// processes: the request, written whole before the answer is read, must come back.
func TestWindowGrowsWithoutReadsProcess(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, cmd := startChild(t, e, "echo", 64<<10)
	defer cmd.Wait()
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	requestThenEcho(t, s, 48<<10)
}

// requestThenEcho writes a request of n bytes whole before it reads the answer from c,
// whose peer echoes what arrives, and checks that the echo is the request.
func requestThenEcho(t *testing.T, c *Stream, n int) {
	t.Helper()
	msg := pattern(0, n)
	if n, err := c.Write(msg); err != nil {
		t.Fatalf("the whole request before reading the answer: %d bytes, %v", n, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("the echo: %v (data equal: %v)", err, bytes.Equal(got, msg))
	}
}

// TestWindowGrowRequests: however often a peer asks, the window grows to the ring and
// no further, and a closed stream's window does not grow.
func TestWindowGrowRequests(t *testing.T) {
	defer checkLeaks(t)()
	a, b := pair(t, 16<<10, 16<<10)
	for range 10 {
		b.growRequested()
	}
	if w := b.rxh.consCtl.window.Load(); w != 16<<10 || b.win.Load() != 16<<10 {
		t.Errorf("window after 10 requests: published %d, recorded %d, want the ring, %d", w, b.win.Load(), 16<<10)
	}
	a.Close()
	b.Close()
	a.growRequested()
	if w := a.win.Load(); w != firstWindow {
		t.Errorf("a closed stream's window grew to %d", w)
	}
}

// TestWindowGrownOnRequestReleased: a window that grew at the writer's request, the
// owner never having read since, is returned on release like one that grew on reads:
// the freed slot keeps only its first window resident, and its ring reads as zeros.
func TestWindowGrownOnRequestReleased(t *testing.T) {
	const size = 64 << 10
	e, err := Listen(Config{}) // kept open: the link outlives the streams (see TestWindowResidency)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, b := pairOn(t, e, ProcessID(), size, size)
	a.local.Store(nil)
	b.local.Store(nil)
	a.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Write(pattern(1, size)); err != nil { // b never reads
		t.Fatal(err)
	}
	if got := resident(t, b.rxRing); got != size/4096 {
		t.Fatalf("after a whole ring unread: %d of the ring's pages resident, want all %d", got, size/4096)
	}
	g, i, l := b.own, b.ownIdx, b.link
	a.Close()
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
	if !bytes.Equal(g.ring(i), make([]byte, size)) {
		t.Fatal("slot freed: its ring still holds bytes of the stream that used it")
	}
}

// transfer writes n bytes of pattern from a to b, b reading as they come, and checks
// that they arrive intact.
func transfer(t *testing.T, a, b *Stream, n int) {
	t.Helper()
	a.SetDeadline(time.Now().Add(time.Minute))
	b.SetDeadline(time.Now().Add(time.Minute))
	errc := make(chan error, 1)
	go func() {
		_, err := a.Write(pattern(0, n))
		errc <- err
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pattern(0, n)) {
		t.Fatal("data differs")
	}
}

// TestWindowBound: a window growth that would cross the process bound does not
// happen, and the stream goes on within the window it has: the owner marks it final,
// the writer wraps at it, and every byte arrives. The bound is never crossed, and the
// stream never fails for it.
func TestWindowBound(t *testing.T) {
	forEachPairKind(t, func(t *testing.T, pair pairFunc) {
		defer checkLeaks(t)()
		quiesce(t)
		a, b := pair(t, 64<<10, 64<<10)
		defer a.Close()
		defer b.Close()
		limit := MemoryInUse() // nothing more fits (unless earlier tests' links end meanwhile)
		defer SetMemoryLimit(SetMemoryLimit(limit))
		transfer(t, a, b, 1<<20)
		w := b.win.Load()
		if w == 64<<10 || !b.final {
			t.Errorf("the owner's window grew to %d beyond the bound (final: %v)", w, b.final)
		}
		if !a.tx.frozen || a.tx.size != w || b.rx.size != w {
			t.Errorf("writer frozen %v, wraps at %d, reader wraps at %d; want both at the owner's window %d",
				a.tx.frozen, a.tx.size, b.rx.size, w)
		}
		if got := MemoryInUse(); got > limit {
			t.Errorf("%d bytes in use, beyond the bound of %d", got, limit)
		}
		// The other direction was not held back: the bound allows its growth again.
		SetMemoryLimit(DefaultMemoryLimit)
		transfer(t, b, a, 1<<20)
		if w := a.win.Load(); w != 64<<10 {
			t.Errorf("within the bound the window grew to %d, want the ring", w)
		}
	})
}

// TestPeerCapRefusesGrowth: a writer counts the peer's window as it accepts it, against
// the cap on peer memory; a growth the cap does not allow is taken as no growth: the
// writer wraps at the window it accepted, declares it, and the owner reads there. The
// data arrives intact and the count of peer memory does not move.
func TestPeerCapRefusesGrowth(t *testing.T) {
	forEachPairKind(t, func(t *testing.T, pair pairFunc) {
		defer checkLeaks(t)()
		a, b := pair(t, 64<<10, 64<<10)
		defer a.Close()
		defer b.Close()
		// Own memory may grow, peer memory is at the cap.
		limit := max(MemoryInUse(), ReadCounters().PeerMemory) + 4<<20
		defer SetMemoryLimit(SetMemoryLimit(limit))
		fill := limit - peerUsed.Add(0)
		peerUsed.Add(fill)
		defer peerUsed.Add(-fill)
		transfer(t, a, b, 1<<20)
		if !a.tx.frozen || a.tx.win != firstWindow || b.rx.wrap != firstWindow || b.rx.size != firstWindow {
			t.Errorf("writer frozen %v at %d, reader's wrap %d (ring %d); want both at the first window %d",
				a.tx.frozen, a.tx.win, b.rx.wrap, b.rx.size, firstWindow)
		}
		if got := ReadCounters().PeerMemory; got != limit {
			t.Errorf("peer memory %d, want it held at the cap %d", got, limit)
		}
	})
}
