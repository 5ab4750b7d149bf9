package signal

import (
	"net"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestChildrenMapFull shrinks the children map to one entry: a plain client's child
// of a marked listener is recorded nowhere, the first SMC child goes into the map,
// the next into socket storage created for it; every child must still report
// exactly what its handshake carried, through Result and AcceptedResult; a closed
// child's entry must be gone.
func TestChildrenMapFull(t *testing.T) {
	defer func(n uint32) { maxChildren = n }(maxChildren)
	maxChildren = 1
	s := selfAttach(t)
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	type child struct {
		smc    bool
		c, sc  net.Conn
		cookie uint64
		stored bool // the child has socket storage
		mapped bool // the child has a children-map entry
	}
	var children []*child
	for _, smc := range []bool{false, true, false, true} {
		c := dial(t, s, "tcp4", ln.Addr().String(), smc, nil)
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		ch := &child{smc: smc, c: c, sc: sc}
		children = append(children, ch)
		r := acceptedOf(t, s, sc, true)
		if want := (Result{Marked: true, Sent: smc, Received: smc}); r != want {
			t.Errorf("child %d (client marked %v): %+v, want %+v", len(children)-1, smc, r, want)
		}
		if got := resultOf(t, s, c).Negotiated(); smc && !got {
			t.Errorf("client %d: not negotiated", len(children)-1)
		}
		rc, _ := sc.(syscall.Conn).SyscallConn()
		rc.Control(func(fd uintptr) {
			if ch.cookie, err = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE); err != nil {
				t.Fatal(err)
			}
			b := elemBufs.Get().(*elemBuf)
			b.key = int32(fd)
			ch.stored = b.do(unix.BPF_MAP_LOOKUP_ELEM, s.marks) == nil
			elemBufs.Put(b)
		})
		kv := new(struct {
			cookie uint64
			word   uint32
		})
		kv.cookie = ch.cookie
		ch.mapped = mapLookup(s.children, unsafe.Pointer(&kv.cookie), unsafe.Pointer(&kv.word)) == nil
	}
	for i, want := range []struct{ stored, mapped bool }{{false, false}, {false, true}, {false, false}, {true, false}} {
		if ch := children[i]; ch.stored != want.stored || ch.mapped != want.mapped {
			t.Errorf("child %d (client marked %v): socket storage %v, children map %v; want %v, %v",
				i, ch.smc, ch.stored, ch.mapped, want.stored, want.mapped)
		}
	}
	for _, ch := range children {
		ch.c.Close()
		ch.sc.(*net.TCPConn).SetLinger(0) // reset: TCP_CLOSE before Close returns
		ch.sc.Close()
	}
	kv := new(struct {
		cookie uint64
		word   uint32
	})
	kv.cookie = children[1].cookie
	if err := mapLookup(s.children, unsafe.Pointer(&kv.cookie), unsafe.Pointer(&kv.word)); err != unix.ENOENT {
		t.Errorf("closed child's children map entry: lookup error %v, want ENOENT", err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st["err_result"] != 0 {
		t.Errorf("err_result = %d, want 0", st["err_result"])
	}
}
