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
	"syscall"
	"testing"
	"time"

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
		{"unknown producer flag", func(v, h *Stream) { h.txh.prod.flags.Store(1 << 7) }, read},
		{"producer flag cleared", func(v, h *Stream) {
			h.CloseWrite()
			v.Read(make([]byte, 1)) // EOF: victim saw fDone
			h.txh.prod.flags.Store(0)
		}, read},
		{"producer moved after done", func(v, h *Stream) {
			h.CloseWrite()
			v.Read(make([]byte, 1))
			h.txh.prod.cursor.Store(10)
		}, read},
		{"consumer beyond producer", func(v, h *Stream) {
			v.Write(make([]byte, 10))
			h.rxh.cons.cursor.Store(11)
		}, write},
		{"consumer backwards", func(v, h *Stream) {
			v.Write(make([]byte, 10))
			h.rxh.cons.cursor.Store(math.MaxUint64)
		}, write},
		{"unknown consumer flag", func(v, h *Stream) { h.rxh.cons.flags.Store(0xffff0000) }, write},
		{"garbage control message", func(v, h *Stream) { h.ctrl.Write([]byte{0xff, 0xee}) }, read},
		{"unknown wake bits", func(v, h *Stream) { h.ctrl.Write([]byte{0x80}) }, read},
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
			if f := v.txh.prod.flags.Load(); f&fAbort == 0 {
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
				for _, m := range [][]byte{h.txd.mem[:256], h.rxd.mem[:256]} {
					off := rng.IntN(len(m)/4) * 4
					binary.LittleEndian.PutUint32(m[off:], rng.Uint32()>>rng.IntN(32))
				}
				h.txd.ring[rng.IntN(len(h.txd.ring))] = byte(rng.Uint32())
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

// memfd returns a memfd of total bytes with the given seals added.
func memfd(t *testing.T, total int64, seals int) int {
	t.Helper()
	fd, err := unix.MemfdCreate("hostile", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, total); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

func sendRaw(t *testing.T, addr string, msg []byte, fds ...int) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: addr, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(msg, oob, nil); err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	return c
}

// TestHostileClient presents bad tokens, descriptors and messages to a server's endpoint.
func TestHostileClient(t *testing.T) {
	defer checkLeaks(t)()
	const size = MinRingSize
	good := int64(HeaderSize + size)
	tmp, err := os.CreateTemp(t.TempDir(), "notmemfd")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Truncate(good)
	tmp.Close()
	tests := []struct {
		name string
		msg  func(token uint64) []byte
		fds  func() []int
		// pending: the message is rejected before its token is looked at, so the offer
		// stays open (and times out here); otherwise the offer fails with a violation.
		pending bool
	}{
		{"unsealed memfd", helloFor(size), func() []int { return []int{memfd(t, good, 0)} }, false},
		{"memfd that can shrink", helloFor(size), func() []int { return []int{memfd(t, good, unix.F_SEAL_GROW|unix.F_SEAL_SEAL)} }, false},
		{"memfd that can be resealed", helloFor(size), func() []int { return []int{memfd(t, good, unix.F_SEAL_GROW|unix.F_SEAL_SHRINK)} }, false},
		{"write-sealed memfd", helloFor(size), func() []int { return []int{memfd(t, good, requiredSeals|unix.F_SEAL_WRITE)} }, false},
		{"wrong size", helloFor(size), func() []int { return []int{memfd(t, good+4096, requiredSeals)} }, false},
		{"declared size differs", helloFor(2 * size), func() []int { return []int{memfd(t, good, requiredSeals)} }, false},
		{"not a memfd: regular file", helloFor(size), func() []int {
			fd, _ := unix.Open(tmp.Name(), unix.O_RDWR|unix.O_CLOEXEC, 0)
			return []int{fd}
		}, false},
		{"not a memfd: pipe", helloFor(size), func() []int {
			var p [2]int
			unix.Pipe2(p[:], unix.O_CLOEXEC)
			unix.Close(p[1])
			return p[:1]
		}, false},
		{"read-only memfd", helloFor(size), func() []int {
			fd := memfd(t, good, requiredSeals)
			defer unix.Close(fd)
			ro, _ := unix.Open("/proc/self/fd/"+itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			return []int{ro}
		}, false},
		{"two descriptors", helloFor(size), func() []int {
			return []int{memfd(t, good, requiredSeals), memfd(t, good, requiredSeals)}
		}, true},
		{"many descriptors", helloFor(size), func() []int {
			var fds []int
			for range 20 {
				fds = append(fds, memfd(t, good, requiredSeals))
			}
			return fds
		}, true},
		{"no descriptor", helloFor(size), func() []int { return nil }, true},
		{"long message", func(token uint64) []byte { return append(helloFor(size)(token), 0) }, func() []int { return []int{memfd(t, good, requiredSeals)} }, true},
		{"bad version", func(token uint64) []byte { b := helloFor(size)(token); b[4] = 9; return b }, func() []int { return []int{memfd(t, good, requiredSeals)} }, true},
		{"wrong token", func(token uint64) []byte { return helloFor(size)(token + 1) }, func() []int { return []int{memfd(t, good, requiredSeals)} }, true},
	}
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := e.Offer(size)
			if err != nil {
				t.Fatal(err)
			}
			c := sendRaw(t, e.Addr(), tt.msg(o.Token()), tt.fds()...)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			s, err := o.Wait(ctx)
			switch {
			case err == nil:
				s.Close()
				t.Fatal("offer accepted a hostile client")
			case tt.pending && !errors.Is(err, context.DeadlineExceeded):
				t.Fatalf("offer: %v, want it still pending", err)
			case !tt.pending && !isViolation(err):
				t.Fatalf("offer: %v, want a protocol violation", err)
			}
			// The server answers a hostile client with nothing but a closed socket.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, _, _, err := c.ReadMsgUnix(make([]byte, 64), make([]byte, 64))
			if n != 0 {
				t.Fatalf("server sent %d bytes to a hostile client (%v)", n, err)
			}
		})
	}
}

func helloFor(size int) func(uint64) []byte {
	return func(token uint64) []byte { return hello{token: token, size: uint64(size)}.append(nil) }
}

// TestTokenBinding checks that a wrong token gets nothing and consumes nothing, and that a
// token works once.
func TestTokenBinding(t *testing.T) {
	defer checkLeaks(t)()
	const size = MinRingSize
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	o, err := e.Offer(size)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Connect(ctx, e.Addr(), o.Token()+1, size, size); err == nil {
		t.Fatal("wrong token connected")
	}
	errc := make(chan error, 1)
	go func() {
		s, err := Connect(ctx, e.Addr(), o.Token(), size, size)
		if err == nil {
			defer s.Close()
		}
		errc <- err
	}()
	s, err := o.Wait(ctx)
	if err != nil {
		t.Fatalf("right token after a wrong one: %v", err)
	}
	defer s.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(ctx, e.Addr(), o.Token(), size, size); err == nil {
		t.Fatal("a token worked twice")
	}
	// A cancelled offer's token is dead too, and its memory released.
	o2, err := e.Offer(size)
	if err != nil {
		t.Fatal(err)
	}
	o2.Cancel()
	if _, err := Connect(ctx, e.Addr(), o2.Token(), size, size); err == nil {
		t.Fatal("a cancelled token connected")
	}
	if _, err := o2.Wait(ctx); !errors.Is(err, ErrOfferClosed) {
		t.Fatalf("Wait after Cancel: %v", err)
	}
}

// TestHostileServer answers a client's hello with bad descriptors.
func TestHostileServer(t *testing.T) {
	defer checkLeaks(t)()
	const size = MinRingSize
	good := int64(HeaderSize + size)
	for _, tt := range []struct {
		name  string
		reply func() ([]byte, []int)
	}{
		{"unsealed", func() ([]byte, []int) { return helloFor(size)(0), []int{memfd(t, good, 0)} }},
		{"wrong size", func() ([]byte, []int) { return helloFor(2 * size)(0), []int{memfd(t, 2*good, requiredSeals)} }},
		{"nonzero token", func() ([]byte, []int) { return helloFor(size)(7), []int{memfd(t, good, requiredSeals)} }},
		{"silence", func() ([]byte, []int) { return nil, nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := Addr("", uint32(rand.Uint32()))
			ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: addr, Net: "unixpacket"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.AcceptUnix()
				if err != nil {
					return
				}
				defer c.Close()
				_, fd, err := readHello(c)
				if err == nil {
					unix.Close(fd)
				}
				msg, fds := tt.reply()
				if msg != nil {
					c.WriteMsgUnix(msg, unix.UnixRights(fds...), nil)
				}
				for _, fd := range fds {
					unix.Close(fd)
				}
				time.Sleep(300 * time.Millisecond)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			s, err := Connect(ctx, addr, 1, size, size)
			if err == nil {
				s.Close()
				t.Fatal("client accepted a hostile server")
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("Connect took %v past its context", time.Since(start))
			}
		})
	}
}

// TestSealedDMB checks what the peer cannot do to a DMB we created.
func TestSealedDMB(t *testing.T) {
	d, err := newDMB(MinRingSize)
	if err != nil {
		t.Fatal(err)
	}
	defer d.release()
	if err := unix.Ftruncate(d.fd, 0); err == nil {
		t.Fatal("a DMB could be truncated")
	}
	if err := unix.Ftruncate(d.fd, HeaderSize+2*MinRingSize); err == nil {
		t.Fatal("a DMB could be grown")
	}
	if _, err := unix.FcntlInt(uintptr(d.fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); err == nil {
		t.Fatal("a DMB could be sealed against writes")
	}
}

func TestMemoryLimit(t *testing.T) {
	defer checkLeaks(t)()
	defer SetMemoryLimit(SetMemoryLimit(MemoryInUse() + 3*(HeaderSize+MinRingSize)))
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	o1, err := e.Offer(MinRingSize)
	if err != nil {
		t.Fatal(err)
	}
	defer o1.Cancel()
	if _, err := e.Offer(4 * MinRingSize); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("Offer beyond the limit: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Connect(ctx, e.Addr(), o1.Token(), 4*MinRingSize, MinRingSize); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("Connect beyond the limit: %v", err)
	}
	o2, err := e.Offer(2 * MinRingSize) // fits in what is left
	if err != nil {
		t.Fatalf("Offer within the limit: %v", err)
	}
	o2.Cancel()
}

// FuzzHostileStream drives a real stream pair: the input is a script of 64-bit stores a
// hostile peer makes into the words of both control areas, interleaved with the victim's
// reads and writes under a short deadline. Whatever the script, the victim's calls return
// by their deadline with data or an allowed error, and never panic. A script makes at
// most maxVictimCalls calls: each may wait out its 2 ms deadline, and an input of
// thousands of them would take seconds without reaching any state a short one cannot.
func FuzzHostileStream(f *testing.F) {
	const maxVictimCalls = 64
	f.Add([]byte{0, 16, 0, 0, 0, 0, 0, 0, 0, 0x80})
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0x81, 3, 255, 255, 255, 255, 255, 255, 255, 255, 0x82})
	f.Add([]byte{4, 5, 0, 0, 0, 0, 0, 0, 0, 0x83, 0x80, 0x81})
	f.Fuzz(func(t *testing.T, script []byte) {
		v, h := socketPair(t, MinRingSize, MinRingSize)
		words := []func(uint64){
			func(x uint64) { h.txh.prod.cursor.Store(x) },
			func(x uint64) { h.txh.prod.flags.Store(uint32(x)) },
			func(x uint64) { h.txh.prod.sleep.Store(uint32(x)) },
			func(x uint64) { h.rxh.cons.cursor.Store(x) },
			func(x uint64) { h.rxh.cons.flags.Store(uint32(x)) },
			func(x uint64) { h.rxh.cons.sleep.Store(uint32(x)) },
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
