package shm

import (
	"flag"
	"io"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

var benchRings = []int{256 << 10, 1 << 20, 4 << 20}

// bulkRings are the ring sizes of the bulk benchmarks: the root package's default ring
// (smc.DefaultBufferSize) and larger ones.
var bulkRings = []int{64 << 10, 256 << 10, 1 << 20, 4 << 20}

var spinFlag = flag.Duration("shm.spin", DefaultSpin, "spin time before parking, for tuning benchmarks (child processes inherit it)")

func setSpinFlag(b *testing.B) {
	old := SetSpin(*spinFlag)
	b.Cleanup(func() { SetSpin(old) })
}

// BenchmarkPingPong measures 64-byte round trips, between two goroutines of this process
// and between this process and a child process. ns/op is one round trip.
func BenchmarkPingPong(b *testing.B) {
	setSpinFlag(b)
	for _, size := range benchRings {
		b.Run("goroutines/ring="+ringName(size), func(b *testing.B) {
			x, y := pair(b, size, size)
			go echo(y)
			cpu := cpuTime()
			pingPong(b, x)
			reportCPU(b, cpu, nil)
		})
		b.Run("processes/ring="+ringName(size), func(b *testing.B) { pingPongChild(b, "echo", size) })
	}
}

// BenchmarkThinkTime is a 64-byte request/response against a child process that takes
// 200 µs to answer: what matters here is the CPU (cpu-ns/op, both processes) spent
// waiting, which spinning wastes when the answer cannot come within the spin budget.
func BenchmarkThinkTime(b *testing.B) {
	setSpinFlag(b)
	pingPongChild(b, "slowecho", 1<<20)
}

// pingPongChild runs pingPong against a child process in role (echo or slowecho) with
// rings of size bytes, and reports the CPU time of both processes.
func pingPongChild(b *testing.B, role string, size int) {
	e, err := Listen(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	s, cmd := startChild(b, e, role, size)
	cpu := cpuTime()
	pingPong(b, s)
	s.CloseWrite()
	io.Copy(io.Discard, s)
	s.Close()
	cmd.Wait()
	reportCPU(b, cpu, cmd)
}

func echo(s *Stream) {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if err != nil {
			return
		}
		if _, err := s.Write(buf[:n]); err != nil {
			return
		}
	}
}

func pingPong(b *testing.B, s *Stream) {
	buf := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "ns/rtt")
}

// BenchmarkBulk measures one-way throughput with 64 KiB writes, to a goroutine of this
// process and to a child process, reported in GB/s. With reader=read the receiver Reads
// into a 1 MiB buffer, as smc perf's sink does, so the data crosses to its CPU (compare
// BenchmarkBareBulk/reader=copy); with reader=discard it passes the ring's bytes to
// io.Discard through WriteTo, touching none of them.
func BenchmarkBulk(b *testing.B) {
	setSpinFlag(b)
	const chunk = 64 << 10
	for _, size := range bulkRings {
		for _, role := range []string{"read", "discard"} {
			sub := "/ring=" + ringName(size) + "/reader=" + role
			b.Run("goroutines"+sub, func(b *testing.B) {
				x, y := pair(b, size, size)
				done := make(chan struct{})
				go func() {
					sink(y, role)
					y.Write([]byte{1})
					close(done)
				}()
				cpu := cpuTime()
				bulk(b, x, chunk)
				<-done
				reportCPU(b, cpu, nil)
			})
			b.Run("processes"+sub, func(b *testing.B) {
				e, err := Listen(Config{})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				s, cmd := startChild(b, e, "sink-"+role, size)
				cpu := cpuTime()
				bulk(b, s, chunk)
				s.Close()
				cmd.Wait()
				reportCPU(b, cpu, cmd)
			})
		}
	}
}

// sink reads s until EOF, with Read into a 1 MiB buffer (role "read") or with WriteTo to
// io.Discard (role "discard").
func sink(s *Stream, role string) error {
	if role == "discard" {
		_, err := s.WriteTo(io.Discard)
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := s.Read(buf); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// bulk writes b.N chunks, then waits for the peer's one-byte acknowledgement of EOF.
func bulk(b *testing.B, s *Stream, chunk int) {
	buf := filled(chunk)
	b.SetBytes(int64(chunk))
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := s.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	s.CloseWrite()
	if _, err := io.ReadFull(s, buf[:1]); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(chunk)*float64(b.N)/time.Since(start).Seconds()/1e9, "GB/s")
}

// filled returns n bytes that are not all zero, as smc perf writes: a buffer that was
// never written may read from the kernel's one zero page, which is always in cache.
func filled(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

// cpuTime returns this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time both sides used per operation since start: this
// process's, plus the whole life of the child process if there is one (its set-up is
// negligible next to b.N operations).
func reportCPU(b *testing.B, start time.Duration, child *exec.Cmd) {
	used := cpuTime() - start
	if child != nil && child.ProcessState != nil {
		used += child.ProcessState.UserTime() + child.ProcessState.SystemTime()
	}
	b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkHotPath is the software cost of the fast path alone: one goroutine writes 64
// bytes into a stream and reads them back from the other end, so no call ever waits and
// no other CPU is involved. ns/op is one Write plus one Read. With "deadline", both ends
// have read and write deadlines set, as servers usually do.
func BenchmarkHotPath(b *testing.B) {
	for _, dl := range []bool{false, true} {
		name := "nodeadline"
		if dl {
			name = "deadline"
		}
		b.Run(name, func(b *testing.B) {
			x, y := pair(b, 1<<20, 1<<20)
			if dl {
				x.SetDeadline(time.Now().Add(time.Hour))
				y.SetDeadline(time.Now().Add(time.Hour))
			}
			buf := make([]byte, 64)
			for b.Loop() {
				if _, err := x.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := y.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBareRing is the floor under BenchmarkPingPong/goroutines: the same 64-byte
// round trip over two rings with the DMB layout and the same atomics (the writer loads
// the consumer's flags, and its cursor only when its last view leaves too little space,
// copies, stores its cursor ahead (storeAhead), Swaps it and loads the reader's sleep
// word; the reader polls the producer cursor, loads the producer's flags, copies, Swaps
// its cursor and loads the writer's sleep word), without a Stream: no lock, validation,
// deadline, spin budget or yield.
// The cursors are published with Swap, as the stream does (see dekkerStore), not
// Store: a plain store can linger in the store buffer while its core spins on loads,
// which makes a Store ring slower than the stream's protocol, not a floor under it.
// Both goroutines busy-poll, each locked to its own thread, so ns/op is what moving
// those cache lines between two CPUs costs on this machine, which varies with where
// the host places the virtual CPUs.
func BenchmarkBareRing(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("two goroutines busy-poll: needs GOMAXPROCS >= 2")
	}
	const size = 1 << 20
	type ring struct {
		h    *header
		data []byte
		cons uint64 // the writer's last view of the consumer cursor
	}
	newRing := func() *ring {
		const hdr = 4096              // the header in a page of its own, as in a segment's header area
		mem := make([]byte, hdr+size) // a large allocation: page-aligned
		return &ring{h: (*header)(unsafe.Pointer(&mem[0])), data: mem[hdr:]}
	}
	write := func(r *ring, prod *uint64, p []byte) {
		_ = r.h.consCtl.flags.Load()
		for *prod+uint64(len(p))-r.cons > size {
			r.cons = r.h.cons.cursor.Load()
		}
		copy(r.data[*prod&(size-1):], p)
		*prod += uint64(len(p))
		storeAhead(&r.h.prod.cursor, *prod)
		r.h.prod.cursor.Swap(*prod)
		_ = r.h.consCtl.sleep.Load()
	}
	read := func(r *ring, cons *uint64, p []byte) {
		for r.h.prod.cursor.Load()-*cons < uint64(len(p)) {
		}
		_ = r.h.prodCtl.flags.Load()
		copy(p, r.data[*cons&(size-1):])
		*cons += uint64(len(p))
		r.h.cons.cursor.Swap(*cons)
		_ = r.h.prodCtl.sleep.Load()
	}
	ping, pong := newRing(), newRing()
	n := b.N
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		buf := make([]byte, 64)
		var prod, cons uint64
		for range n {
			read(ping, &cons, buf)
			write(pong, &prod, buf)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 64)
	var prod, cons uint64
	b.ResetTimer()
	for range n {
		write(ping, &prod, buf)
		read(pong, &cons, buf)
	}
	<-done
}

// BenchmarkBareBulk is the floor under BenchmarkBulk and smc perf's bulk scenario: 64 KiB
// writes through one ring with the DMB layout and the stream's atomics, without a Stream.
// The writer copies each write in chunks of a quarter ring (txCursor.chunk), waiting for
// room by polling the consumer cursor; after each chunk it stores its cursor (Swap) and
// loads the reader's sleep word. With writer=store it copies as the stream does
// (storeRing), with writer=copy with the built-in copy. The reader polls the producer
// cursor and, with reader=copy, copies what is there (at most its 1 MiB buffer, as smc
// perf's sink reads) out of the ring; with reader=discard it touches no data, as
// WriteTo(io.Discard) in BenchmarkBulk; then it stores its cursor (Swap) and loads the
// writer's sleep word. No lock, validation, deadline, spin budget or wake-up. Both
// goroutines busy-poll, so cpu-ns/op is twice the time; GB/s is what moving the data
// between two CPUs costs on this machine, which varies with where the host places the
// virtual CPUs.
func BenchmarkBareBulk(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("two goroutines busy-poll: needs GOMAXPROCS >= 2")
	}
	for _, size := range bulkRings {
		for _, writer := range []string{"store", "copy"} {
			for _, reader := range []string{"copy", "discard"} {
				b.Run("ring="+ringName(size)+"/writer="+writer+"/reader="+reader, func(b *testing.B) {
					bareBulk(b, uint64(size), writer == "store", reader == "copy")
				})
			}
		}
	}
}

func bareBulk(b *testing.B, size uint64, store, copyOut bool) {
	const write = 64 << 10
	const hdr = 4096              // the header in a page of its own, as in a segment's header area
	mem := make([]byte, hdr+size) // a large allocation: page-aligned
	h, ring := (*header)(unsafe.Pointer(&mem[0])), mem[hdr:]
	chunk := size / 4
	total := uint64(b.N) * write
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<20)
		var cons uint64
		for cons < total {
			prod := h.prod.cursor.Load()
			if prod == cons {
				continue
			}
			off := cons & (size - 1)
			n := min(prod-cons, size-off, uint64(len(buf)))
			if copyOut {
				copy(buf[:n], ring[off:off+n])
			}
			cons += n
			h.cons.cursor.Swap(cons)
			_ = h.prodCtl.sleep.Load()
		}
	}()
	src := filled(write)
	b.SetBytes(write)
	cpu := cpuTime()
	b.ResetTimer()
	start := time.Now()
	var prod uint64
	for range b.N {
		for p := src; len(p) > 0; {
			free := size - (prod - h.cons.cursor.Load())
			if free == 0 {
				continue
			}
			off := prod & (size - 1)
			n := min(free, chunk, size-off, uint64(len(p)))
			if store {
				storeRing(ring[off:off+n], p[:n])
			} else {
				copy(ring[off:off+n], p[:n])
			}
			p = p[n:]
			prod += n
			h.prod.cursor.Swap(prod)
			_ = h.consCtl.sleep.Load()
		}
	}
	<-done
	b.ReportMetric(float64(total)/time.Since(start).Seconds()/1e9, "GB/s")
	reportCPU(b, cpu, nil)
}
