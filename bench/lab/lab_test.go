package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/perf"
	"github.com/smc-go/smc/internal/testenv"
)

// TestLabQuick builds the lab and runs "lab --quick --json --scenario=wrk
// --wrk-control" end to end: a server child process with HTTP listeners, wrk
// against it and a Go client against nginx, each side with its A/A control (or
// reported unavailable when the tools are not installed, which fails the test
// under SMC_REQUIRE_PRIVILEGED=1). It checks the rows parse and carry what they
// must; the figures themselves are not judged.
func TestLabQuick(t *testing.T) {
	goBin, err := testenv.GoTool()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "lab")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--quick", "--json", "--scenario=wrk", "--wrk-control")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lab --quick: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())

	rows := map[string]perf.Row{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r perf.Row
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("row %q does not parse: %v", sc.Text(), err)
		}
		if r.Group != "wrk" || r.Scenario == "" || r.Transport == "" {
			t.Errorf("row %q lacks group, scenario or transport", sc.Text())
		}
		rows[fmt.Sprintf("%s/%d/%d/%s", r.Scenario, r.Size, r.Conns, r.Transport)] = r
	}
	if len(rows) != 6 {
		t.Errorf("%d rows, want 3 for each side", len(rows))
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
			case r.Error != "" || r.OpsPerSec <= 0 || len(r.PerRound) != 1:
				t.Errorf("%s: not measured: %+v", key, r)
			case tr == fb && (r.Mode == "" || r.VsTCP <= 0 || r.CPUVsTCP <= 0):
				t.Errorf("%s: no mode or ratios: %+v", key, r)
			case tr == "tcp-control" && (r.Mode != "" || r.VsTCP <= 0):
				t.Errorf("%s: control row with a mode or without a ratio: %+v", key, r)
			}
		}
	}
	// The child cgroup, if one was made, is gone.
	if mnt, err := testenv.Cgroup2Mount(); err == nil {
		name := fmt.Sprintf("smc-perf-%d", cmd.Process.Pid)
		for _, pattern := range []string{filepath.Join(mnt, name), filepath.Join(mnt, "*", name)} {
			if matches, _ := filepath.Glob(pattern); len(matches) > 0 {
				t.Errorf("child cgroup left behind: %v", matches)
			}
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
