package perf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestClientServer runs every scenario of a quick run over tcp, the Unix socket
// and smc falling back on either side against a server in this process, and
// checks that every shape gets a measured row with a ratio against tcp, and that
// the rows that count connections count each one on the smc side, in TCP mode
// (with or without signalling, a fallback transport never reaches SMC-D).
func TestClientServer(t *testing.T) {
	s, err := newServer(ServerOptions{Control: "127.0.0.1:0", Host: "127.0.0.1"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var out bytes.Buffer
	o := QuickOptions(Options{Scenarios: Scenarios, Transports: []string{"tcp", "unix", "smc-fallback"}, JSON: true, Out: &out})
	ctx := context.Background()
	c, err := NewClient(ctx, s.control.Addr().String(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.RunCore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(ctx); err != nil {
		t.Fatal(err)
	}
	rows := map[string]Row{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r Row
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("row %q does not parse: %v", sc.Text(), err)
		}
		rows[fmt.Sprintf("%s/%d/%d/%s", r.Scenario, r.Size, r.Conns, r.Transport)] = r
	}
	transports := []string{"tcp", "unix", "smc-fallback/client", "smc-fallback/server"}
	if len(rows) != len(transports)*len(c.shapes()) {
		t.Errorf("%d rows for %d shapes on %d transports", len(rows), len(c.shapes()), len(transports))
	}
	for _, sh := range c.shapes() {
		for _, tr := range transports {
			r, ok := rows[fmt.Sprintf("%s/%d/%d/%s", sh.Scenario, sh.Size, sh.Conns, tr)]
			fallback := strings.HasPrefix(tr, "smc-fallback")
			if ok {
				checkFallbackCounts(t, sh, tr, o, r)
			}
			switch {
			case !ok:
				t.Errorf("no row for %v on %s", sh, tr)
			case r.Error != "" || r.Rounds != o.Rounds || fallback != strings.HasPrefix(r.Mode, "TCP/"):
				t.Errorf("%v on %s: %+v", sh, tr, r)
			case sh.Scenario == "idle":
				if r.CPUUnit != "ms/s" {
					t.Errorf("%v on %s: idle row in %q", sh, tr, r.CPUUnit)
				}
			case sh.Scenario == "idlemem":
				// In one process both sides' memory is the same, so only the
				// shape of the row is checked here; cmd/smc's test checks figures.
				if r.Conns != o.IdleConns || r.CPUUnit != "" || r.OpsPerSec != 0 || r.MemVsTCP < 0 {
					t.Errorf("%v on %s: not an idlemem row: %+v", sh, tr, r)
				}
			case r.VsTCP <= 0 || r.OpsPerSec <= 0:
				t.Errorf("%v on %s: not measured against tcp: %+v", sh, tr, r)
			case sh.Scenario == "setup":
				// Set-up rows time every connection and pair CPU per connection.
				if r.P50us <= 0 || r.P99us < r.P50us || r.ClientCPU <= 0 || r.ServerCPU <= 0 || r.CPUVsTCP <= 0 || r.CPUUnit != "us/op" {
					t.Errorf("%v on %s: set-up not timed: %+v", sh, tr, r)
				}
			case sh.Scenario == "many" && (r.Conns != o.ManyConns || r.ClientCPU <= 0 || r.CPUVsTCP <= 0):
				t.Errorf("%v on %s: %+v", sh, tr, r)
			}
		}
	}
}

// checkFallbackCounts checks the counts of a row of TestClientServer: none for
// tcp and unix and the scenarios that sample; for the smc side of a fallback
// row, every connection in a TCP state, as many as the scenario made where it
// makes a fixed number, and whole batches in setup.
func checkFallbackCounts(t *testing.T, sh Shape, tr string, o Options, r Row) {
	t.Helper()
	counts := r.ClientCounts
	if tr == "smc-fallback/server" {
		counts = r.ServerCounts
	}
	if !strings.HasPrefix(tr, "smc-fallback") || !countScenarios[sh.Scenario] {
		if r.ClientCounts != nil || r.ServerCounts != nil {
			t.Errorf("%v on %s: counts %v %v", sh, tr, r.ClientCounts, r.ServerCounts)
		}
		return
	}
	var n int64
	for k, v := range counts {
		if !strings.HasPrefix(k, "TCP/") {
			t.Errorf("%v on %s: %d connections in state %s", sh, tr, v, k)
		}
		n += v
	}
	want := int64(o.Rounds * sh.Conns)
	switch {
	case n == 0:
		t.Errorf("%v on %s: no connection counted: %+v", sh, tr, r)
	case (sh.Scenario == "idlemem" || sh.Scenario == "many") && n != want:
		t.Errorf("%v on %s: %d connections counted, want %d", sh, tr, n, want)
	case sh.Scenario == "setup" && n%setupBatch != 0:
		t.Errorf("%v on %s: %d connections counted, not whole batches", sh, tr, n)
	}
}

// TestCellCounts checks how the counts of smc.Stats before and after a cell
// become the states its connections ended in.
func TestCellCounts(t *testing.T) {
	before := map[string]int64{"offered": 10, "negotiated": 8, "SMCD": 5, "TCP/PEERNOSMC": 2, "TCP/MAX_DMB": 1}
	after := map[string]int64{"offered": 110, "negotiated": 105, "SMCD": 80, "TCP/PEERNOSMC": 4, "TCP/MAX_DMB": 20, "failed": 1}
	// 120 connections: 100 offered, 20 not; of the offered, 2 PEERNOSMC and 97
	// negotiated, of which 75 SMCD, 19 MAX_DMB and 1 failed ended: 2 unfinished.
	got := CellCounts(before, after, 120)
	want := map[string]int64{"SMCD": 75, "TCP/PEERNOSMC": 2, "TCP/MAX_DMB": 19, "failed": 1, "TCP/NOT_OFFERED": 20, "unfinished": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CellCounts = %v; want %v", got, want)
	}
	if s := JoinCounts(got); s != "SMCD×75+TCP/NOT_OFFERED×20+TCP/MAX_DMB×19+TCP/PEERNOSMC×2+unfinished×2+failed×1" {
		t.Errorf("JoinCounts = %q", s)
	}
	if s := JoinCounts(nil); s != "unknown" {
		t.Errorf("JoinCounts(nil) = %q", s)
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
		got, err := PickList(tt.in, known, aliases)
		if (err != nil) != tt.wantErr || strings.Join(got, ",") != tt.want {
			t.Errorf("PickList(%q) = %v, %v; want %s (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestMedianAndStates(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v; want %v", tt.in, got, tt.want)
		}
	}
	if got := JoinStates(map[string]int{"SMCD": 3, "TCP/PEERNOSMC": 1}); got != "SMCD×3+TCP/PEERNOSMC×1" {
		t.Errorf("joinStates = %q", got)
	}
	if got := JoinStates(map[string]int{"SMCD": 3}); got != "SMCD" {
		t.Errorf("joinStates = %q", got)
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
	if lo, hi, ok := MedianCI95(xs); !ok || lo != 40 || hi != 61 {
		t.Fatalf("MedianCI95(1..100) = %v, %v, %v; want 40, 61 (k = 39)", lo, hi, ok)
	}
	if _, _, ok := MedianCI95(xs[:5]); ok {
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
		if lo, hi, _ := MedianCI95(sample); lo <= 0.5 && 0.5 <= hi {
			covered++
		}
	}
	if c := float64(covered) / trials; c < 0.93 || c > 0.99 {
		t.Fatalf("coverage %.3f over %d samples of 40, want about 0.95-0.97", c, trials)
	}
}

// TestPrintMemRow checks the table line of an idlemem row: per-connection
// memory of both sides, the multiple of TCP's, and what was held before.
func TestPrintMemRow(t *testing.T) {
	var out bytes.Buffer
	p := &printer{w: &out}
	p.row(&Row{Scenario: "idlemem", Size: 64, Conns: 1000, Transport: "smc", Mode: "SMCD×3000",
		MemPSS: 48 << 10, ClientPSS: 16 << 10, ServerPSS: 32 << 10, MemRSS: 2 << 20, MemPTE: 512, MemCgroup: 60 << 10,
		MemVsTCP: 20, MemcgVsTCP: 6, ShmAtStart: 136 << 10})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and a row, got %q", out.String())
	}
	for _, want := range []string{"idlemem", "SMCD×3000", "pss 48.0KiB (cli 16.0KiB srv 32.0KiB)", "rss 2.00MiB", "pte 512B",
		"memcg 60.0KiB", "vs tcp: pss 20.00x, memcg 6.00x", "[136.0KiB of shared memory held before]"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
}

// TestCheckBufferSize accepts 0 and the powers of two SMC-D can offer, and
// nothing else.
func TestCheckBufferSize(t *testing.T) {
	for _, n := range []int{0, 16 << 10, 64 << 10, 1 << 20, 512 << 20} {
		if err := CheckBufferSize(n); err != nil {
			t.Errorf("CheckBufferSize(%d): %v", n, err)
		}
	}
	for _, n := range []int{-1, 1, 8 << 10, 100000, 1 << 30} {
		if err := CheckBufferSize(n); err == nil {
			t.Errorf("CheckBufferSize(%d) accepted it", n)
		}
	}
}

// TestBufferSizeMismatch: a client whose --buffer-size is not the server's is
// refused before it measures anything.
func TestBufferSizeMismatch(t *testing.T) {
	s, err := newServer(ServerOptions{Control: "127.0.0.1:0", Host: "127.0.0.1", BufferSize: 256 << 10}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx := context.Background()
	if c, err := NewClient(ctx, s.control.Addr().String(), Options{Out: io.Discard}); err == nil {
		c.Close()
		t.Fatal("a client with the default ring size was not refused by a server with 256 KiB rings")
	}
	c, err := NewClient(ctx, s.control.Addr().String(), Options{BufferSize: 256 << 10, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
