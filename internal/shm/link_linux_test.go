package shm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
	"golang.org/x/sys/unix"
)

// quiesce waits until the process's counters stopped moving: links of earlier tests
// end asynchronously (the client end when it reads the server's EOF).
func quiesce(t *testing.T) Counters {
	t.Helper()
	c := ReadCounters()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		c2 := ReadCounters()
		if c2 == c {
			return c
		}
		c = c2
	}
	return c
}

// TestSlotReuseZeroed checks that a slot comes back, with a new generation, only once
// both ends closed, and zeroed: header and ring.
func TestSlotReuseZeroed(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	peer := PeerID{9}
	a, b := pairOn(t, e, peer, MinRingSize, MinRingSize)
	if _, err := b.Write(bytes.Repeat([]byte{0xab}, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(a, make([]byte, 500)); err != nil {
		t.Fatal(err)
	}
	tok, ring, hdr := a.ownTok, a.rxRing, slotHeader(a.own, a.ownIdx)
	a.Close() // unread data: an abort, which leaves flags in both headers
	state := func(s *Stream) slotState {
		s.link.mu.Lock()
		defer s.link.mu.Unlock()
		return s.own.slots[s.ownIdx].state
	}
	// The client has not closed: the server's slot is not free yet, and the sweep that
	// waits for it comes back ever later (a peer may hold its end for hours): after
	// four sweeps that found it unreleased, its delay is 16 times the first. (Waited
	// for, not timed: on a loaded machine the sweep's timers fire late.)
	waitFor(t, "the sweep to back off", func() bool {
		a.link.mu.Lock()
		defer a.link.mu.Unlock()
		return a.link.sweepIn >= 16*sweepDelay
	})
	if st := state(a); st != slotClosed {
		t.Fatalf("server slot in state %d while the peer still holds it, want closed", st)
	}
	b.Close()
	// The client closed second: the server's release (fReleased in the client's slot)
	// was there, so its slot is free at once; the server's slot is freed once the sweep
	// (or the next offer on the link) finds the client's.
	if st := state(b); st != slotFree {
		t.Fatalf("client slot in state %d after both closed, want free at once", st)
	}
	waitFor(t, "both slots freed", func() bool { return state(a) == slotFree && state(b) == slotFree })
	if !bytes.Equal(hdr, make([]byte, len(hdr))) || !bytes.Equal(ring, make([]byte, len(ring))) {
		t.Fatal("a freed slot was not zeroed")
	}
	a2, b2 := pairOn(t, e, peer, MinRingSize, MinRingSize)
	if uint32(a2.ownTok) != uint32(tok) || a2.ownTok == tok {
		t.Fatalf("second stream got slot %#x after %#x: want the same slot, another generation", a2.ownTok, tok)
	}
	if a2.LinkID() != a.LinkID() {
		t.Fatal("the second stream did not reuse the link")
	}
	if n, _ := a2.Counts(); n != (Counts{}) {
		t.Fatalf("reused slot starts at %+v", n)
	}
	a2.Close()
	b2.Close()
}

// TestManyStreamsOneLink runs 1000 short connections in a row and then 300 at once
// between the same two ends: one link, and a handful of segments.
func TestManyStreamsOneLink(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	peer := PeerID{10}
	c0 := quiesce(t)
	msg := []byte("hello")
	buf := make([]byte, len(msg))
	for i := range 1000 {
		a, b := pairOn(t, e, peer, MinRingSize, MinRingSize)
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Fatalf("connection %d: %q, %v", i, buf, err)
		}
		a.Close()
		b.Close()
	}
	c := ReadCounters()
	if d := c.LinksOpened - c0.LinksOpened; d != 2 { // the server's end and the client's
		t.Errorf("1000 connections opened %d link ends, want 2", d)
	}
	if d := c.SegmentsMade - c0.SegmentsMade; d > 4 {
		t.Errorf("1000 connections in a row made %d segments", d)
	}
	var streams []*Stream
	for range 300 {
		a, b := pairOn(t, e, peer, MinRingSize, MinRingSize)
		streams = append(streams, a, b)
	}
	for i := 0; i < len(streams); i += 2 {
		if _, err := streams[i].Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < len(streams); i += 2 {
		if _, err := io.ReadFull(streams[i], buf); err != nil {
			t.Fatal(err)
		}
	}
	c = ReadCounters()
	if d := c.LinksOpened - c0.LinksOpened; d != 2 {
		t.Errorf("300 connections at once opened %d link ends, want 2", d)
	}
	// 1+2+4+8+16+32+64+64+64+64 slots per side hold 300.
	if d := c.SegmentsMade - c0.SegmentsMade; d > 2*10+2 {
		t.Errorf("300 connections at once made %d segments", d)
	}
	for _, s := range streams {
		s.Close()
	}
}

// TestLostWakeups parks 256 readers on one link at once, with a send buffer so small
// that most wake-ups cannot be sent at once, then writes to every stream: every reader
// must get its data. Then the same for 256 writers blocked on full rings.
func TestLostWakeups(t *testing.T) {
	defer checkLeaks(t)()
	defer SetSpin(SetSpin(0)) // every wait parks
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 256
	var as, bs []*Stream
	for range n {
		a, b := pairOn(t, e, PeerID{11}, MinRingSize, MinRingSize)
		a.local.Store(nil)
		b.local.Store(nil)
		as, bs = append(as, a), append(bs, b)
	}
	for _, l := range []*link{as[0].link, bs[0].link} {
		l.rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 1024) })
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.SetReadDeadline(time.Now().Add(20 * time.Second))
			got := make([]byte, 8)
			if _, err := io.ReadFull(b, got); err != nil || string(got) != fmt.Sprintf("%08d", i) {
				errs <- fmt.Errorf("reader %d: %q, %v", i, got, err)
			}
		}()
	}
	waitFor(t, "every reader parked", func() bool {
		for _, b := range bs {
			if b.rxh.consCtl.sleep.Load() == 0 {
				return false
			}
		}
		return true
	})
	for i, a := range as {
		if _, err := a.Write([]byte(fmt.Sprintf("%08d", i))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	// Writers: fill every ring, then block on one more byte each.
	for i, a := range as {
		if _, err := a.Write(make([]byte, MinRingSize)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := a.Write([]byte{byte(i)}); err != nil {
				errs <- fmt.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	waitFor(t, "every writer parked", func() bool {
		for _, a := range as {
			if a.txh.prodCtl.sleep.Load() == 0 {
				return false
			}
		}
		return true
	})
	for _, b := range bs {
		if _, err := io.ReadFull(b, make([]byte, MinRingSize)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range as {
		as[i].Close()
		bs[i].Close()
	}
}

// TestLinkLife checks that a link ends once it stayed unused for LinkIdle, that the
// client sees it end, and that everything is unmapped then; and that a pool shrinks
// back after a burst.
func TestLinkLife(t *testing.T) {
	defer checkLeaks(t)()
	defer SetLinkIdle(SetLinkIdle(200 * time.Millisecond))
	defer segmentIdle.Store(segmentIdle.Swap(int64(50 * time.Millisecond)))
	c0 := quiesce(t)
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var streams []*Stream
	for range 20 {
		a, b := pairOn(t, e, PeerID{12}, MinRingSize, MinRingSize)
		streams = append(streams, a, b)
	}
	burst := ReadCounters()
	if burst.Segments-c0.Segments < 8 {
		t.Fatalf("20 connections hold %d segments", burst.Segments-c0.Segments)
	}
	a, b := streams[0], streams[1]
	for _, s := range streams[2:] {
		s.Close()
	}
	// Withdrawn: the empty segments beyond the floor (and the ones of the survivors).
	waitFor(t, "the pool to shrink", func() bool {
		c := ReadCounters()
		return c.Segments-c0.Segments <= 2 && c.PeerSegments-c0.PeerSegments <= 2
	})
	time.Sleep(400 * time.Millisecond)
	if ReadCounters().Links != c0.Links+2 {
		t.Fatal("a link in use ended")
	}
	// Windows grown to the whole ring each way are counted, and uncounted at the end.
	transfer(t, a, b, 1<<20)
	transfer(t, b, a, 1<<20)
	a.Close()
	b.Close()
	waitFor(t, "the idle link to end", func() bool {
		c := ReadCounters()
		return c.Links == c0.Links && c.Segments == c0.Segments && c.PeerSegments == c0.PeerSegments &&
			c.MemoryInUse == c0.MemoryInUse && c.PeerMemory == c0.PeerMemory && c.SlotsFree == c0.SlotsFree
	})
}

// TestCheckDir checks which endpoint directories are refused.
func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDir(dir); err != nil {
		t.Fatalf("a private directory: %v", err)
	}
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if err := CheckDir(open); err == nil || !strings.Contains(err.Error(), "sticky") {
		t.Fatalf("a world-writable directory: %v", err)
	}
	if _, err := Listen(Config{Dir: open}); err == nil {
		t.Fatal("Listen in a world-writable directory")
	}
	if _, err := Connect(context.Background(), open, 1<<16, 1, MinRingSize, MinRingSize, MaxRingSize); err == nil || !strings.Contains(err.Error(), "sticky") {
		t.Fatalf("Connect through a world-writable directory: %v", err)
	}
	os.Chmod(open, 0o777|os.ModeSticky)
	if err := CheckDir(open); err != nil {
		t.Fatalf("a sticky world-writable directory: %v", err)
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other")
		os.Mkdir(other, 0o755)
		os.Chown(other, testenv.Nobody, testenv.Nobody)
		if err := CheckDir(other); err == nil {
			t.Fatal("a directory of another uid")
		}
	}
}

// TestEndpointDir runs a stream through a socket file, which any uid may connect to.
func TestEndpointDir(t *testing.T) {
	defer checkLeaks(t)()
	dir := t.TempDir()
	e, err := Listen(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fi, err := os.Stat(e.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o666 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket file mode %v, want 0666", fi.Mode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o := offer(t, e, PeerID{13}, MinRingSize)
	if _, err := Connect(ctx, t.TempDir(), o.LinkID(), o.Token(), MinRingSize, MinRingSize, MaxRingSize); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Connect through a directory without the endpoint: %v, want ErrUnreachable", err)
	}
	s, c, err := bindPair(ctx, dir, o, MinRingSize, MaxRingSize)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c.Close()
}

// startHelper starts the test binary as a child in role with extra environment; the
// caller stops it with stopHelper.
func startHelper(t *testing.T, role string, stdin io.Reader, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+role), env...)
	cmd.Stdin = stdin
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}

func stopHelper(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// TestImpostorRelay replaces the socket file a client looks for with a relay process
// that forwards everything to the real endpoint: the server's proof names the server
// process, not the relay's, so the client refuses after the hello and never sends its
// proof, a segment or a bind.
func TestImpostorRelay(t *testing.T) {
	if selfPidfdIno() == 0 {
		testenv.Require(t, "pidfs inodes (Linux 6.9+) to tell a relay from the server", errors.New("pidfd_open gave no pidfs inode"))
	}
	defer checkLeaks(t)()
	real, fake := t.TempDir(), t.TempDir()
	e, err := Listen(Config{Dir: real})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	o := offer(t, e, PeerID{14}, MinRingSize)
	cmd, out := startHelper(t, "relay", nil, "SMC_SHM_RELAY_FROM="+Addr(fake, e.ID()), "SMC_SHM_RELAY_TO="+e.Addr())
	defer stopHelper(cmd)
	if !out.Scan() || out.Text() != "listening" {
		t.Fatal("relay did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Connect(ctx, fake, o.LinkID(), o.Token(), MinRingSize, MinRingSize, MaxRingSize); !errors.Is(err, ErrNotProven) {
		t.Fatalf("Connect through a relay: %v, want ErrNotProven", err)
	}
	if !out.Scan() || out.Text() != "1" {
		t.Fatalf("the client sent the relay %q messages, want 1 (the hello)", out.Text())
	}
}

// TestStrangerPending floods the endpoint with idle connections from another uid: a
// client of ours still sets its link up.
func TestStrangerPending(t *testing.T) {
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cmd := testenv.UnprivilegedTest(t, "TestHelperProcess", childEnv+"=stranger", "SMC_SHM_ADDR="+e.Addr())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "held" {
	}
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		o, err := e.Offer(ctx, PeerID{15, byte(i)}, MinRingSize, MaxRingSize)
		if err != nil {
			t.Fatal(err)
		}
		s, c, err := bindPair(ctx, "", o, MinRingSize, MaxRingSize)
		cancel()
		if err != nil {
			t.Fatalf("attach %d during the flood: %v", i, err)
		}
		s.Close()
		c.Close()
	}
}

// TestPeerDeathReleasesSlots kills a child holding 40 streams over one link: every
// stream of ours sees a reset, and once they are closed every slot, segment and
// mapping of the link is gone.
func TestPeerDeathReleasesSlots(t *testing.T) {
	defer checkLeaks(t)()
	c0 := quiesce(t)
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m := startMulti(t, e, PeerID{16}, 40)
	defer m.stop()
	streams := m.streams
	for _, s := range streams {
		if s.LinkID() != streams[0].LinkID() {
			t.Fatalf("40 streams to one process over several links: %#x and %#x", s.LinkID(), streams[0].LinkID())
		}
	}
	for _, s := range streams {
		if _, err := s.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, make([]byte, 4)); err != nil {
			t.Fatal(err)
		}
	}
	m.cmd.Process.Kill()
	for i, s := range streams {
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("stream %d after the peer died: %v, want a reset", i, err)
		}
		s.Close()
	}
	c := ReadCounters()
	if c.Links != c0.Links || c.Segments != c0.Segments || c.PeerSegments != c0.PeerSegments ||
		c.SlotsInUse != c0.SlotsInUse || c.SlotsFree != c0.SlotsFree || c.MemoryInUse != c0.MemoryInUse || c.PeerMemory != c0.PeerMemory {
		t.Fatalf("after the peer died and our streams closed: %+v, was %+v", c, c0)
	}
}

// TestBurstSharesLink starts 32 connections at once from a process the server has no
// link with: they wait for the first one's link instead of making one each.
func TestBurstSharesLink(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 32
	var mu sync.Mutex
	var streams []*Stream
	ids := make(map[uint32]bool)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := pairOn(t, e, PeerID{21}, MinRingSize, MinRingSize)
			mu.Lock()
			streams = append(streams, a, b)
			ids[a.LinkID()] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Errorf("%d connections started at once set up %d links, want 1", n, len(ids))
	}
	for _, s := range streams {
		s.Close()
	}
}
