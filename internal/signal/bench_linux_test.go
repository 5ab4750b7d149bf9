package signal

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

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

// A connVariant is one way BenchmarkConn makes its connections.
type connVariant struct {
	name           string
	attach         bool // the program is attached
	client, server bool // marked
	syscall        bool // read results with Result (bpf(2)) instead of ResultAddr
}

var connVariants = []connVariant{
	{name: "plain-detached"},
	{name: "plain-attached", attach: true},
	{name: "fallback-server", attach: true, server: true},
	{name: "fallback-client", attach: true, client: true},
	{name: "smc", attach: true, client: true, server: true},
	{name: "smc-syscall", attach: true, client: true, server: true, syscall: true},
}

// BenchmarkConn measures one loopback connection (dial, accept, read the results of
// the marked ends, close both ends; the client with linger 0 so that no TIME_WAIT
// piles up) in the benchmark's own child cgroup:
//
//	plain-detached   no program attached, nothing marked
//	plain-attached   the program attached, nothing marked
//	fallback-server  a marked listener serving an unmarked client (reads its result)
//	fallback-client  a marked client against an unmarked listener (reads its result)
//	smc              both marked, both results read with ResultAddr
//	smc-syscall      the same with Result
//
// The variants run in turn, SMC_BENCH_ROUNDS times (names repeat with #NN suffixes),
// so that ratios come from interleaved samples of one run. cpu-ns/op is the process's
// CPU time per connection, both ends and the kernel's work for them included.
func BenchmarkConn(b *testing.B) {
	testenv.RequireBPF(b)
	testenv.ChildCgroup(b)
	// Run-time statistics of BPF programs (kernel.bpf_stats_enabled) while the
	// benchmark runs: bpf-ns/op is the program's own cost per connection.
	if stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err == nil {
		defer stats.Close()
	}
	for range benchRounds() {
		var s *Signaller
		for _, v := range connVariants {
			if v.attach && s == nil {
				var err error
				if s, err = Open(); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(v.name, func(b *testing.B) { benchConn(b, s, v) })
		}
		s.Close()
	}
}

func benchConn(b *testing.B, s *Signaller, v connVariant) {
	ln := listen(b, s, "tcp4", "127.0.0.1:0", v.server, false)
	addr := ln.Addr().String()
	read := func(c net.Conn) Result {
		rc, _ := c.(syscall.Conn).SyscallConn()
		var r Result
		var err error
		rc.Control(func(fd uintptr) {
			if v.syscall {
				r, err = s.Result(int(fd))
			} else {
				r, err = s.ResultAddr(int(fd), addrPort(c.LocalAddr()), addrPort(c.RemoteAddr()))
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	want := v.client && v.server
	var prog *ebpf.Program
	var stats0 *ebpf.ProgramStats
	if s != nil {
		prog = s.coll.Programs[progName]
		stats0, _ = prog.Stats()
	}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		c := dial(b, s, "tcp4", addr, v.client, nil)
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		if v.client && read(c).Negotiated() != want {
			b.Fatal("client result does not match")
		}
		if v.server && read(sc).Negotiated() != want {
			b.Fatal("server result does not match")
		}
		c.SetLinger(0)
		c.Close()
		sc.Close()
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if stats0 != nil {
		if stats, err := prog.Stats(); err == nil {
			b.ReportMetric(float64(stats.Runtime-stats0.Runtime)/float64(b.N), "bpf-ns/op")
			b.ReportMetric(float64(stats.RunCount-stats0.RunCount)/float64(b.N), "bpf-runs/op")
		}
	}
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

// BenchmarkResult measures reading one connected socket's result: with Result (one
// bpf(BPF_MAP_LOOKUP_ELEM)) and with ResultAddr (the shared-memory cache), for a
// marked socket and one never marked (whose ResultAddr falls back to Result).
func BenchmarkResult(b *testing.B) {
	s := selfAttach(b)
	for _, marked := range []bool{true, false} {
		ln := listen(b, s, "tcp4", "127.0.0.1:0", marked, false)
		c := dial(b, s, "tcp4", ln.Addr().String(), marked, nil)
		defer c.Close()
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer sc.Close()
		local, remote := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
		rc, _ := c.SyscallConn()
		for _, api := range []string{"Result", "ResultAddr"} {
			b.Run(api+"/marked="+strconv.FormatBool(marked), func(b *testing.B) {
				b.ReportAllocs()
				rc.Control(func(fd uintptr) {
					for b.Loop() {
						var r Result
						var err error
						if api == "Result" {
							r, err = s.Result(int(fd))
						} else {
							r, err = s.ResultAddr(int(fd), local, remote)
						}
						if err != nil || r.Negotiated() != marked {
							b.Fatalf("%+v %v", r, err)
						}
					}
				})
			})
		}
	}
}
