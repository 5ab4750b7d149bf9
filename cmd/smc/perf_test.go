package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// TestPerfQuick builds the smc command and runs "smc perf --quick --json" end to
// end, as CI does: a server child process, every transport and core scenario, and
// the wrk/nginx group (measured, or reported unavailable when the tools are not
// installed, which fails the test under SMC_REQUIRE_PRIVILEGED=1). It checks the rows parse and carry what they must; the figures
// themselves are not judged.
func TestPerfQuick(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to build smc with: %v", err)
		}
	}
	bin := filepath.Join(t.TempDir(), "smc")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "perf", "--quick", "--json", "--scenario=core,wrk", "--wrk-control")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("smc perf --quick: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())

	rows := map[string]perfRow{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r perfRow
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("row %q does not parse: %v", sc.Text(), err)
		}
		if r.Group == "" || r.Scenario == "" || r.Transport == "" {
			t.Errorf("row %q lacks group, scenario or transport", sc.Text())
		}
		rows[fmt.Sprintf("%s/%d/%d/%s", r.Scenario, r.Size, r.Conns, r.Transport)] = r
	}

	transports := []string{"tcp", "unix", "smc", "smc-fallback/client", "smc-fallback/server"}
	shapes := []struct {
		scenario    string
		size, conns int
	}{
		{"pingpong", 64, 1}, {"pingpong", 1 << 10, 1}, {"pingpong", 16 << 10, 1}, {"pingpong", 64 << 10, 1},
		{"bulk", 64 << 10, 1}, {"bulk", 1 << 20, 1},
		{"rr", 1 << 10, 1}, {"rr", 1 << 10, 16},
		{"short", 1 << 10, 8},
		{"idle", 64, 1},
	}
	for _, sh := range shapes {
		for _, tr := range transports {
			key := fmt.Sprintf("%s/%d/%d/%s", sh.scenario, sh.size, sh.conns, tr)
			r, ok := rows[key]
			switch {
			case !ok:
				t.Errorf("no row %s", key)
				continue
			case r.Error != "":
				t.Errorf("%s: %s", key, r.Error)
				continue
			case sh.scenario == "idle":
				if r.Rounds != 2 || r.CPUUnit != "ms/s" || r.OpsPerSec != 0 {
					t.Errorf("%s: not measured over 2 rounds: %+v", key, r)
				}
			case r.Rounds != 2 || r.OpsPerSec <= 0 || r.ClientCPU <= 0 || r.CPUUnit == "":
				t.Errorf("%s: not measured over 2 rounds: %+v", key, r)
			case sh.scenario == "pingpong" && (r.P50us <= 0 || r.P99us < r.P50us):
				t.Errorf("%s: bad latency percentiles: %+v", key, r)
			case sh.scenario == "bulk" && r.GBps <= 0:
				t.Errorf("%s: no throughput: %+v", key, r)
			case r.VsTCP <= 0:
				t.Errorf("%s: no ratio against tcp: %+v", key, r)
			}
			// A row with an smc side must say what that side obtained.
			if smcSide := strings.HasPrefix(tr, "smc"); smcSide != (r.Mode != "") {
				t.Errorf("%s: mode %q for transport %s", key, r.Mode, tr)
			}
		}
	}
	for _, scenario := range []string{"wrk-server", "nginx-client"} {
		fb := "smc-fallback/server"
		if scenario == "nginx-client" {
			fb = "smc-fallback/client"
		}
		for _, tr := range []string{"tcp", fb, "tcp-control"} {
			key := fmt.Sprintf("%s/0/128/%s", scenario, tr)
			r, ok := rows[key]
			switch {
			case !ok:
				t.Errorf("no row %s", key)
			case r.Unavailable != "" && testenv.Strict():
				t.Errorf("%s unavailable: %s (CI must install the Debian packages wrk and nginx; SMC_REQUIRE_PRIVILEGED=1)", key, r.Unavailable)
			case r.Unavailable != "":
				t.Logf("%s unavailable: %s", key, r.Unavailable)
			case r.Error != "" || r.OpsPerSec <= 0:
				t.Errorf("%s: not measured: %+v", key, r)
			case tr == fb && (r.Mode == "" || r.VsTCP <= 0 || r.CPUVsTCP <= 0):
				t.Errorf("%s: no mode or ratios: %+v", key, r)
			case tr == "tcp-control" && (r.Mode != "" || r.VsTCP <= 0):
				t.Errorf("%s: control row with a mode or without a ratio: %+v", key, r)
			}
		}
	}
	// The child cgroup, if one was made, is gone.
	for _, pattern := range []string{"/sys/fs/cgroup/smc-perf-%d", "/sys/fs/cgroup/*/smc-perf-%d"} {
		if matches, _ := filepath.Glob(fmt.Sprintf(pattern, cmd.Process.Pid)); len(matches) > 0 {
			t.Errorf("child cgroup left behind: %v", matches)
		}
	}
}

func TestPickList(t *testing.T) {
	known := []string{"a", "b", "c"}
	aliases := map[string][]string{"ab": {"a", "b"}}
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"all", "a,b,c", false},
		{"c,a", "a,c", false},
		{"ab,a", "a,b", false},
		{"b, c", "b,c", false},
		{"d", "", true},
	}
	for _, tt := range tests {
		got, err := pickList(tt.in, known, aliases)
		if (err != nil) != tt.wantErr || strings.Join(got, ",") != tt.want {
			t.Errorf("pickList(%q) = %v, %v; want %s (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 1s test @ http://127.0.0.1:4000/
  2 threads and 128 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.01ms    2.00ms  20.00ms   70.00%
    Req/Sec    12.00k     1.00k   14.00k    60.00%
  24012 requests in 1.00s, 2.50MB read
  Socket errors: connect 0, read 3, write 1, timeout 0
  Non-2xx or 3xx responses: 2
Requests/sec:  23990.12
Transfer/sec:      2.49MB
`
	res, err := parseWrk(out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.rate != 23990.12 || res.requests != 24012 || res.errors != 6 {
		t.Errorf("parseWrk = %+v; want rate 23990.12, 24012 requests, 6 errors", res)
	}
	if _, err := parseWrk("garbage", 0); err == nil {
		t.Error("parseWrk accepted output without a rate")
	}
}

func TestMedianAndStates(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v; want %v", tt.in, got, tt.want)
		}
	}
	if got := joinStates(map[string]int{"SMCD": 3, "TCP/PEERNOSMC": 1}); got != "SMCD×3+TCP/PEERNOSMC×1" {
		t.Errorf("joinStates = %q", got)
	}
	if got := joinStates(map[string]int{"SMCD": 3}); got != "SMCD" {
		t.Errorf("joinStates = %q", got)
	}
}

// TestABOrderBalanced checks that over 2n rounds every measurement takes each
// position in the round equally often and follows every other measurement
// equally often, and that each round is a permutation.
func TestABOrderBalanced(t *testing.T) {
	for n := 2; n <= 3; n++ {
		pos := make([][]int, n)
		for i := range pos {
			pos[i] = make([]int, n)
		}
		follows := map[[2]int]int{}
		for r := range 2 * n {
			order := abOrder(r, n)
			seen := make([]bool, n)
			for p, m := range order {
				if seen[m] {
					t.Fatalf("n=%d round %d: order %v repeats %d", n, r, order, m)
				}
				seen[m] = true
				pos[m][p]++
				if p > 0 {
					follows[[2]int{order[p-1], m}]++
				}
			}
		}
		for m := range n {
			for p := range n {
				if pos[m][p] != 2 {
					t.Errorf("n=%d: measurement %d in position %d %d times over %d rounds, want 2", n, m, p, pos[m][p], 2*n)
				}
			}
		}
		const want = 2 // 2n rounds of n-1 neighbours over n(n-1) ordered pairs
		for a := range n {
			for b := range n {
				if a != b && follows[[2]int{a, b}] != want {
					t.Errorf("n=%d: %d ran right after %d %d times, want %d", n, b, a, follows[[2]int{a, b}], want)
				}
			}
		}
	}
}

// TestMedianCI95 checks the interval's order statistics on a known sample and its
// coverage on samples of a known median: a miscounted k makes it too narrow or
// too wide and the coverage leaves [0.93, 0.99].
func TestMedianCI95(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64((i*37)%100 + 1) // 1..100, shuffled
	}
	if lo, hi, ok := medianCI95(xs); !ok || lo != 40 || hi != 61 {
		t.Fatalf("medianCI95(1..100) = %v, %v, %v; want 40, 61 (k = 39)", lo, hi, ok)
	}
	if _, _, ok := medianCI95(xs[:5]); ok {
		t.Fatal("an interval from 5 values")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const trials = 4000
	covered := 0
	sample := make([]float64, 40)
	for range trials {
		for i := range sample {
			sample[i] = rng.Float64() // median 0.5
		}
		if lo, hi, _ := medianCI95(sample); lo <= 0.5 && 0.5 <= hi {
			covered++
		}
	}
	if c := float64(covered) / trials; c < 0.93 || c > 0.99 {
		t.Fatalf("coverage %.3f over %d samples of 40, want about 0.95-0.97", c, trials)
	}
}
