package signal

import (
	"net"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestChildrenMapFull shrinks the children map to one entry: the first child of a
// marked listener is recorded there, the others in socket storage created for them,
// and every child, SMC or plain client, must still report exactly what its handshake
// carried, through Result and ResultAddr; a closed child's entry must be gone.
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
		r := resultOf(t, s, sc)
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
	}
	if children[0].stored {
		t.Error("the first child has socket storage; want it in the children map")
	}
	for i, ch := range children[1:] {
		if !ch.stored {
			t.Errorf("child %d has no socket storage although the children map is full", i+1)
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
	kv.cookie = children[0].cookie
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
