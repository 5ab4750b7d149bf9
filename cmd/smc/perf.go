package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smc-go/smc"
)

func init() { register("perf", "side-by-side benchmarks", runPerf) }

// The scenario groups and transports smc perf knows, in table order.
var (
	perfScenarios  = []string{"pingpong", "bulk", "rr", "short", "idle", "wrk", "shmipc"}
	perfTransports = []string{"tcp", "unix", "smc", "smc-fallback"}
)

// perfOptions is what the flags of smc perf (local and client mode) select.
type perfOptions struct {
	scenarios   []string
	transports  []string
	duration    time.Duration // per cell and round
	rounds      int
	shortConc   int
	wrkDuration time.Duration
	nginxDur    time.Duration // per nginx-client measurement
	wrkSides    []string      // "server" (wrk-server), "client" (nginx-client)
	wrkConns    []int
	wrkRounds   int
	wrkControl  bool
	shmipcDir   string
	shmipcSizes []int
	json        bool
	jsonOut     string // also write the JSON rows to this file
	quick       bool
	out         io.Writer
}

func perfUsage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprint(fs.Output(), `usage: smc perf [flags]                  run server and client here and print a table
       smc perf server [--control=addr]  serve the benchmarks (prints its control address)
       smc perf client --control=addr    run the benchmarks against a server on this host

Transports: tcp (net), unix (net, unix socket), smc (smc.Dial <-> smc.Listen),
smc-fallback (two rows: smc client -> net server, net client -> smc server).
Scenarios: pingpong (64 B..64 KiB round trips), bulk (64 KiB and 1 MiB writes),
rr (1 KiB request/response over 1 and 16 connections), short (connect, one 1 KiB
request/response, close), idle (CPU of both processes while an open connection
is idle, after one round trip), wrk (wrk -> Go HTTP server and Go client -> nginx, short
HTTP connections, net vs smc fallback), shmipc (cloudwego/shmipc-go ping-pong, built
from bench/shmipc).

flags:
`)
		fs.PrintDefaults()
	}
}

// runPerf is the entry point of "smc perf".
func runPerf(args []string) error {
	if len(args) > 0 && args[0] == "server" {
		return runPerfServer(args[1:])
	}
	client := false
	if len(args) > 0 && args[0] == "client" {
		client, args = true, args[1:]
	}
	fs := flag.NewFlagSet("perf", flag.ContinueOnError)
	fs.Usage = perfUsage(fs)
	scenarios := fs.String("scenario", "all", "comma-separated scenarios: "+strings.Join(perfScenarios, ",")+", core (= pingpong,bulk,rr,short,idle) or all")
	transports := fs.String("transport", "all", "comma-separated transports: "+strings.Join(perfTransports, ",")+" or all")
	duration := fs.Duration("duration", 250*time.Millisecond, "time per transport, scenario and round")
	rounds := fs.Int("rounds", 3, "round-robin rounds; each figure is the median over rounds")
	shortConc := fs.Int("short-concurrency", 32, "concurrent clients in the short-connection scenario")
	wrkDuration := fs.Duration("wrk-duration", time.Second, "time per wrk/nginx measurement (wrk needs whole seconds)")
	nginxDur := fs.Duration("nginx-duration", 0, "time per nginx-client measurement, which may be under a second (default: --wrk-duration)")
	wrkSides := fs.String("wrk-side", "all", "sides of the wrk scenario: server (wrk-server), client (nginx-client) or all")
	wrkConns := fs.String("wrk-conns", "128,512,1024", "connection counts of the wrk/nginx scenario")
	wrkRounds := fs.Int("wrk-rounds", 3, "A/B rounds of the wrk/nginx scenario")
	wrkControl := fs.Bool("wrk-control", false, "add an A/A control row (tcp measured again) to the wrk/nginx scenario")
	shmipcDir := fs.String("shmipc-dir", "bench/shmipc", "directory of the shmipc-go comparison module")
	shmipcSizes := fs.String("shmipc-sizes", "64,4096,65536,1048576", "payload sizes of the shmipc scenario (shmipc-go's own benchmark: 64,512,1024,4096,16384,32768,65536,262144,524288,1048576,4194304)")
	asJSON := fs.Bool("json", false, "print one JSON object per result row instead of a table")
	jsonOut := fs.String("json-out", "", "also write one JSON object per result row to this file")
	quick := fs.Bool("quick", false, "a tiny run of everything that checks the harness works (figures meaningless)")
	control := fs.String("control", "", "client mode: control address of an \"smc perf server\"")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("smc: perf: unexpected argument %q", fs.Arg(0))
	}
	o := perfOptions{
		duration: *duration, rounds: *rounds, shortConc: *shortConc,
		wrkDuration: *wrkDuration, nginxDur: *nginxDur, wrkRounds: *wrkRounds, wrkControl: *wrkControl, shmipcDir: *shmipcDir,
		json: *asJSON, jsonOut: *jsonOut, quick: *quick, out: os.Stdout,
	}
	var err error
	if o.scenarios, err = pickList(*scenarios, perfScenarios, map[string][]string{"core": {"pingpong", "bulk", "rr", "short", "idle"}}); err != nil {
		return fmt.Errorf("smc: perf: --scenario: %w", err)
	}
	if o.transports, err = pickList(*transports, perfTransports, nil); err != nil {
		return fmt.Errorf("smc: perf: --transport: %w", err)
	}
	if o.wrkConns, err = positiveInts(*wrkConns); err != nil {
		return fmt.Errorf("smc: perf: --wrk-conns: %w", err)
	}
	if o.wrkSides, err = pickList(*wrkSides, []string{"server", "client"}, nil); err != nil {
		return fmt.Errorf("smc: perf: --wrk-side: %w", err)
	}
	if o.shmipcSizes, err = positiveInts(*shmipcSizes); err != nil {
		return fmt.Errorf("smc: perf: --shmipc-sizes: %w", err)
	}
	if o.quick {
		o.duration, o.rounds, o.shortConc = 15*time.Millisecond, 2, 8
		o.wrkDuration, o.nginxDur, o.wrkConns, o.wrkRounds = time.Second, 0, []int{128}, 1
		o.shmipcSizes = []int{64, 64 << 10}
	}
	if o.nginxDur == 0 {
		o.nginxDur = o.wrkDuration
	}
	if o.rounds < 1 || o.duration <= 0 || o.shortConc < 1 || o.wrkRounds < 1 || o.wrkDuration <= 0 || o.nginxDur < 0 {
		return errors.New("smc: perf: --rounds, --duration, --short-concurrency, --wrk-rounds, --wrk-duration and --nginx-duration must be positive")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The cgroup move must come before any socket: a socket keeps the cgroup it was
	// created in, and the library attaches its signalling to the process's cgroup.
	cg, cgNote, err := enterPerfCgroup()
	if err != nil {
		return err
	}
	defer func() {
		if err := cg.leave(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()

	var srv *perfServerProc
	addr := *control
	if !client {
		if srv, err = startPerfServer(); err != nil {
			return err
		}
		defer srv.stop()
		addr = srv.control
	} else if addr == "" {
		return errors.New("smc: perf: client mode needs --control=addr of an \"smc perf server\"")
	}
	return runPerfClient(ctx, addr, o, cg, cgNote)
}

// positiveInts parses a comma-separated list of positive integers.
func positiveInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// pickList parses a comma-separated selection of known names; "all" selects every
// name, and aliases expand to their lists.
func pickList(s string, known []string, aliases map[string][]string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			out = append(out, known...)
		case aliases[name] != nil:
			out = append(out, aliases[name]...)
		case slices.Contains(known, name):
			out = append(out, name)
		default:
			return nil, fmt.Errorf("unknown name %q (known: %s)", name, strings.Join(known, ", "))
		}
	}
	var uniq []string
	for _, k := range known { // keep table order, drop duplicates
		if slices.Contains(out, k) {
			uniq = append(uniq, k)
		}
	}
	return uniq, nil
}

// perfRow is one result row: one scenario shape on one transport, medians over
// rounds. Figures that do not apply to the scenario are zero and omitted in JSON.
type perfRow struct {
	Group     string `json:"group"`    // "core", "wrk" or "shmipc"
	Scenario  string `json:"scenario"` // pingpong, bulk, rr, short, wrk-server, nginx-client, shmipc-pingpong
	Size      int    `json:"size"`     // bytes per message or write
	Conns     int    `json:"conns"`    // concurrent connections (or streams)
	Transport string `json:"transport"`
	// Mode is the mode and fallback reason the smc side actually obtained, as
	// smc.State reports it ("TCP/SIGNALLING_UNAVAILABLE", "SMCD"); empty for rows
	// without an smc side. ClientMode and ServerMode are the two sides' views.
	Mode       string  `json:"mode,omitempty"`
	ClientMode string  `json:"client_mode,omitempty"`
	ServerMode string  `json:"server_mode,omitempty"`
	Rounds     int     `json:"rounds"`
	OpsPerSec  float64 `json:"ops_per_sec,omitempty"` // round trips, requests, connections or writes per second
	P50us      float64 `json:"p50_us,omitempty"`
	P99us      float64 `json:"p99_us,omitempty"`
	GBps       float64 `json:"gb_per_sec,omitempty"` // bulk: 10^9 bytes per second
	// ClientCPU and ServerCPU are the CPU time (user+system, getrusage RUSAGE_SELF)
	// each process spent per unit of CPUUnit.
	ClientCPU float64 `json:"client_cpu,omitempty"`
	ServerCPU float64 `json:"server_cpu,omitempty"`
	CPUUnit   string  `json:"cpu_unit,omitempty"` // "us/op", "s/GiB", or "ms/s" (idle: CPU ms per wall second)
	// VsTCP is this row's main figure against the tcp row of the same shape in the
	// same run, oriented so that more than 1 is better: p50 latency (tcp/this),
	// throughput or rate (this/tcp). It is the median of the per-round ratios, each
	// taken between measurements made back to back, which cancels the drift of a
	// shared machine better than a ratio of medians. P99VsTCP is the same for p99.
	VsTCP float64 `json:"vs_tcp,omitempty"`
	// CPUVsTCP, in the wrk group, is the paired ratio of CPU time per request
	// (tcp/this, both processes where both are measured, else the client's): the
	// cost of the smc side, steadier than the rate on a shared machine.
	CPUVsTCP float64 `json:"cpu_vs_tcp,omitempty"`
	// VsTCPCI95, in the wrk group, is a 95% confidence interval of VsTCP, from
	// the order statistics of the per-round ratios (the sign test's interval for
	// a median; needs at least 6 rounds): it says whether a ratio is told apart
	// from 0.99 or 1.00 by this run at all.
	VsTCPCI95 []float64 `json:"vs_tcp_ci95,omitempty"`
	// VsShmipc, in the shmipc group, is the same paired ratio against the
	// shmipc-go row of the same size.
	VsShmipc    float64 `json:"vs_shmipc,omitempty"`
	P99VsTCP    float64 `json:"p99_vs_tcp,omitempty"`
	Errors      int64   `json:"errors,omitempty"`
	Error       string  `json:"error,omitempty"`
	Unavailable string  `json:"unavailable,omitempty"`
	// PerRound, in the wrk group, is the rate of each round in round order (zero
	// where the round failed), so that a recorded run can be re-read.
	PerRound []float64 `json:"per_round,omitempty"`

	// perRound and perRoundP99 hold the main figure (and p99) of each round in
	// round order, zero where a round failed; they feed VsTCP.
	perRound, perRoundP99, perRoundCPU []float64
}

// key identifies the shape of a row, which the tcp baseline shares.
func (r *perfRow) key() string {
	return fmt.Sprintf("%s/%s/%d/%d", r.Group, r.Scenario, r.Size, r.Conns)
}

// perfPrinter prints rows as they complete: JSON lines, or a table.
type perfPrinter struct {
	w       io.Writer
	json    bool
	jsonOut io.Writer // nil, or a copy of every row as JSON
	started bool
	failed  int // rows that report an error
}

func (p *perfPrinter) note(format string, args ...any) {
	if p.json {
		fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *perfPrinter) row(r *perfRow) {
	if r.Error != "" {
		p.failed++
	}
	b, _ := json.Marshal(r)
	if p.jsonOut != nil {
		fmt.Fprintf(p.jsonOut, "%s\n", b)
	}
	if p.json {
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	if !p.started {
		p.started = true
		fmt.Fprintf(p.w, "%-15s %6s %5s %-19s %-28s %12s %10s %9s %9s %7s %8s\n",
			"scenario", "size", "conns", "transport", "mode (smc side)", "result", "p99", "cpu cli", "cpu srv", "cpu per", "vs tcp")
	}
	mode := r.Mode
	if mode == "" {
		mode = "-"
	}
	head := fmt.Sprintf("%-15s %6s %5d %-19s %-28s", r.Scenario, perfSize(r.Size), r.Conns, r.Transport, mode)
	switch {
	case r.Unavailable != "":
		fmt.Fprintf(p.w, "%s unavailable: %s\n", head, r.Unavailable)
		return
	case r.Error != "":
		fmt.Fprintf(p.w, "%s error: %s\n", head, r.Error)
		return
	}
	var result, p99 string
	switch {
	case r.Scenario == "idle":
		result = "idle"
	case r.P50us > 0:
		result, p99 = "p50 "+perfMicros(r.P50us), perfMicros(r.P99us)
	case r.GBps > 0:
		result = fmt.Sprintf("%.2f GB/s", r.GBps)
	default:
		result = perfRate(r.OpsPerSec) + "/s"
	}
	cpu := func(v float64) string {
		if v == 0 {
			return "-"
		}
		switch r.CPUUnit {
		case "s/GiB":
			return fmt.Sprintf("%.3fs", v)
		case "ms/s":
			return fmt.Sprintf("%.2fms", v)
		}
		return perfMicros(v)
	}
	per := map[string]string{"s/GiB": "GiB", "us/op": "op", "ms/s": "s idle"}[r.CPUUnit]
	if per == "" {
		per = "-"
	}
	vs := "-"
	if r.VsTCP > 0 {
		vs = fmt.Sprintf("%.3fx", r.VsTCP)
		if r.P99VsTCP > 0 {
			vs += fmt.Sprintf(" (p99 %.2fx)", r.P99VsTCP)
		}
		if len(r.VsTCPCI95) == 2 {
			vs += fmt.Sprintf(" [%.3f, %.3f]", r.VsTCPCI95[0], r.VsTCPCI95[1])
		}
		if r.CPUVsTCP > 0 {
			vs += fmt.Sprintf(" (cpu %.3fx)", r.CPUVsTCP)
		}
		if r.VsShmipc > 0 {
			vs += fmt.Sprintf(" (vs shmipc-go %.2fx)", r.VsShmipc)
		}
	}
	if p99 == "" {
		p99 = "-"
	}
	errs := ""
	if r.Errors > 0 {
		errs = fmt.Sprintf("  [%d errors]", r.Errors)
	}
	fmt.Fprintf(p.w, "%s %12s %10s %9s %9s %7s %8s%s\n", head, result, p99, cpu(r.ClientCPU), cpu(r.ServerCPU), per, vs, errs)
}

func perfSize(n int) string {
	switch {
	case n == 0:
		return "-"
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func perfMicros(us float64) string {
	switch {
	case us >= 10000:
		return fmt.Sprintf("%.1fms", us/1000)
	case us >= 100:
		return fmt.Sprintf("%.0fµs", us)
	}
	return fmt.Sprintf("%.2fµs", us)
}

func perfRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// stateString names a connection state as rows show it.
func stateString(st smc.ConnectionState) string {
	if st.Mode == smc.ModeTCP {
		return st.Mode.String() + "/" + st.Fallback.String()
	}
	return st.Mode.String()
}

// joinStates names the set of states seen, most frequent first, with counts
// when there is more than one.
func joinStates(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	if len(keys) == 1 {
		return keys[0]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, "+")
}

// median returns the median of xs (the mean of the middle two for an even count),
// ignoring nothing: callers pass only measured values.
// medianCI95 returns a 95% confidence interval for the median of the
// distribution xs were drawn from: the order statistics k and n-1-k of the
// sorted sample, k = floor(n/2 - 0.98*sqrt(n) - 1/2) (the normal approximation,
// with continuity correction, of the binomial behind the sign test; its exact
// coverage is 95-98% for 6 to 1000 values). It reports false for fewer than 6
// values, where no such interval reaches 95%.
func medianCI95(xs []float64) (lo, hi float64, ok bool) {
	n := len(xs)
	if n < 6 {
		return 0, 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := max(int(math.Floor(float64(n)/2-0.98*math.Sqrt(float64(n))-0.5)), 0)
	return s[k], s[n-1-k], true
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
