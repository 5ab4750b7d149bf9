package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/perf"
	"github.com/smc-go/smc/internal/testenv"
)

// smcBinDir is the directory of the smc command smcBinary built, if it did;
// TestMain removes it.
var smcBinDir string

// smcBinary builds the smc command once per test binary.
var smcBinary = sync.OnceValues(func() (string, error) {
	goBin, err := testenv.GoTool()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "smc-cmd-test-")
	if err != nil {
		return "", err
	}
	smcBinDir = dir
	bin := filepath.Join(dir, "smc")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func buildSMC(t *testing.T) string {
	t.Helper()
	bin, err := smcBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// decodeRows parses JSON rows strictly and keys them by shape and transport.
func decodeRows(t *testing.T, r io.Reader) map[string]perf.Row {
	t.Helper()
	rows := map[string]perf.Row{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var r perf.Row
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("row %q does not parse: %v", sc.Text(), err)
		}
		if r.Group != "core" || r.Scenario == "" || r.Transport == "" {
			t.Errorf("row %q lacks group, scenario or transport", sc.Text())
		}
		rows[fmt.Sprintf("%s/%d/%d/%s", r.Scenario, r.Size, r.Conns, r.Transport)] = r
	}
	return rows
}

// TestPerfQuick builds the smc command and runs "smc perf --quick --json
// --scenario=all" end to end: a server child process, every transport and
// scenario. It checks the rows parse and carry what they must, and counts the
// connections of the scenarios that count them; the figures themselves are not
// judged, except that the SMC-D connections of idlemem hold memory.
func TestPerfQuick(t *testing.T) {
	bin := buildSMC(t)
	cmd := exec.Command(bin, "perf", "--quick", "--json", "--scenario=all")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("smc perf --quick: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())
	rows := decodeRows(t, &stdout)

	transports := []string{"tcp", "unix", "smc", "smc-fallback/client", "smc-fallback/server"}
	shapes := []struct {
		scenario    string
		size, conns int
	}{
		{"pingpong", 64, 1}, {"pingpong", 1 << 10, 1}, {"pingpong", 16 << 10, 1}, {"pingpong", 64 << 10, 1},
		{"bulk", 64 << 10, 1}, {"bulk", 1 << 20, 1},
		{"rr", 1 << 10, 1}, {"rr", 1 << 10, 16},
		{"short", 1 << 10, 8},
		{"setup", 0, 1},
		{"idle", 64, 1},
		{"idlemem", 64, 16}, {"idlemem", smc.DefaultBufferSize, 16},
		{"many", 1 << 10, 32},
	}
	if len(rows) != len(shapes)*len(transports) {
		t.Errorf("%d rows, want %d", len(rows), len(shapes)*len(transports))
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
			case sh.scenario == "idlemem":
				if r.Rounds != 2 || r.CPUUnit != "" || r.OpsPerSec != 0 {
					t.Errorf("%s: not measured over 2 rounds: %+v", key, r)
				}
			case r.Rounds != 2 || r.OpsPerSec <= 0 || r.ClientCPU <= 0 || r.CPUUnit == "":
				t.Errorf("%s: not measured over 2 rounds: %+v", key, r)
			case sh.scenario == "pingpong" && (r.P50us <= 0 || r.P99us < r.P50us):
				t.Errorf("%s: bad latency percentiles: %+v", key, r)
			case sh.scenario == "bulk" && r.GBps <= 0:
				t.Errorf("%s: no throughput: %+v", key, r)
			case sh.scenario == "setup" && (r.P50us <= 0 || r.ServerCPU <= 0 || r.CPUVsTCP <= 0):
				t.Errorf("%s: set-up not timed: %+v", key, r)
			case r.VsTCP <= 0:
				t.Errorf("%s: no ratio against tcp: %+v", key, r)
			}
			// A row with an smc side must say what that side obtained.
			if smcSide := strings.HasPrefix(tr, "smc"); smcSide != (r.Mode != "") {
				t.Errorf("%s: mode %q for transport %s", key, r.Mode, tr)
			}
			checkCounts(t, key, sh.scenario, sh.conns, tr, r)
		}
	}
	// With signalling, the smc rows are SMC-D, and an SMC-D connection that
	// passed a full lap of its rings each way holds at least one ring.
	t.Run("smcd", func(t *testing.T) {
		testenv.RequireBPF(t)
		for _, sh := range shapes {
			key := fmt.Sprintf("%s/%d/%d/smc", sh.scenario, sh.size, sh.conns)
			r := rows[key]
			if !strings.HasPrefix(r.Mode, "SMCD") {
				t.Errorf("%s: mode %q", key, r.Mode)
			}
			if sh.scenario == "idlemem" && sh.size == smc.DefaultBufferSize && r.MemPSS < float64(sh.size) {
				t.Errorf("%s: %.0f bytes of PSS per connection after a lap of a %d-byte ring", key, r.MemPSS, sh.size)
			}
		}
	})
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

// checkCounts checks the counts of every connection in the rows of the
// scenarios that count them: each smc side counts as many connections as were
// made (exactly, where the scenario makes a fixed number), and the two sides of
// an smc row count the same number.
func checkCounts(t *testing.T, key, scenario string, conns int, tr string, r perf.Row) {
	t.Helper()
	counted := map[string]bool{"short": true, "setup": true, "idlemem": true, "many": true}
	if !counted[scenario] {
		if r.ClientCounts != nil || r.ServerCounts != nil {
			t.Errorf("%s: counts in a row that samples: %+v", key, r)
		}
		return
	}
	sum := func(m map[string]int64) (n int64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	cli, srv := sum(r.ClientCounts), sum(r.ServerCounts)
	clientSide, serverSide := tr == "smc" || tr == "smc-fallback/client", tr == "smc" || tr == "smc-fallback/server"
	if clientSide != (cli > 0) || serverSide != (srv > 0) {
		t.Errorf("%s: client counts %v, server counts %v", key, r.ClientCounts, r.ServerCounts)
	}
	if tr == "smc" && cli != srv {
		t.Errorf("%s: the client counted %d connections, the server %d", key, cli, srv)
	}
	if n := int64(r.Rounds * conns); (scenario == "idlemem" || scenario == "many") && (clientSide && cli != n || serverSide && srv != n) {
		t.Errorf("%s: counted %d/%d connections (client/server), want %d", key, cli, srv, n)
	}
	if scenario == "setup" && (cli%32 != 0 || srv%32 != 0) {
		t.Errorf("%s: set-up counted %d/%d connections, not whole batches of 32", key, cli, srv)
	}
}

// TestPerfClientServer runs "smc perf server" and "smc perf client" as two
// commands, as on two terminals, and checks the client's rows and that the
// server exits when its standard input closes.
func TestPerfClientServer(t *testing.T) {
	bin := buildSMC(t)
	srv := exec.Command(bin, "perf", "server", "--exit-on-stdin")
	stdin, err := srv.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	defer func() {
		stdin.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("smc perf server: %v", err)
			}
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			t.Error("smc perf server did not exit when its standard input closed")
		}
	}()
	var hello struct{ Control string }
	if err := json.NewDecoder(out).Decode(&hello); err != nil || hello.Control == "" {
		srv.Process.Kill()
		t.Fatalf("server did not print its control address: %v", err)
	}
	go func() { io.Copy(io.Discard, out); done <- srv.Wait() }()

	cl := exec.Command(bin, "perf", "client", "--control="+hello.Control, "--quick", "--json",
		"--scenario=pingpong", "--transport=tcp,smc")
	var stdout, stderr bytes.Buffer
	cl.Stdout, cl.Stderr = &stdout, &stderr
	if err := cl.Run(); err != nil {
		t.Fatalf("smc perf client: %v\nstderr:\n%s", err, stderr.String())
	}
	rows := decodeRows(t, &stdout)
	if len(rows) != 8 {
		t.Errorf("%d rows, want 4 pingpong sizes on 2 transports", len(rows))
	}
	for key, r := range rows {
		if r.Error != "" || r.P50us <= 0 || r.VsTCP <= 0 {
			t.Errorf("%s: %+v", key, r)
		}
	}
}

// TestPerfBufferSize runs "smc perf --quick --buffer-size" in the local mode:
// the server child process must get the same ring size, or the client refuses
// it, and the header names the size.
func TestPerfBufferSize(t *testing.T) {
	bin := buildSMC(t)
	cmd := exec.Command(bin, "perf", "--quick", "--json", "--scenario=bulk", "--transport=tcp,smc", "--buffer-size=262144")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("smc perf --quick --buffer-size: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "smc rings (smc.Config.BufferSize, both sides): 262144 bytes") {
		t.Errorf("the header does not name the ring size:\n%s", stderr.String())
	}
	rows := decodeRows(t, &stdout)
	if len(rows) != 4 {
		t.Errorf("%d rows, want 2 bulk sizes on 2 transports", len(rows))
	}
	for key, r := range rows {
		if r.Error != "" || r.OpsPerSec <= 0 || r.VsTCP <= 0 {
			t.Errorf("%s: %+v", key, r)
		}
	}
}
