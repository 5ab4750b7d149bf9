package signal

import (
	"context"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc/internal/testenv"
)

// TestCacheClearedOnClose checks that a marked socket's slot answers while it is
// open and no longer once it has closed, so that a later connection with the same
// 4-tuple can never read it.
func TestCacheClearedOnClose(t *testing.T) {
	s := selfAttach(t)
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	c := dial(t, s, "tcp4", ln.Addr().String(), true, nil)
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cl, cr := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
	sl, sr := addrPort(sc.LocalAddr()), addrPort(sc.RemoteAddr())
	if r, a := s.cached(cl, cr); a != cacheHit || !r.Negotiated() {
		t.Fatalf("client slot: %+v, %v; want a negotiated answer", r, a)
	}
	if r, a := s.cached(sl, sr); a != cacheHit || !r.Negotiated() {
		t.Fatalf("server slot: %+v, %v; want a negotiated answer", r, a)
	}
	exchange(t, c, sc, false)
	// The client's socket reaches TCP_CLOSE when it enters TIME_WAIT, the server's
	// when its last ACK arrives; give the final ACK a moment. Both slots must then
	// count no live socket: nothing else in this test's cgroup publishes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ac := s.cached(cl, cr)
		_, as := s.cached(sl, sr)
		if ac == cacheAbsent && as == cacheAbsent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots after close: client %v server %v; want both absent", ac, as)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDetachPoisonsCache checks that DetachCgroup poisons the results cache of
// processes that keep their pinned maps, since the program no longer empties slots.
func TestDetachPoisonsCache(t *testing.T) {
	testenv.RequireBPF(t)
	dir := testenv.ChildCgroup(t)
	if _, err := AttachCgroup(dir, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	detached := false
	t.Cleanup(func() {
		if !detached {
			DetachCgroup(dir)
		}
	})
	s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	c := dial(t, s, "tcp4", ln.Addr().String(), true, nil)
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if r, a := s.cached(addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())); a != cacheHit || !r.Negotiated() {
		t.Fatalf("before detach: %+v, %v; want a negotiated answer from the cache", r, a)
	}
	if err := DetachCgroup(dir); err != nil {
		t.Fatal(err)
	}
	detached = true
	if _, a := s.cached(addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())); a != cacheUnknown {
		t.Fatalf("the cache still answers (%v) after DetachCgroup", a)
	}
	if _, a := s.cached(addrPort(sc.LocalAddr()), addrPort(sc.RemoteAddr())); a != cacheUnknown {
		t.Fatalf("the cache answers %v for an accepted socket after DetachCgroup", a)
	}
	if r := resultOf(t, s, c); !r.Negotiated() {
		t.Errorf("after detach the kernel answers %+v for a negotiated socket", r)
	}
}

// TestPlainChildNotRecorded checks that the program records nothing for a plain
// client of a marked listener (no children-map entry, no results slot: what keeps
// such clients as cheap as any), that AcceptedResult still reports it exactly
// (Marked, neither sent nor received) from the cache alone, and that an SMC client
// of the same listener is recorded and published.
func TestPlainChildNotRecorded(t *testing.T) {
	s := selfAttach(t)
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	for _, smc := range []bool{false, true, false} {
		c := dial(t, s, "tcp4", ln.Addr().String(), smc, nil)
		sc, err := ln.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		local, remote := addrPort(sc.LocalAddr()), addrPort(sc.RemoteAddr())
		fd := fdOf(sc)
		raw, err := s.Result(fd)
		if err != nil {
			t.Fatal(err)
		}
		_, a := s.cached(local, remote)
		hits := s.cacheHits.Load()
		r, err := s.AcceptedResult(fd, local, remote)
		if err != nil {
			t.Fatal(err)
		}
		if s.cacheHits.Load() != hits+1 {
			t.Errorf("smc=%v: AcceptedResult asked the kernel (cache said %v)", smc, a)
		}
		if smc {
			want := Result{Marked: true, Sent: true, Received: true}
			if a != cacheHit || raw != want || r != want {
				t.Errorf("SMC client: cache %v, Result %+v, AcceptedResult %+v; want a hit and %+v", a, raw, r, want)
			}
		} else {
			if a != cacheAbsent || raw != plainChild || r != plainChild {
				t.Errorf("plain client: cache %v (want absent), Result %+v, AcceptedResult %+v; want %+v", a, raw, r, plainChild)
			}
			cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
			if err != nil {
				t.Fatal(err)
			}
			kv := new(struct {
				cookie uint64
				word   uint32
			})
			kv.cookie = cookie
			if err := mapLookup(s.children, unsafe.Pointer(&kv.cookie), unsafe.Pointer(&kv.word)); err != unix.ENOENT {
				t.Errorf("plain client: children-map lookup error %v, want ENOENT (no record)", err)
			}
		}
		exchange(t, c, sc, false)
	}
}

// TestNetAcceptLocksSocket checks what AcceptedResult's proof of absence relies on:
// the net package's accept sets TCP_NODELAY on every accepted socket, whatever the
// listener's keep-alive settings, and that setsockopt takes the socket lock (which
// the kernel holds from queueing the child until its ESTABLISHED callback is done).
// If net stopped doing so, the root package would have to take the lock itself.
func TestNetAcceptLocksSocket(t *testing.T) {
	for _, keepAlive := range []time.Duration{0, -1} {
		lc := net.ListenConfig{KeepAlive: keepAlive}
		lc.SetMultipathTCP(false)
		ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		v, err := unix.GetsockoptInt(fdOf(sc.(*net.TCPConn)), unix.IPPROTO_TCP, unix.TCP_NODELAY)
		if err != nil || v == 0 {
			t.Errorf("keep-alive %v: accepted socket TCP_NODELAY = %d (%v); want it set by net's accept", keepAlive, v, err)
		}
		sc.Close()
		c.Close()
		ln.Close()
	}
}

// TestOldCacheLayout checks that a results cache without the layout stamp (maps
// pinned by an older smc attach, whose program keeps no live counts) never answers
// "absent": AcceptedResult then asks the kernel, and still gets it right.
func TestOldCacheLayout(t *testing.T) {
	s := selfAttach(t)
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	c := dial(t, s, "tcp4", ln.Addr().String(), false, nil)
	sc, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer exchange(t, c, sc, false)
	local, remote := addrPort(sc.LocalAddr()), addrPort(sc.RemoteAddr())
	if _, a := s.cached(local, remote); a != cacheAbsent {
		t.Fatalf("stamped cache: %v, want absent", a)
	}
	hdr := make([]byte, slotSize) // an unstamped, unpoisoned header
	var key uint32
	if err := mapUpdate(s.coll.Maps[mapResults].FD(), unsafe.Pointer(&key), unsafe.Pointer(&hdr[0])); err != nil {
		t.Fatal(err)
	}
	if _, a := s.cached(local, remote); a != cacheUnknown {
		t.Errorf("unstamped cache: %v, want unknown", a)
	}
	if r := acceptedOf(t, s, sc, true); r != plainChild {
		t.Errorf("unstamped cache: AcceptedResult %+v, want %+v", r, plainChild)
	}
}

// TestHeaderLiveCount checks the header's count of live recorded sockets: it
// follows the sockets the program publishes, and while it is zero an accepted
// socket is answered "absent" from the header alone, without its slot (made
// unreadable here); once it is not, the slot decides.
func TestHeaderLiveCount(t *testing.T) {
	s := selfAttach(t)
	fd := s.coll.Maps[mapResults].FD()
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	c0 := dial(t, s, "tcp4", ln.Addr().String(), false, nil)
	sc0, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer exchange(t, c0, sc0, false)
	if n := s.word(slotHdrLive); n != 0 {
		t.Fatalf("header counts %d live sockets with only a plain client connected, want 0", n)
	}
	local, remote := addrPort(sc0.LocalAddr()), addrPort(sc0.RemoteAddr())
	ra, la := remote.Addr().As16(), local.Addr().As16()
	key := uint32(slotIndex(uint32(local.Port())<<16|uint32(remote.Port()), &ra, &la))
	setSeq := func(seq uint32) {
		t.Helper()
		slot := make([]byte, slotSize)
		copy(slot, s.slots[int(key)*slotSize:int(key+1)*slotSize])
		*(*uint32)(unsafe.Pointer(&slot[slotSeq])) = seq
		if err := mapUpdate(fd, unsafe.Pointer(&key), unsafe.Pointer(&slot[0])); err != nil {
			t.Fatal(err)
		}
	}
	setSeq(1) // a writer holds the slot forever: the slot answers nothing
	if _, a := s.cached(local, remote); a != cacheAbsent {
		t.Fatalf("header count 0, slot held: %v, want absent from the header", a)
	}

	c1 := dial(t, s, "tcp4", ln.Addr().String(), true, nil)
	sc1, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if n := s.word(slotHdrLive); n != 2 {
		t.Fatalf("header counts %d live sockets with one negotiated pair open, want 2", n)
	}
	if _, a := s.cached(local, remote); a != cacheUnknown {
		t.Fatalf("header count 2, slot held: %v, want unknown (the slot decides)", a)
	}
	setSeq(0)
	if _, a := s.cached(local, remote); a != cacheAbsent {
		t.Fatalf("header count 2, slot free: %v, want absent from the slot", a)
	}

	exchange(t, c1, sc1, false)
	deadline := time.Now().Add(5 * time.Second)
	for s.word(slotHdrLive) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("header counts %d live sockets after the pair closed, want 0", s.word(slotHdrLive))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
