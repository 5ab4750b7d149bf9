package perf

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/smc-go/smc"
)

// A Row is one result row: one scenario shape on one transport, medians over
// rounds. Figures that do not apply to the scenario are zero and omitted in JSON.
type Row struct {
	Group     string `json:"group"`    // "core", or a lab's group such as "wrk" or "shmipc"
	Scenario  string `json:"scenario"` // pingpong, bulk, rr, short, idle, or a lab's scenario
	Size      int    `json:"size"`     // bytes per message or write
	Conns     int    `json:"conns"`    // concurrent connections (or streams)
	Transport string `json:"transport"`
	// Mode is the mode and fallback reason the smc side actually obtained, as
	// smc.State reports it ("TCP/SIGNALLING_UNAVAILABLE", "SMCD"); empty for rows
	// without an smc side. ClientMode and ServerMode are the two sides' views.
	// In the scenarios short, setup, idlemem and many, the modes count every
	// connection of every round ("SMCD×1000+TCP/MAX_DMB×200"), from smc.Stats of
	// each side, and ClientCounts and ServerCounts hold those counts.
	Mode         string           `json:"mode,omitempty"`
	ClientMode   string           `json:"client_mode,omitempty"`
	ServerMode   string           `json:"server_mode,omitempty"`
	ClientCounts map[string]int64 `json:"client_counts,omitempty"`
	ServerCounts map[string]int64 `json:"server_counts,omitempty"`
	Rounds       int              `json:"rounds"`
	OpsPerSec    float64          `json:"ops_per_sec,omitempty"` // round trips, requests, connections or writes per second
	P50us        float64          `json:"p50_us,omitempty"`
	P99us        float64          `json:"p99_us,omitempty"`
	GBps         float64          `json:"gb_per_sec,omitempty"` // bulk: 10^9 bytes per second
	// ClientCPU and ServerCPU are the CPU time (user+system, getrusage RUSAGE_SELF)
	// each process spent per unit of CPUUnit.
	ClientCPU float64 `json:"client_cpu,omitempty"`
	ServerCPU float64 `json:"server_cpu,omitempty"`
	CPUUnit   string  `json:"cpu_unit,omitempty"` // "us/op", "s/GiB", or "ms/s" (idle: CPU ms per wall second)
	// The idlemem scenario's figures: what client and server gained per open,
	// idle connection, in bytes (medians over rounds). MemRSS and MemPSS are the
	// sums of the two sides'; a page both map counts twice in MemRSS and once in
	// MemPSS. MemPTE is the growth of both processes' page tables, which
	// neither counts. MemCgroup is the gain of the memory cgroup both run in,
	// kernel memory (page tables too) and TCP socket memory included (zero where
	// none was read).
	MemRSS    float64 `json:"mem_rss,omitempty"`
	MemPSS    float64 `json:"mem_pss,omitempty"`
	MemPTE    float64 `json:"mem_pte,omitempty"`
	MemCgroup float64 `json:"mem_cgroup,omitempty"`
	ClientRSS float64 `json:"client_rss,omitempty"`
	ServerRSS float64 `json:"server_rss,omitempty"`
	ClientPSS float64 `json:"client_pss,omitempty"`
	ServerPSS float64 `json:"server_pss,omitempty"`
	// MemVsTCP and MemcgVsTCP are MemPSS and MemCgroup against the tcp row's, as
	// the median of the per-round ratios, this/tcp: a multiple of TCP's memory,
	// so that less is better (unlike VsTCP).
	MemVsTCP   float64 `json:"mem_vs_tcp,omitempty"`
	MemcgVsTCP float64 `json:"memcg_vs_tcp,omitempty"`
	// ShmAtStart is the most shared memory (bytes, smc.Stats of both processes)
	// that earlier connections still held when a round's baseline was read,
	// after waiting up to 10 s for it to be returned: memory the round's
	// connections may have reused, which its figures then leave out.
	ShmAtStart int64 `json:"shm_at_start,omitempty"`
	// VsTCP is this row's main figure against the tcp row of the same shape in the
	// same run, oriented so that more than 1 is better: p50 latency (tcp/this),
	// throughput or rate (this/tcp). It is the median of the per-round ratios, each
	// taken between measurements made back to back, which cancels the drift of a
	// shared machine better than a ratio of medians. P99VsTCP is the same for p99.
	VsTCP float64 `json:"vs_tcp,omitempty"`
	// CPUVsTCP, in the wrk group and the core rows of short, setup and many, is
	// the paired ratio of CPU time per request or connection (tcp/this, both
	// processes where both are measured, else the client's): the cost of the smc
	// side, steadier than the rate on a shared machine.
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
	// round order, zero where a round failed; they feed VsTCP. perRoundCPU holds
	// the CPU per operation of each round, for CPUVsTCP; perRoundCgroup the
	// memory cgroup's gain per connection of each idlemem round.
	perRound, perRoundP99, perRoundCPU, perRoundCgroup []float64
}

// SetRounds sets the per-round figures that [SetVsTCP] and [Row.PerRoundCPU]
// pair: the main figure, its p99 (nil where there is none) and the CPU per
// operation (nil where unknown), each in round order with zero where a round
// failed.
func (r *Row) SetRounds(main, p99, cpu []float64) {
	r.perRound, r.perRoundP99, r.perRoundCPU = main, p99, cpu
}

// PerRoundMain returns the main figure of each round, as SetRounds or the rows
// of [CoreRow] hold it.
func (r *Row) PerRoundMain() []float64 { return r.perRound }

// PerRoundCPU returns the CPU per operation of each round, as SetRounds set it.
func (r *Row) PerRoundCPU() []float64 { return r.perRoundCPU }

// printer prints rows as they complete: JSON lines, or a table.
type printer struct {
	w       io.Writer
	json    bool
	jsonOut io.Writer // nil, or a copy of every row as JSON
	started bool
	failed  int // rows that report an error
}

func (p *printer) note(format string, args ...any) {
	if p.json {
		fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) row(r *Row) {
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
	head := fmt.Sprintf("%-15s %6s %5d %-19s %-28s", r.Scenario, sizeString(r.Size), r.Conns, r.Transport, mode)
	switch {
	case r.Unavailable != "":
		fmt.Fprintf(p.w, "%s unavailable: %s\n", head, r.Unavailable)
		return
	case r.Error != "":
		fmt.Fprintf(p.w, "%s error: %s\n", head, r.Error)
		return
	case r.Scenario == "idlemem":
		cg := "-"
		if r.MemCgroup != 0 {
			cg = bytesString(r.MemCgroup)
		}
		vs := ""
		if r.MemVsTCP > 0 {
			vs = fmt.Sprintf("; vs tcp: pss %.2fx", r.MemVsTCP)
			if r.MemcgVsTCP > 0 {
				vs += fmt.Sprintf(", memcg %.2fx", r.MemcgVsTCP)
			}
		}
		if r.ShmAtStart > 0 {
			vs += fmt.Sprintf(" [%s of shared memory held before]", bytesString(float64(r.ShmAtStart)))
		}
		fmt.Fprintf(p.w, "%s per conn: pss %s (cli %s srv %s) rss %s pte %s memcg %s%s\n", head,
			bytesString(r.MemPSS), bytesString(r.ClientPSS), bytesString(r.ServerPSS), bytesString(r.MemRSS), bytesString(r.MemPTE), cg, vs)
		return
	}
	var result, p99 string
	switch {
	case r.Scenario == "idle":
		result = "idle"
	case r.P50us > 0:
		result, p99 = "p50 "+micros(r.P50us), micros(r.P99us)
	case r.GBps > 0:
		result = fmt.Sprintf("%.2f GB/s", r.GBps)
	default:
		result = rate(r.OpsPerSec) + "/s"
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
		return micros(v)
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

func sizeString(n int) string {
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

// bytesString prints a byte count per connection.
func bytesString(b float64) string {
	switch {
	case b >= 1<<20 || b <= -1<<20:
		return fmt.Sprintf("%.2fMiB", b/(1<<20))
	case b >= 1<<10 || b <= -1<<10:
		return fmt.Sprintf("%.1fKiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0fB", b)
}

func micros(us float64) string {
	switch {
	case us >= 10000:
		return fmt.Sprintf("%.1fms", us/1000)
	case us >= 100:
		return fmt.Sprintf("%.0fµs", us)
	}
	return fmt.Sprintf("%.2fµs", us)
}

func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// StateString names a connection state as rows show it: the mode, and for TCP
// the fallback reason ("SMCD", "TCP/PEERNOSMC").
func StateString(st smc.ConnectionState) string {
	if st.Mode == smc.ModeTCP {
		return st.Mode.String() + "/" + st.Fallback.String()
	}
	return st.Mode.String()
}

// JoinStates names the set of states seen, most frequent first, with counts
// when there is more than one.
func JoinStates(m map[string]int) string {
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

// JoinCounts names the states of a count of connections, most frequent first,
// each with its count ("SMCD×3000", "SMCD×381+TCP/MAX_DMB×2619").
func JoinCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "unknown"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, "+")
}

// SetVsTCP fills VsTCP (and P99VsTCP for latency rows) of rows of one shape
// from the tcp row among them: the median of the per-round ratios. For the core
// rows that pair CPU per connection, it fills CPUVsTCP; for idlemem rows,
// MemVsTCP and MemcgVsTCP instead of VsTCP.
func SetVsTCP(rows []*Row) {
	var base *Row
	for _, r := range rows {
		if r.Transport == "tcp" && r.Error == "" && r.Unavailable == "" {
			base = r
		}
	}
	if base == nil {
		return
	}
	lowerIsBetter := base.P50us > 0
	for _, r := range rows {
		if r.Error != "" || r.Unavailable != "" {
			continue
		}
		if r.Scenario == "idlemem" {
			r.MemVsTCP = PairedRatio(r.perRound, base.perRound, false)
			r.MemcgVsTCP = PairedRatio(r.perRoundCgroup, base.perRoundCgroup, false)
			continue
		}
		r.VsTCP = PairedRatio(r.perRound, base.perRound, lowerIsBetter)
		if lowerIsBetter {
			r.P99VsTCP = PairedRatio(r.perRoundP99, base.perRoundP99, true)
		}
		if r.Group == "core" && countScenarios[r.Scenario] {
			r.CPUVsTCP = PairedRatio(r.perRoundCPU, base.perRoundCPU, true)
		}
	}
}

// PairedRatio returns the median over rounds of x/base (base/x when lower is
// better), skipping rounds where either failed.
func PairedRatio(x, base []float64, lowerIsBetter bool) float64 {
	return Median(PairedRatios(x, base, lowerIsBetter))
}

// PairedRatios returns x/base (base/x when lower is better) for every round
// where both succeeded (both figures positive).
func PairedRatios(x, base []float64, lowerIsBetter bool) []float64 {
	var ratios []float64
	for i := range min(len(x), len(base)) {
		if x[i] <= 0 || base[i] <= 0 {
			continue
		}
		if lowerIsBetter {
			ratios = append(ratios, base[i]/x[i])
		} else {
			ratios = append(ratios, x[i]/base[i])
		}
	}
	return ratios
}

// Median returns the median of xs (the mean of the middle two for an even count),
// ignoring nothing: callers pass only measured values. It returns 0 for none.
func Median(xs []float64) float64 {
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

// MedianCI95 returns a 95% confidence interval for the median of the
// distribution xs were drawn from: the order statistics k and n-1-k of the
// sorted sample, k = floor(n/2 - 0.98*sqrt(n) - 1/2) (the normal approximation,
// with continuity correction, of the binomial behind the sign test; its exact
// coverage is 95-98% for 6 to 1000 values). It reports false for fewer than 6
// values, where no such interval reaches 95%.
func MedianCI95(xs []float64) (lo, hi float64, ok bool) {
	n := len(xs)
	if n < 6 {
		return 0, 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := max(int(math.Floor(float64(n)/2-0.98*math.Sqrt(float64(n))-0.5)), 0)
	return s[k], s[n-1-k], true
}
