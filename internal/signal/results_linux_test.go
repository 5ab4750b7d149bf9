package signal

import (
	"testing"
	"time"

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
	if r, ok := s.cached(cl, cr); !ok || !r.Negotiated() {
		t.Fatalf("client slot: %+v, %v; want a negotiated answer", r, ok)
	}
	if r, ok := s.cached(sl, sr); !ok || !r.Negotiated() {
		t.Fatalf("server slot: %+v, %v; want a negotiated answer", r, ok)
	}
	exchange(t, c, sc, false)
	// The client's socket reaches TCP_CLOSE when it enters TIME_WAIT, the server's
	// when its last ACK arrives; give the final ACK a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, okc := s.cached(cl, cr)
		_, oks := s.cached(sl, sr)
		if !okc && !oks {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still answer after close: client %v server %v", okc, oks)
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
	if r, ok := s.cached(addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())); !ok || !r.Negotiated() {
		t.Fatalf("before detach: %+v, %v; want a negotiated answer from the cache", r, ok)
	}
	if err := DetachCgroup(dir); err != nil {
		t.Fatal(err)
	}
	detached = true
	if _, ok := s.cached(addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())); ok {
		t.Fatal("the cache still answers after DetachCgroup")
	}
	if r := resultOf(t, s, c); !r.Negotiated() {
		t.Errorf("after detach the kernel answers %+v for a negotiated socket", r)
	}
}
