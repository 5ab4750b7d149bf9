package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
	"golang.org/x/sys/unix"
)

// The hostile peer in these tests is the other end of a real pair, driven by hand: the
// test writes whatever it likes into the shared memory that end has mapped, or speaks the
// handshake with crafted descriptors. The victim must fail with an error: no panic, no
// out-of-bounds access, no SIGBUS, no hang past its deadline.

func isViolation(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe) && errors.Is(err, syscall.ECONNRESET)
}

func TestHostileControlArea(t *testing.T) {
	const size = MinRingSize
	tests := []struct {
		name string
		// evil acts through the hostile end h on the victim v's DMBs; op is the victim's
		// operation that must then fail with a protocol violation.
		evil func(v, h *Stream)
		op   func(v *Stream) error
	}{
		{"producer beyond ring", func(v, h *Stream) { h.txh.prod.cursor.Store(size + 1) }, read},
		{"producer far beyond", func(v, h *Stream) { h.txh.prod.cursor.Store(math.MaxUint64) }, read},
		{"producer backwards", func(v, h *Stream) {
			h.Write(make([]byte, 100))
			v.Read(make([]byte, 10)) // victim saw prod = 100
			h.txh.prod.cursor.Store(50)
		}, read},
		{"unknown producer flag", func(v, h *Stream) { h.txh.prodCtl.flags.Store(1 << 7) }, read},
		{"producer flag cleared", func(v, h *Stream) {
			h.CloseWrite()
			v.Read(make([]byte, 1)) // EOF: victim saw fDone
			h.txh.prodCtl.flags.Store(0)
		}, read},
		{"producer moved after done", func(v, h *Stream) {
			h.CloseWrite()
			v.Read(make([]byte, 1))
			h.txh.prod.cursor.Store(10)
		}, read},
		// A writer loads the consumer cursor only when its last view leaves too little
		// space, so these write the ring's size.
		{"consumer beyond producer", func(v, h *Stream) {
			v.Write(make([]byte, 10))
			h.rxh.cons.cursor.Store(11)
		}, writeRing},
		{"consumer backwards", func(v, h *Stream) {
			v.Write(make([]byte, 10))
			h.rxh.cons.cursor.Store(math.MaxUint64)
		}, writeRing},
		{"unknown consumer flag", func(v, h *Stream) { h.rxh.consCtl.flags.Store(0xffff0000) }, write},
		{"garbage link message", func(v, h *Stream) { h.link.conn.Write([]byte{0xff, 0xee}) }, read},
		{"unknown link message type", func(v, h *Stream) { h.link.conn.Write(newMsg(99).u64(0)) }, read},
		{"unknown wake bits", func(v, h *Stream) {
			h.link.conn.Write(newMsg(msgWake).u32(1).u32(0).u64(v.ownTok).u32(0x80).u32(0))
		}, read},
		{"wake count beyond the message", func(v, h *Stream) {
			h.link.conn.Write(newMsg(msgWake).u32(2).u32(0).u64(v.ownTok).u32(1).u32(0))
		}, read},
		{"descriptor on a wake", func(v, h *Stream) {
			fd := memfd(nil, 4096, 0)
			h.link.conn.WriteMsgUnix(newMsg(msgWake).u32(1).u32(0).u64(v.ownTok).u32(1).u32(0), unix.UnixRights(fd), nil)
			unix.Close(fd)
		}, read},
		{"acknowledgement of an unknown segment", func(v, h *Stream) { h.link.conn.Write(newMsg(msgSegAck).u32(999).u32(1)) }, read},
		{"cancel to a server", func(v, h *Stream) { h.link.conn.Write(newMsg(msgCancel).u64(v.ownTok)) }, read},
		{"retired bind message", func(v, h *Stream) { h.link.conn.Write(newMsg(9).u64(1).u64(2)) }, read},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, h := socketPair(t, size, size)
			tt.evil(v, h)
			v.SetDeadline(time.Now().Add(5 * time.Second))
			var err error
			for range 3 { // a wake-up may be needed before the victim looks
				if err = tt.op(v); err != nil {
					break
				}
			}
			if !isViolation(err) {
				t.Fatalf("victim: %v, want a protocol violation", err)
			}
			// The stream stays failed and the peer learns it was aborted.
			if err2 := tt.op(v); !isViolation(err2) {
				t.Fatalf("second call: %v", err2)
			}
			if f := v.txh.prodCtl.flags.Load(); f&fAbort == 0 {
				t.Fatalf("victim did not publish abort: flags %#x", f)
			}
		})
	}
}

func read(s *Stream) error {
	_, err := s.Read(make([]byte, 16))
	if err == nil {
		return nil
	}
	return err
}

func write(s *Stream) error {
	_, err := s.Write(make([]byte, 16))
	return err
}

func writeRing(s *Stream) error {
	_, err := s.Write(make([]byte, s.PeerRingSize()))
	return err
}

// TestHostileGarbage lets the hostile end scribble random words over both control areas
// and random bytes over the victim's ring while the victim reads and writes with short
// deadlines. The victim may read garbage data (the peer is its source), but must end with
// an error, never panic, and every call must return by its deadline.
func TestHostileGarbage(t *testing.T) {
	defer checkLeaks(t)()
	for seed := range uint64(20) {
		v, h := socketPair(t, MinRingSize, MinRingSize)
		rng := rand.New(rand.NewPCG(seed, 0))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, m := range [][]byte{slotHeader(h.peerSeg, h.peerIdx), slotHeader(h.own, h.ownIdx)} {
					off := rng.IntN(len(m)/4) * 4
					binary.LittleEndian.PutUint32(m[off:], rng.Uint32()>>rng.IntN(32))
				}
				h.txRing[rng.IntN(len(h.txRing))] = byte(rng.Uint32())
			}
		}()
		var rerr, werr error
		buf := make([]byte, 1000)
		for i := 0; i < 200 && (rerr == nil || werr == nil); i++ {
			deadline := time.Now().Add(5 * time.Millisecond)
			v.SetDeadline(deadline)
			_, rerr = v.Read(buf)
			_, werr = v.Write(buf)
			if late := time.Since(deadline); late > time.Second {
				t.Fatalf("seed %d: call returned %v after its deadline", seed, late)
			}
			for _, err := range []error{rerr, werr} {
				if err != nil && !isViolation(err) && !isTimeout(err) && !errors.Is(err, syscall.ECONNRESET) &&
					!errors.Is(err, syscall.EPIPE) && err != io.EOF {
					t.Fatalf("seed %d: unexpected error %v", seed, err)
				}
				if isTimeout(err) {
					rerr, werr = nil, nil // keep going until the garbage is noticed
				}
			}
		}
		close(stop)
		<-done
		if rerr == nil || werr == nil {
			t.Errorf("seed %d: garbage went unnoticed (read: %v, write: %v)", seed, rerr, werr)
		}
		v.Close()
		h.Close()
	}
}

func slotHeader(g *segment, i int) []byte { return g.mem[i*SlotHeaderSize : (i+1)*SlotHeaderSize] }

// memfd returns a memfd of total bytes with the given seals added; t may be nil.
func memfd(t *testing.T, total int64, seals int) int {
	fd, err := unix.MemfdCreate("hostile", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err == nil {
		err = unix.Ftruncate(fd, total)
	}
	if err == nil && seals != 0 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
	}
	if err != nil {
		if t == nil {
			panic(err)
		}
		t.Fatal(err)
	}
	return fd
}

// rawClient is a hand-driven client of an endpoint: it speaks the link protocol byte by
// byte, to present whatever a hostile client would.
type rawClient struct {
	t   *testing.T
	c   *net.UnixConn
	buf []byte
	oob []byte
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: addr, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawClient{t: t, c: c, buf: make([]byte, maxMsgLen+1), oob: make([]byte, oobSpace)}
}

func (r *rawClient) send(m []byte, fds ...int) {
	r.t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := r.c.WriteMsgUnix(m, oob, nil); err != nil {
		r.t.Fatal(err)
	}
	closeFDs(fds)
}

// recv returns the next message (its descriptors closed), or nil at EOF.
func (r *rawClient) recv() []byte {
	r.t.Helper()
	n, fds, err := readMsg(r.c, r.buf, r.oob)
	closeFDs(fds)
	if errors.Is(err, errLinkDown) {
		return nil
	}
	if err != nil {
		r.t.Fatalf("raw client: %v", err)
	}
	return r.buf[:n]
}

// wantEOF checks that the server closed the connection without sending anything more.
func (r *rawClient) wantEOF() {
	r.t.Helper()
	for {
		m := r.recv()
		if m == nil {
			return
		}
		if m[0] != msgSegAck && m[0] != msgSegDel && m[0] != msgWake && m[0] != msgPoll {
			r.t.Fatalf("server sent message type %d where it should have closed the link", m[0])
		}
	}
}

// setUp runs HELLO/AUTH/PROOF with the offer's secret, acknowledges the server's
// segment without mapping it, and returns the founding slot from READY.
func (r *rawClient) setUp(o *Offer) uint64 {
	r.t.Helper()
	var secret [8]byte
	binary.LittleEndian.PutUint64(secret[:], o.Token())
	nc := make([]byte, nonceLen)
	r.send(newMsg(msgHello).u32(linkVersion).u32(o.LinkID()).bytes(nc))
	m := r.recv()
	if m == nil || m[0] != msgAuth {
		r.t.Fatalf("no AUTH: %v", m)
	}
	ns := append([]byte(nil), m[msgHdrLen:msgHdrLen+nonceLen]...)
	r.send(newMsg(msgProof).bytes(proof(secret, 'c', nc, ns, 0)))
	for {
		m := r.recv()
		switch {
		case m == nil:
			r.t.Fatal("server closed the link during set-up")
		case m[0] == msgSeg:
			r.send(newMsg(msgSegAck).u32(u32of(m[msgHdrLen:])).u32(1))
		case m[0] == msgPoll:
		case m[0] == msgReady:
			return u64of(m[msgHdrLen:])
		default:
			r.t.Fatalf("unexpected message type %d during set-up", m[0])
		}
	}
}

func offer(t *testing.T, e *Endpoint, peer PeerID, size int) *Offer {
	t.Helper()
	o, err := e.Offer(context.Background(), peer, size, MaxRingSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Cancel)
	return o
}

// bindFails checks that o can no longer be bound: its link ended and freed its slot.
func bindFails(t *testing.T, o *Offer) {
	t.Helper()
	if s, err := o.Bind(makeToken(1, 0, 0), MinRingSize); !errors.Is(err, ErrOfferClosed) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("offer after its link's end: Bind %v, want ErrOfferClosed", err)
	}
}

// TestHostileClientSetUp presents bad link set-ups to an endpoint: the server answers
// nothing but a closed socket, and the offer stays open for its real client.
func TestHostileClientSetUp(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	o := offer(t, e, PeerID{1}, MinRingSize)
	hello := func() []byte { return newMsg(msgHello).u32(linkVersion).u32(o.LinkID()).bytes(make([]byte, nonceLen)) }
	for _, tt := range []struct {
		name string
		msg  func() []byte
		fds  func() []int
	}{
		{"unknown link", func() []byte {
			return newMsg(msgHello).u32(linkVersion).u32(o.LinkID() + 1).bytes(make([]byte, nonceLen))
		}, nil},
		{"another endpoint's link", func() []byte {
			return newMsg(msgHello).u32(linkVersion).u32(o.LinkID() ^ 1<<16).bytes(make([]byte, nonceLen))
		}, nil},
		{"bad version", func() []byte { m := hello(); m[8] = 9; return m }, nil},
		{"reserved header bits", func() []byte { m := hello(); m[3] = 1; return m }, nil},
		{"long message", func() []byte { return append(hello(), 0) }, nil},
		{"short message", func() []byte { return hello()[:20] }, nil},
		{"proof first", func() []byte { return newMsg(msgProof).bytes(make([]byte, proofLen)) }, nil},
		{"descriptor on the hello", hello, func() []int { return []int{memfd(t, 4096, 0)} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, e.Addr())
			var fds []int
			if tt.fds != nil {
				fds = tt.fds()
			}
			r.send(tt.msg(), fds...)
			r.wantEOF()
		})
	}
	t.Run("wrong proof", func(t *testing.T) {
		r := dialRaw(t, e.Addr())
		r.send(hello())
		if m := r.recv(); m == nil || m[0] != msgAuth {
			t.Fatal("no AUTH for a hello naming a pending link")
		}
		r.send(newMsg(msgProof).bytes(make([]byte, proofLen)))
		r.wantEOF()
	})
	t.Run("silence", func(t *testing.T) {
		r := dialRaw(t, e.Addr())
		start := time.Now()
		r.wantEOF()
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a silent connection was kept %v", d)
		}
	})
	// After all that, the real client still gets the offer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, c, err := bindPair(ctx, "", o, MinRingSize, MaxRingSize)
	if err != nil {
		t.Fatalf("the real client after hostile ones: %v", err)
	}
	s.Close()
	c.Close()
}

// TestHostileClientLink sends bad messages and descriptors over an established link: each
// costs the client its link (the server closes it and the offer fails), never the server
// more.
func TestHostileClientLink(t *testing.T) {
	defer checkLeaks(t)()
	const size = MinRingSize
	good := segmentSize(size, 1)
	tmp, err := os.CreateTemp(t.TempDir(), "notmemfd")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Truncate(good)
	tmp.Close()
	seg := func(ring, n int) []byte { return newMsg(msgSeg).u32(1).u32(uint32(ring)).u32(uint32(n)).u32(0) }
	tests := []struct {
		name string
		msg  []byte
		fds  func() []int
	}{
		{"unsealed memfd", seg(size, 1), func() []int { return []int{memfd(t, good, 0)} }},
		{"memfd that can shrink", seg(size, 1), func() []int { return []int{memfd(t, good, unix.F_SEAL_GROW|unix.F_SEAL_SEAL)} }},
		{"memfd that can be resealed", seg(size, 1), func() []int { return []int{memfd(t, good, unix.F_SEAL_GROW|unix.F_SEAL_SHRINK)} }},
		{"write-sealed memfd", seg(size, 1), func() []int { return []int{memfd(t, good, requiredSeals|unix.F_SEAL_WRITE)} }},
		{"wrong size", seg(size, 1), func() []int { return []int{memfd(t, good+4096, requiredSeals)} }},
		{"declared slots differ", seg(size, 2), func() []int { return []int{memfd(t, good, requiredSeals)} }},
		{"ring not a power of two", seg(size+1, 1), func() []int { return []int{memfd(t, good, requiredSeals)} }},
		{"too many slots", seg(size, maxSegSlots+1), func() []int { return []int{memfd(t, good, requiredSeals)} }},
		{"not a memfd: regular file", seg(size, 1), func() []int {
			fd, _ := unix.Open(tmp.Name(), unix.O_RDWR|unix.O_CLOEXEC, 0)
			return []int{fd}
		}},
		{"not a memfd: pipe", seg(size, 1), func() []int {
			var p [2]int
			unix.Pipe2(p[:], unix.O_CLOEXEC)
			unix.Close(p[1])
			return p[:1]
		}},
		{"read-only memfd", seg(size, 1), func() []int {
			fd := memfd(t, good, requiredSeals)
			defer unix.Close(fd)
			ro, _ := unix.Open("/proc/self/fd/"+itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			return []int{ro}
		}},
		{"two descriptors", seg(size, 1), func() []int { return []int{memfd(t, good, requiredSeals), memfd(t, good, requiredSeals)} }},
		{"many descriptors", seg(size, 1), func() []int {
			var fds []int
			for range 20 {
				fds = append(fds, memfd(t, good, requiredSeals))
			}
			return fds
		}},
		{"segment without descriptor", seg(size, 1), nil},
		{"segment index beyond 16 bits", newMsg(msgSeg).u32(1 << 16).u32(size).u32(1).u32(0), func() []int { return []int{memfd(t, good, requiredSeals)} }},
		{"descriptor on a cancel", newMsg(msgCancel).u64(1), func() []int { return []int{memfd(t, good, requiredSeals)} }},
		{"cancel to a server", newMsg(msgCancel).u64(1), nil},
		{"ready to a server", newMsg(msgReady).u64(1), nil},
		{"unknown type", newMsg(200).u64(0), nil},
		{"segment acknowledgement not 0 or 1", newMsg(msgSegAck).u32(0).u32(2), nil},
		{"withdrawal of an unknown segment", newMsg(msgSegDel).u32(77).u32(0), nil},
		{"poller page without descriptor", newMsg(msgPoll).u64(0), nil},
		{"poller page with a reserved field", newMsg(msgPoll).u64(1), func() []int { return []int{memfd(t, good, requiredSeals)} }},
		{"poller page of the wrong size", newMsg(msgPoll).u64(0), func() []int { return []int{memfd(t, good+4096, requiredSeals)} }},
		{"unsealed poller page", newMsg(msgPoll).u64(0), func() []int { return []int{memfd(t, good, 0)} }},
		{"two poller pages in one message", newMsg(msgPoll).u64(0), func() []int { return []int{memfd(t, good, requiredSeals), memfd(t, good, requiredSeals)} }},
	}
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := offer(t, e, PeerID{2, byte(i)}, size)
			r := dialRaw(t, e.Addr())
			if r.setUp(o) == 0 {
				t.Fatal("READY refused the founding slot")
			}
			var fds []int
			if tt.fds != nil {
				fds = tt.fds()
			}
			r.send(tt.msg, fds...)
			r.wantEOF()
			bindFails(t, o)
		})
	}
	t.Run("poller page announced twice", func(t *testing.T) {
		o := offer(t, e, PeerID{4}, size)
		r := dialRaw(t, e.Addr())
		r.setUp(o)
		r.send(newMsg(msgPoll).u64(0), memfd(t, good, requiredSeals)) // mapped
		r.send(newMsg(msgPoll).u64(0), memfd(t, good, requiredSeals))
		r.wantEOF()
		bindFails(t, o)
	})
}

// TestTokenBinding checks that a wrong secret proves nothing and consumes nothing, that
// a secret sets a link up once, and that a cancelled offer's secret is dead.
func TestTokenBinding(t *testing.T) {
	defer checkLeaks(t)()
	const size = MinRingSize
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	o := offer(t, e, PeerID{4}, size)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Connect(ctx, "", o.LinkID(), o.Token()+1, size, size, MaxRingSize); !errors.Is(err, ErrNotProven) {
		t.Fatalf("wrong secret: %v, want ErrNotProven", err)
	}
	s, c, err := bindPair(ctx, "", o, size, MaxRingSize)
	if err != nil {
		t.Fatalf("right secret after a wrong one: %v", err)
	}
	defer s.Close()
	defer c.Close()
	if _, err := Connect(ctx, "", o.LinkID(), o.Token(), size, size, MaxRingSize); err == nil {
		t.Fatal("a secret worked twice")
	}
	o2 := offer(t, e, PeerID{5}, size)
	o2.Cancel()
	if _, err := Connect(ctx, "", o2.LinkID(), o2.Token(), size, size, MaxRingSize); err == nil {
		t.Fatal("a cancelled offer's secret set a link up")
	}
	if _, err := o2.Bind(makeToken(1, 0, 0), size); !errors.Is(err, ErrOfferClosed) {
		t.Fatalf("Bind after Cancel: %v", err)
	}
}

// TestHostileServer answers a client's hello with garbage, a proof made without the
// secret, or nothing: Connect fails by its context and writes nothing.
func TestHostileServer(t *testing.T) {
	defer checkLeaks(t)()
	const size = MinRingSize
	for _, tt := range []struct {
		name  string
		reply func(hello []byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte{1, 2, 3} }},
		{"proof without the secret", func([]byte) []byte {
			return newMsg(msgAuth).bytes(make([]byte, nonceLen)).bytes(make([]byte, proofLen))
		}},
		{"ready at once", func([]byte) []byte { return newMsg(msgReady).u64(1) }},
		{"silence", func([]byte) []byte { return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := uint16(rand.Uint32())
			ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: Addr("", id), Net: "unixpacket"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan []byte, 8)
			go func() {
				defer close(got)
				c, err := ln.AcceptUnix()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 1024)
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if m := tt.reply(buf[:n]); m != nil {
					c.Write(m)
				}
				for {
					n, err := c.Read(buf)
					if err != nil || n == 0 {
						return
					}
					got <- append([]byte(nil), buf[:n]...)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			s, err := Connect(ctx, "", uint32(id)<<16|1, 12345, size, size, MaxRingSize)
			if err == nil {
				s.Close()
				t.Fatal("client accepted a hostile server")
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("Connect took %v past its context", time.Since(start))
			}
			ln.Close()
			for m := range got {
				t.Fatalf("the client sent message type %d to a server that proved nothing", m[0])
			}
		})
	}
}

// TestSealedSegment checks what the peer cannot do to a segment we created.
func TestSealedSegment(t *testing.T) {
	g, err := newSegment(0, MinRingSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.unmap()
	if err := unix.Ftruncate(g.fd, 0); err == nil {
		t.Fatal("a segment could be truncated")
	}
	if err := unix.Ftruncate(g.fd, 2*segmentSize(MinRingSize, 2)); err == nil {
		t.Fatal("a segment could be grown")
	}
	if _, err := unix.FcntlInt(uintptr(g.fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); err == nil {
		t.Fatal("a segment could be sealed against writes")
	}
}

// TestPeerSegmentShrunkBeforeSeal: the peer holds the memfd it sends, and can shrink it
// and then seal it while we validate it. We must read its size after we saw the seals,
// or we map the size from before the shrink and fault (SIGBUS) on the pages beyond the
// end of the file: nothing mapPeerSegment mapped may fault.
func TestPeerSegmentShrunkBeforeSeal(t *testing.T) {
	const rounds = 20000
	mapped, faults := testenv.ShrinkBeforeSeal(t, rounds, segmentSize(MinRingSize, 1), requiredSeals,
		func(fd int) ([]byte, func()) {
			sent, err := dupFD(fd) // mapPeerSegment takes it
			if err != nil {
				t.Fatal(err)
			}
			g, err := mapPeerSegment(sent, 0, MinRingSize, 1)
			if err != nil {
				return nil, nil
			}
			return g.mem, g.unmapPeer
		})
	if faults > 0 {
		t.Fatalf("%d of %d mappings of a peer segment shrunk before its seals faulted", faults, mapped)
	}
	t.Logf("%d rounds, %d mapped", rounds, mapped)
}

// TestMemoryLimit checks the process bound on own memory, counted as it is resident: a
// new link is refused at Offer when its first segment's headers and first window do not
// fit, a pool that cannot grow refuses the connection, and what fits still works.
func TestMemoryLimit(t *testing.T) {
	defer checkLeaks(t)()
	quiesce(t)
	// What a new link's first stream holds on each side: the headers of a segment of
	// one slot, the slot's first window, and the poller page's headers.
	first := int64(2*headersSize(1) + firstWindow)
	defer SetMemoryLimit(SetMemoryLimit(MemoryInUse() + first/2))
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Offer(context.Background(), PeerID{6}, 8*MinRingSize, MaxRingSize); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("Offer of a new link beyond the bound: %v", err)
	}
	// Both ends live in this process: room for one link's first stream each.
	SetMemoryLimit(MemoryInUse() + 2*first)
	a, b := pairOn(t, e, PeerID{6}, MinRingSize, MinRingSize)
	defer a.Close()
	defer b.Close()
	if _, err := e.Offer(context.Background(), PeerID{6}, MinRingSize, MaxRingSize); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("Offer on a full pool beyond the bound: %v", err)
	}
	if c := ReadCounters(); c.MemoryInUse != MemoryInUse() || c.PeerMemory < int64(2*(headersSize(1)+firstWindow)) {
		t.Fatalf("counters %+v: both segments' headers and first windows are counted by the peer too", c)
	}
}

// TestOversizedRing checks that a side maps no peer ring larger than it accepts.
func TestOversizedRing(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A new link: the client refuses before it connects.
	o := offer(t, e, PeerID{7}, 64<<10)
	c0 := ReadCounters()
	if _, err := Connect(ctx, "", o.LinkID(), o.Token(), MinRingSize, 64<<10, 16<<10); !errors.Is(err, ErrBadSize) {
		t.Fatalf("Connect to a larger ring than accepted: %v, want ErrBadSize", err)
	}
	if c := ReadCounters(); c.PeerSegmentsMapped != c0.PeerSegmentsMapped || c.LinksOpened != c0.LinksOpened {
		t.Fatal("something was mapped or a link set up for a refused ring")
	}
	o.Cancel()
	// An existing link whose client accepts 16 KiB rings, and whose server accepts
	// 16 KiB rings: the server's 64 KiB segment is refused, so its offer fails, and
	// the client mapped nothing of it.
	o, err = e.Offer(ctx, PeerID{8}, 16<<10, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	s, c, err := bindPair(ctx, "", o, 16<<10, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer c.Close()
	c0 = ReadCounters()
	if _, err := e.Offer(ctx, PeerID{8}, 64<<10, MaxRingSize); !errors.Is(err, ErrBadSize) {
		t.Fatalf("Offer of a ring the client does not accept: %v, want ErrBadSize", err)
	}
	if c := ReadCounters(); c.PeerSegmentsMapped != c0.PeerSegmentsMapped {
		t.Fatal("the client mapped a segment of rings larger than it accepts")
	}
	// And the other way: a client ring larger than the server maps on this link is
	// refused with its segment, before the client could confirm: it declines.
	o2, err := e.Offer(ctx, PeerID{8}, 16<<10, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	c0 = ReadCounters()
	if _, err := Connect(ctx, "", o2.LinkID(), o2.Token(), 64<<10, 16<<10, MaxRingSize); !errors.Is(err, ErrBadSize) {
		t.Fatalf("a client ring larger than the server accepts: %v, want ErrBadSize", err)
	}
	if c := ReadCounters(); c.PeerSegmentsMapped != c0.PeerSegmentsMapped {
		t.Fatal("the server mapped a segment of client rings larger than it accepts")
	}
	// The server hears the decline and withdraws its offer; the client, which bound
	// nothing to it, releases the slot at once.
	o2.Cancel()
	waitFor(t, "the withdrawn slot freed", func() bool { return ReadCounters().SlotsInUse == c0.SlotsInUse-1 })
}

// storePollWord stores x in the poller word p points to, if the page is mapped.
func storePollWord(p *atomic.Pointer[atomic.Uint32], x uint64) {
	if w := p.Load(); w != nil {
		w.Store(uint32(x))
	}
}

// FuzzHostileStream drives a real stream pair: the input is a script of 64-bit stores a
// hostile peer makes into the words of both control areas and both poller pages,
// interleaved with the victim's reads and writes under a short deadline. Whatever the
// script, the victim's calls return by their deadline with data or an allowed error, and
// never panic. A script makes at
// most maxVictimCalls calls: each may wait out its 2 ms deadline, and an input of
// thousands of them would take seconds without reaching any state a short one cannot.
func FuzzHostileStream(f *testing.F) {
	const maxVictimCalls = 64
	f.Add([]byte{0, 16, 0, 0, 0, 0, 0, 0, 0, 0x80})
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0x81, 3, 255, 255, 255, 255, 255, 255, 255, 255, 0x82})
	f.Add([]byte{4, 5, 0, 0, 0, 0, 0, 0, 0, 0x83, 0x80, 0x81})
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0xc1, 0x80})
	f.Fuzz(func(t *testing.T, script []byte) {
		v, h := socketPair(t, 4*MinRingSize, 4*MinRingSize) // larger than the first window
		words := []func(uint64){
			func(x uint64) { h.txh.prod.cursor.Store(x) },
			func(x uint64) { h.txh.prodCtl.flags.Store(uint32(x)) },
			func(x uint64) { h.txh.prodCtl.sleep.Store(uint32(x)) },
			func(x uint64) { h.rxh.cons.cursor.Store(x) },
			func(x uint64) { h.rxh.consCtl.flags.Store(uint32(x)) },
			func(x uint64) { h.rxh.consCtl.sleep.Store(uint32(x)) },
			func(x uint64) { h.rxh.consCtl.window.Store(uint32(x)) },
			func(x uint64) { h.txh.prodCtl.window.Store(uint32(x)) },
			// The hostile side's poller word, which the victim reads, and the victim's,
			// which the hostile side maps too and may overwrite.
			func(x uint64) { storePollWord(&v.link.peerPoll, x) },
			func(x uint64) { storePollWord(&v.link.ownPoll, x) },
		}
		buf := make([]byte, 3*MinRingSize)
		calls := 0
		for len(script) > 0 {
			op := script[0]
			script = script[1:]
			if op&0x80 != 0 { // a victim call
				if calls++; calls > maxVictimCalls {
					break
				}
				deadline := time.Now().Add(2 * time.Millisecond)
				v.SetDeadline(deadline)
				var err error
				n := int(op&0x3f) * 64
				if op&0x40 != 0 {
					_, err = v.Write(buf[:n])
				} else {
					_, err = v.Read(buf[:n])
				}
				if time.Since(deadline) > time.Second {
					t.Fatalf("call returned %v after its deadline", time.Since(deadline))
				}
				if err != nil && err != io.EOF && !isTimeout(err) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			if len(script) < 8 {
				return
			}
			words[int(op)%len(words)](binary.LittleEndian.Uint64(script))
			script = script[8:]
		}
		v.Close()
		h.Close()
	})
}
