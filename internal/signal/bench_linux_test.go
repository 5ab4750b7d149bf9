package signal

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// benchRounds is how many times BenchmarkConn repeats its variants, interleaved, so
// that one run gives paired samples (SMC_BENCH_ROUNDS, default 1).
func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("SMC_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 1
}

// BenchmarkConn measures one loopback connection (dial, accept, close both ends, the
// client with linger 0 so no TIME_WAIT piles up) in the benchmark's own child cgroup:
//
//	unmarked-detached  no program attached
//	unmarked-attached  the program attached, sockets not marked
//	marked-attached    both ends marked, and both Results read
//
// The variants run in turn, SMC_BENCH_ROUNDS times (sub-benchmark names repeat with
// #NN suffixes), so that ratios come from interleaved samples of one run.
func BenchmarkConn(b *testing.B) {
	testenv.RequireBPF(b)
	testenv.ChildCgroup(b)
	variants := []struct {
		name           string
		attach, marked bool
	}{
		{"unmarked-detached", false, false},
		{"unmarked-attached", true, false},
		{"marked-attached", true, true},
		{"marked-noresult", true, true},
	}
	for range benchRounds() {
		for _, v := range variants {
			var s *Signaller
			if v.attach {
				var err error
				if s, err = Open(); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(v.name, func(b *testing.B) { benchConn(b, s, v.marked, v.name != "marked-noresult") })
			if s != nil {
				s.Close()
			}
		}
	}
}

func benchConn(b *testing.B, s *Signaller, marked, results bool) {
	ln := listen(b, s, "tcp4", "127.0.0.1:0", marked, false)
	addr := ln.Addr().String()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		c := dial(b, s, "tcp4", addr, marked, nil)
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		if marked && results {
			if r := resultOf(b, s, c); !r.Negotiated() {
				b.Fatalf("client %+v", r)
			}
			if r := resultOf(b, s, sc); !r.Negotiated() {
				b.Fatalf("server %+v", r)
			}
		}
		c.SetLinger(0)
		c.Close()
		sc.Close()
	}
	// CPU time of the whole process (both ends, the kernel's work on their behalf
	// included) is steadier than wall time on a shared machine.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the process's user and system CPU time in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkMark measures Mark alone: one bpf(BPF_MAP_UPDATE_ELEM) on a socket.
func BenchmarkMark(b *testing.B) {
	s := selfAttach(b)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0") // any socket has storage
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rc, _ := c.(*net.UDPConn).SyscallConn()
	b.ReportAllocs()
	rc.Control(func(fd uintptr) {
		for b.Loop() {
			if err := s.Mark(int(fd)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkResult measures Result alone on a connected, marked socket: one
// bpf(BPF_MAP_LOOKUP_ELEM); and on a socket never marked (ENOENT).
func BenchmarkResult(b *testing.B) {
	s := selfAttach(b)
	for _, marked := range []bool{true, false} {
		b.Run("marked="+strconv.FormatBool(marked), func(b *testing.B) {
			ln := listen(b, s, "tcp4", "127.0.0.1:0", marked, false)
			c := dial(b, s, "tcp4", ln.Addr().String(), marked, nil)
			defer c.Close()
			sc, err := ln.Accept()
			if err != nil {
				b.Fatal(err)
			}
			defer sc.Close()
			rc, _ := c.SyscallConn()
			b.ReportAllocs()
			rc.Control(func(fd uintptr) {
				for b.Loop() {
					r, err := s.Result(int(fd))
					if err != nil || r.Negotiated() != marked {
						b.Fatalf("%+v %v", r, err)
					}
				}
			})
		})
	}
}
