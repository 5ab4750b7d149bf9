package shm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns two connected streams in this process, both over real memfds exchanged
// through a real Endpoint over a new link: a is the server side (ring aSize), b the
// client (ring bSize).
func pair(t testing.TB, aSize, bSize int) (a, b *Stream) {
	t.Helper()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	return pairOn(t, e, ProcessID(), aSize, bSize)
}

// pairOn is pair through endpoint e, for client peer: over the link e has with it, if
// any.
func pairOn(t testing.TB, e *Endpoint, peer PeerID, aSize, bSize int) (a, b *Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := e.Offer(ctx, peer, aSize, MaxRingSize)
	if err != nil {
		t.Fatal(err)
	}
	a, b, err = bindPair(ctx, "", o, bSize, MaxRingSize)
	if err != nil {
		t.Fatalf("pair: %v", err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// socketPair is pair without the in-process shortcut: wake-ups travel over the link's
// socket and its reader, as between two processes.
func socketPair(t testing.TB, aSize, bSize int) (a, b *Stream) {
	t.Helper()
	a, b = pair(t, aSize, bSize)
	if a.local.Load() != b || b.local.Load() != a {
		t.Fatal("pair: the two ends did not link in-process")
	}
	a.local.Store(nil)
	b.local.Store(nil)
	return a, b
}

// bindPair does with offer o what the two handshakes do: the client's Connect with
// the Accept's link ID, token and ring size (its own ring of size bytes, the server's
// at most maxPeer), then the server's Bind of the slot the client's Confirm names.
// The offer is consumed either way.
func bindPair(ctx context.Context, dir string, o *Offer, size, maxPeer int) (server, client *Stream, err error) {
	c, err := Connect(ctx, dir, o.LinkID(), o.Token(), size, o.size, maxPeer)
	if err != nil {
		o.Cancel()
		return nil, nil, err
	}
	s, err := o.Bind(c.Token(), c.RingSize())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return s, c, nil
}

type pairFunc func(t testing.TB, aSize, bSize int) (a, b *Stream)

// pairKinds names both ways two streams in this process can wake each other.
var pairKinds = []struct {
	name string
	make pairFunc
}{{"local", pair}, {"socket", socketPair}}

// forEachPairKind runs test once per pair kind, as a subtest, passing it that kind's pair.
func forEachPairKind(t *testing.T, test func(t *testing.T, pair pairFunc)) {
	for _, k := range pairKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k.make) })
	}
}

func TestRoundTrip(t *testing.T) { forEachPairKind(t, testRoundTrip) }

func testRoundTrip(t *testing.T, pair pairFunc) {
	defer checkLeaks(t)()
	a, b := pair(t, 64<<10, 16<<10)
	for _, n := range []int{1, 100, 16 << 10, 100 << 10, 1 << 20} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		go func() {
			if _, err := a.Write(msg); err != nil {
				t.Error(err)
			}
		}()
		got := make([]byte, n)
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: data differs", n)
		}
	}
	a.Close()
	b.Close()
}

// checkLeaks records the open fds and mappings and returns a function that fails the
// test if they did not return to their start.
func checkLeaks(t *testing.T) func() {
	fds0, maps0 := countFDs(t), countMaps(t)
	return func() {
		t.Helper()
		var fds, maps int
		for range 100 {
			fds, maps = countFDs(t), countMaps(t)
			if fds <= fds0 && maps <= maps0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("leak: %d fds (was %d), %d mappings (was %d)", fds, fds0, maps, maps0)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func countMaps(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "smc-dmb")
}

func TestPartialRead(t *testing.T) { forEachPairKind(t, testPartialRead) }

func testPartialRead(t *testing.T, pair pairFunc) {
	a, b := pair(t, MinRingSize, MinRingSize)
	if _, err := a.Write([]byte("hello, world")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	var got []byte
	for len(got) < 12 {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > len(buf) || n == 0 {
			t.Fatalf("Read returned %d", n)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "hello, world" {
		t.Fatalf("got %q", got)
	}
	if n, err := b.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

func TestCloseWriteEOF(t *testing.T) { forEachPairKind(t, testCloseWriteEOF) }

func testCloseWriteEOF(t *testing.T, pair pairFunc) {
	a, b := pair(t, MinRingSize, MinRingSize)
	msg := bytes.Repeat([]byte("x"), 3*MinRingSize) // more than the ring: EOF must follow all of it
	go func() {
		a.Write(msg)
		a.CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("ReadAll = %d bytes, %v; want %d bytes, nil", len(got), err, len(msg))
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v", n, err)
	}
	if _, err := a.Write([]byte("late")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write after CloseWrite: %v, want EPIPE", err)
	}
	// The other direction still works.
	if _, err := b.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "reply" {
		t.Fatalf("reply: %q, %v", buf, err)
	}
	// CloseRead: later Reads see EOF, the peer's Writes fail with EPIPE.
	if err := a.CloseRead(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(buf); err != io.EOF {
		t.Fatalf("Read after CloseRead: %v", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write to a peer that closed reading: %v, want EPIPE", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

func TestDeadlines(t *testing.T) { forEachPairKind(t, testDeadlines) }

func testDeadlines(t *testing.T, pair pairFunc) {
	a, b := pair(t, MinRingSize, MinRingSize)
	buf := make([]byte, 10)

	// Past deadline: immediate timeout even with data available.
	a.Write([]byte("data"))
	b.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := b.Read(buf); !isTimeout(err) {
		t.Fatalf("Read with past deadline: %v", err)
	}
	// Future deadline on an empty ring.
	b.SetReadDeadline(time.Time{})
	if n, err := b.Read(buf); n != 4 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	b.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := b.Read(buf); !isTimeout(err) {
		t.Fatalf("Read past deadline: %v", err)
	}
	if _, ok := func() (net.Error, bool) {
		_, err := b.Read(buf)
		ne, ok := err.(net.Error)
		return ne, ok && ne.Timeout()
	}(); !ok {
		t.Fatal("timeout error is not a net.Error itself")
	}
	// Moving the deadline while a Read is blocked applies to it.
	b.SetReadDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() { _, err := b.Read(buf); done <- err }()
	time.Sleep(20 * time.Millisecond)
	b.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		if !isTimeout(err) {
			t.Fatalf("blocked Read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Read ignored the new deadline")
	}
	// Write deadline with a full ring: exactly the ring size gets written.
	b.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
	n, err := b.Write(make([]byte, 2*MinRingSize))
	if !isTimeout(err) || n != MinRingSize {
		t.Fatalf("Write into a full ring = %d, %v; want %d, timeout", n, err, MinRingSize)
	}
}

// TestDeadlinePassesWithData checks the deadline check of a Read or Write that does not
// wait: a deadline that passes later (recorded by its timer, not read from the clock
// on every call) fails the call even with data or space available, a deadline moved
// into the future lets it proceed again, and Close stops the timers.
func TestDeadlinePassesWithData(t *testing.T) { forEachPairKind(t, testDeadlinePassesWithData) }

func testDeadlinePassesWithData(t *testing.T, pair pairFunc) {
	a, b := pair(t, MinRingSize, MinRingSize)
	buf := make([]byte, 10)
	if _, err := a.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, rerr := b.Read(buf[:0]) // a zero-length Read consumes nothing
		_, werr := a.Write(nil)
		if isTimeout(rerr) && isTimeout(werr) {
			break
		}
		if rerr != nil && !isTimeout(rerr) || werr != nil && !isTimeout(werr) {
			t.Fatalf("Read, Write after the deadline: %v, %v", rerr, werr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Read, Write 5 s after the deadline: %v, %v; want timeouts", rerr, werr)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := b.Read(buf); !isTimeout(err) {
		t.Fatalf("Read with data after the deadline: %v, want a timeout", err)
	}
	b.SetReadDeadline(time.Now().Add(time.Hour))
	a.SetWriteDeadline(time.Now().Add(time.Hour))
	if n, err := b.Read(buf); n != 4 || err != nil {
		t.Fatalf("Read after moving the deadline = %d, %v; want 4, nil", n, err)
	}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatalf("Write after moving the deadline: %v", err)
	}
	b.Close()
	a.Close()
	for _, s := range []*Stream{a, b} {
		for _, e := range []*expiry{&s.rexp, &s.wexp} {
			if e.timer != nil && e.timer.Stop() {
				t.Error("a deadline timer still ran after Close")
			}
		}
	}
}

func TestConcurrentClose(t *testing.T) { forEachPairKind(t, testConcurrentClose) }

func testConcurrentClose(t *testing.T, pair pairFunc) {
	for _, abort := range []bool{false, true} {
		a, b := pair(t, MinRingSize, MinRingSize)
		errs := make(chan error, 2)
		go func() { _, err := a.Read(make([]byte, 10)); errs <- err }()
		go func() { _, err := a.Write(make([]byte, 4*MinRingSize)); errs <- err }()
		time.Sleep(20 * time.Millisecond)
		if abort {
			a.Abort()
		} else {
			a.Close()
		}
		for range 2 {
			select {
			case err := <-errs:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("blocked call after Close: %v, want net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("blocked call did not return after Close")
			}
		}
		for _, err := range []error{
			func() error { _, err := a.Read(nil); return err }(),
			func() error { _, err := a.Write([]byte("x")); return err }(),
			a.Close(), a.Abort(), a.CloseWrite(), a.CloseRead(), a.SetDeadline(time.Now()),
		} {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("after Close: %v, want net.ErrClosed", err)
			}
		}
		b.Close()
	}
}

func TestPeerClose(t *testing.T) { forEachPairKind(t, testPeerClose) }

func testPeerClose(t *testing.T, pair pairFunc) {
	t.Run("orderly", func(t *testing.T) {
		a, b := pair(t, MinRingSize, MinRingSize)
		a.Write([]byte("last words"))
		a.Close()
		got, err := io.ReadAll(b)
		if string(got) != "last words" || err != nil {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if _, err := b.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("Write to closed peer: %v, want EPIPE", err)
		}
	})
	t.Run("abort", func(t *testing.T) {
		a, b := pair(t, MinRingSize, MinRingSize)
		a.Write([]byte("discarded"))
		errs := make(chan error, 1)
		go func() { _, err := b.Write(make([]byte, 4*MinRingSize)); errs <- err }() // blocks: a never reads
		time.Sleep(10 * time.Millisecond)
		a.Abort()
		if err := <-errs; !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("blocked Write after peer abort: %v, want ECONNRESET", err)
		}
		if _, err := b.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Read after peer abort: %v, want ECONNRESET", err)
		}
	})
	t.Run("close with unread data resets", func(t *testing.T) {
		a, b := pair(t, MinRingSize, MinRingSize)
		b.Write([]byte("never read"))
		a.Close()
		if _, err := b.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Read: %v, want ECONNRESET", err)
		}
	})
}

func TestBackpressure(t *testing.T) { forEachPairKind(t, testBackpressure) }

func testBackpressure(t *testing.T, pair pairFunc) {
	a, b := pair(t, MinRingSize, MinRingSize)
	const total = 256 * MinRingSize
	var written sync.WaitGroup
	written.Add(1)
	go func() {
		defer written.Done()
		buf := make([]byte, 3000)
		for i := 0; i < total; i += len(buf) {
			for j := range buf {
				buf[j] = byte(i + j)
			}
			if _, err := a.Write(buf[:min(len(buf), total-i)]); err != nil {
				t.Error(err)
				return
			}
		}
		a.CloseWrite()
	}()
	// Read slowly, in odd sizes; the writer must block, never overwrite.
	var off int
	buf := make([]byte, 777)
	for {
		n, err := b.Read(buf)
		for j := range n {
			if buf[j] != byte(off+j) {
				t.Fatalf("byte %d = %d, want %d", off+j, buf[j], byte(off+j))
			}
		}
		off += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if off != total {
		t.Fatalf("read %d bytes, want %d", off, total)
	}
	written.Wait()
}

func TestReaderFromWriterTo(t *testing.T) { forEachPairKind(t, testReaderFromWriterTo) }

func testReaderFromWriterTo(t *testing.T, pair pairFunc) {
	defer checkLeaks(t)()
	a, b := pair(t, MinRingSize, 64<<10)
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		if n, err := a.ReadFrom(bytes.NewReader(want)); n != int64(len(want)) || err != nil {
			t.Errorf("ReadFrom = %d, %v", n, err)
		}
		a.CloseWrite()
	}()
	var got bytes.Buffer
	if n, err := b.WriteTo(&got); n != int64(len(want)) || err != nil {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("data differs")
	}
	a.Close()
	b.Close()
}

// TestCloseDuringForeignIO checks that Close does not wait for a Reader or Writer that
// ReadFrom or WriteTo is blocked in.
func TestCloseDuringForeignIO(t *testing.T) { forEachPairKind(t, testCloseDuringForeignIO) }

func testCloseDuringForeignIO(t *testing.T, pair pairFunc) {
	defer checkLeaks(t)()
	a, d := pair(t, MinRingSize, MinRingSize)
	c, b := pair(t, MinRingSize, MinRingSize)
	pr, pw := io.Pipe()   // nobody writes pw: ReadFrom blocks in pr.Read
	pr2, pw2 := io.Pipe() // nobody reads pr2: WriteTo blocks in pw2.Write
	go a.ReadFrom(pr)
	go b.WriteTo(pw2)
	c.Write([]byte("x")) // gives b's WriteTo something to block on
	inForeign := func(s *Stream) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.foreign > 0
	}
	waitFor(t, "ReadFrom to block in r and WriteTo in w", func() bool { return inForeign(a) && inForeign(b) })
	// A Write behind the blocked ReadFrom still has its deadline.
	a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := a.Write([]byte("y")); !isTimeout(err) {
		t.Fatalf("Write behind a blocked ReadFrom: %v, want a timeout", err)
	}
	a.SetWriteDeadline(time.Time{})
	blocked := make(chan error, 1)
	go func() { _, err := a.Write([]byte("z")); blocked <- err }()
	for _, s := range []*Stream{a, b} {
		done := make(chan error, 1)
		go func() { done <- s.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close waited for foreign I/O")
		}
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write behind a blocked ReadFrom after Close: %v, want net.ErrClosed", err)
	}
	pw.Write([]byte("late")) // ReadFrom's r returns: its bytes are dropped, the stream closed
	pr.Close()
	pr2.Close()
	c.Close()
	d.Close()
}

// TestWriteToAfterCloseRead: a CloseRead while WriteTo's w runs ends the copy as the
// end of the stream does: WriteTo returns what it wrote and no error, as io.WriterTo
// requires (io.EOF is never an error of WriteTo).
func TestWriteToAfterCloseRead(t *testing.T) { forEachPairKind(t, testWriteToAfterCloseRead) }

func testWriteToAfterCloseRead(t *testing.T, pair pairFunc) {
	defer checkLeaks(t)()
	a, b := pair(t, MinRingSize, MinRingSize)
	w := &gateWriter{in: make(chan []byte, 1), release: make(chan struct{})}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() { n, err := b.WriteTo(w); done <- result{n, err} }()
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	<-w.in // WriteTo is inside w.Write
	if err := b.CloseRead(); err != nil {
		t.Fatal(err)
	}
	close(w.release)
	select {
	case r := <-done:
		if r.err != nil || r.n != 1 {
			t.Fatalf("WriteTo after CloseRead: %d, %v; want 1, nil", r.n, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WriteTo still blocked after CloseRead")
	}
	a.Close()
	b.Close()
}

// gateWriter is an io.Writer whose Write hands over a copy of its bytes on in, then
// waits for release to be closed.
type gateWriter struct {
	in      chan []byte
	release chan struct{}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.in <- bytes.Clone(p)
	<-g.release
	return len(p), nil
}

// TestWakeForSeenData checks that a wake-up for data the reader had already seen does
// not leave it asleep under a number the writer has already rung: the writer rings once
// per announced sleep, so the reader must announce a new one before parking again.
func TestWakeForSeenData(t *testing.T) {
	defer checkLeaks(t)()
	a, b := socketPair(t, MinRingSize, MinRingSize)
	got := make(chan error, 1)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		buf := make([]byte, 8)
		_, err := io.ReadFull(b, buf)
		got <- err
	}()
	sleep := &b.rxh.consCtl.sleep // b's reader announces its sleeps here
	var v uint32
	for deadline := time.Now().Add(5 * time.Second); v == 0; v = sleep.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the reader never parked")
		}
		time.Sleep(time.Millisecond)
	}
	// What a writer does when it published data the reader saw before it parked, and
	// then found the reader asleep: it rings for that sleep.
	a.wop.enter()
	a.ww.rung = v
	a.wake(wakeData)
	a.wop.release(opIn)
	for deadline := time.Now().Add(time.Second); sleep.Load() == v && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // the reader reads the wake-up, finds nothing new
	}
	if _, err := a.Write([]byte("12345678")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("reader: %v (it stayed asleep under %d, which the writer had rung)", err, v)
	}
	a.Close()
	b.Close()
}

// TestCopyHoldsNoBuffer parks WriteTo and ReadFrom on many streams at once: they copy
// straight between the ring and the other side, so a blocked one holds no buffer.
func TestCopyHoldsNoBuffer(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 100
	var streams []*Stream
	var pipes []*io.PipeWriter
	var wg sync.WaitGroup
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		a, b := pairOn(t, e, PeerID{20}, 64<<10, 64<<10)
		streams = append(streams, a, b)
		pr, pw := io.Pipe() // nobody writes: ReadFrom blocks in pr.Read
		pipes = append(pipes, pw)
		wg.Add(2)
		go func() { defer wg.Done(); a.ReadFrom(pr) }()
		go func() { defer wg.Done(); b.WriteTo(io.Discard) }() // nothing to read: parks
	}
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	if grown := int64(m1.HeapInuse) - int64(m0.HeapInuse); grown > n*32<<10 {
		t.Errorf("%d blocked copies grew the heap by %d bytes", 2*n, grown)
	}
	// What ReadFrom reads goes straight to the peer's WriteTo.
	pipes[0].Write([]byte("through the ring"))
	for _, s := range streams {
		s.Close()
	}
	for _, pw := range pipes {
		pw.Close()
	}
	wg.Wait()
}

// TestConcurrentOps checks that concurrent Writes and ReadFroms are serialised whole
// (each lands in the ring as one run of bytes, even when it has to wait for space or
// r returns it in pieces), that concurrent
// Reads together read every byte once, and that Close ends callers that are inside an
// operation or waiting for the operation lock with net.ErrClosed.
func TestConcurrentOps(t *testing.T) { forEachPairKind(t, testConcurrentOps) }

func testConcurrentOps(t *testing.T, pair pairFunc) {
	defer checkLeaks(t)()
	const writers, records, recLen = 8, 100, 1500 // records larger than a quarter ring
	a, b := pair(t, MinRingSize, MinRingSize)
	defer b.Close()
	defer a.Close()
	write := func() *sync.WaitGroup {
		var wg sync.WaitGroup
		for id := range writers {
			wg.Go(func() {
				rec := bytes.Repeat([]byte{byte(id + 1)}, recLen)
				for range records {
					var err error
					if id%2 == 0 {
						_, err = a.Write(rec)
					} else {
						_, err = a.ReadFrom(bytes.NewReader(rec)) // r runs outside the write lock
					}
					if err != nil {
						t.Errorf("writer %d: %v", id, err)
						return
					}
				}
			})
		}
		return &wg
	}

	// One reader: every record is one Write's.
	wg := write()
	got := make([]byte, writers*records*recLen)
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := 0; i < len(got); i += recLen {
		if rec := got[i : i+recLen]; bytes.Count(rec, rec[:1]) != recLen {
			t.Fatalf("record at %d is not one Write's: %v...", i, rec[:16])
		}
	}

	// Concurrent readers: together they read each writer's bytes once.
	wg = write()
	var mu sync.Mutex
	var total int
	var counts [writers + 1]int
	var rg sync.WaitGroup
	for range 3 {
		rg.Go(func() {
			buf := make([]byte, 700)
			for {
				mu.Lock()
				done := total == writers*records*recLen
				mu.Unlock()
				if done {
					return
				}
				b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				n, err := b.Read(buf)
				if isTimeout(err) {
					continue
				}
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				mu.Lock()
				total += n
				for _, c := range buf[:n] {
					counts[min(int(c), writers)]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rg.Wait()
	b.SetReadDeadline(time.Time{})
	for id := 1; id <= writers; id++ {
		if counts[id] != records*recLen {
			t.Errorf("read %d bytes of writer %d, want %d", counts[id], id, records*recLen)
		}
	}

	// Close while callers run operations and wait for their locks.
	errs := make(chan error, 8)
	for range 4 {
		go func() {
			for {
				if _, err := a.Write(make([]byte, 3000)); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			for {
				if _, err := a.Read(make([]byte, 10)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	a.Close()
	for range 8 {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("call after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a call did not return after Close")
		}
	}
}
