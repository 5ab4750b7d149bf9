package signal

import (
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc/internal/testenv"
)

// A listenerKind is one way BenchmarkListenerCost prepares a listener.
type listenerKind struct {
	name    string
	marked  bool // Mark before listen
	saveSYN bool // TCP_SAVE_SYN set from user space, unmarked
}

var listenerKinds = []listenerKind{
	{name: "plain"},
	{name: "plain-control"},
	{name: "savesyn", saveSYN: true},
	{name: "marked", marked: true},
}

// BenchmarkListenerCost measures what a marked listener costs a plain (unmarked)
// client per connection: every op makes one connection (dial, accept, the marked
// child's CachedResult, or AcceptedResult when the cache cannot answer, close both
// ends; SMC_BENCH_GRACEFUL=1 closes the server end first) to each kind of listener
// in turn, rotating the order, so that each kind's samples are taken next to the
// others'. It reports each kind's median wall time per
// connection and its median paired difference to "plain":
//
//	plain          unmarked listener
//	plain-control  a second unmarked listener (A/A control: the noise floor)
//	savesyn        unmarked, with TCP_SAVE_SYN set from user space
//	marked         marked listener (Mark before listen)
func BenchmarkListenerCost(b *testing.B) {
	testenv.RequireBPF(b)
	testenv.ChildCgroup(b)
	s, err := Open()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	lns := make([]*net.TCPListener, len(listenerKinds))
	for i, k := range listenerKinds {
		lns[i] = listen(b, s, "tcp4", "127.0.0.1:0", k.marked, false)
		rc, _ := lns[i].SyscallConn()
		rc.Control(func(fd uintptr) {
			if k.saveSYN {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_SAVE_SYN, 1)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	graceful := os.Getenv("SMC_BENCH_GRACEFUL") != ""
	samples := make([][]time.Duration, len(lns))
	n := 0
	for b.Loop() {
		for j := range lns {
			i := (j + n) % len(lns)
			addr := lns[i].Addr().String()
			t0 := time.Now()
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				b.Fatal(err)
			}
			sc, err := lns[i].AcceptTCP()
			if err != nil {
				b.Fatal(err)
			}
			if listenerKinds[i].marked {
				// As the root package's Accept: the cache first, the kernel if it cannot
				// answer.
				local, remote := addrPort(sc.LocalAddr()), addrPort(sc.RemoteAddr())
				r, ok := s.CachedResult(local, remote, true)
				if !ok {
					r, err = s.AcceptedResult(fdOf(sc), local, remote)
				}
				if err != nil || !r.Marked || r.Received {
					b.Fatalf("%+v %v", r, err)
				}
			}
			if graceful {
				sc.Close()
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			} else {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				sc.Close()
			}
			samples[i] = append(samples[i], time.Since(t0))
		}
		n++
	}
	med := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[len(d)/2])
	}
	for i, k := range listenerKinds {
		diff := make([]time.Duration, len(samples[i]))
		for j := range diff {
			diff[j] = samples[i][j] - samples[0][j]
		}
		b.ReportMetric(med(samples[i]), k.name+"-ns")
		b.ReportMetric(med(diff), k.name+"-diff-ns")
	}
}

func fdOf(c *net.TCPConn) int {
	rc, _ := c.SyscallConn()
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}
