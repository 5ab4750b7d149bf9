package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/registry"
)

func init() {
	register("stats", "show SMC's counters: host-wide and per process", runStats)
}

const statsUsage = `usage: smc stats [-p] [--pid=PID] [--clear] [-j]

Shows the counters of the processes on this host that use smc (root sees every
process, a user its own), summed over them, and with -p for each one: connections
offered SMC, peers that never announced it (PEERNOSMC), connections that
negotiated it, SMC-D handshakes, fallbacks by reason, Declines sent and received
by reason, failed handshakes, handshakes in flight and refused by the limit,
connections open, links, shared memory in use and its bound.

Counters count since each process started, or since the last smc stats --clear,
which records them as a baseline (in this user's cache directory) and shows the
counts from then on, as nstat does; the processes' own counters (smc.Stats) never
go back. Connections never offered SMC (policy, or no signalling) are not counted.

flags:
`

// runStats is the entry point of "smc stats".
func runStats(args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statsUsage)
		fs.PrintDefaults()
	}
	perProcess := fs.Bool("p", false, "show each process's counters too")
	pid := fs.Int("pid", 0, "show only this process")
	clear := fs.Bool("clear", false, "record the counters as the baseline that later runs subtract")
	asJSON := fs.Bool("j", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "smc: stats: unexpected argument %q", fs.Arg(0))
	}
	procs, errs := registry.Scan()
	defer func() {
		for _, p := range procs {
			p.Close()
		}
	}()
	for _, e := range errs {
		fmt.Fprintln(stderr, "smc stats: note:", e)
	}
	if *pid != 0 {
		procs = slices.DeleteFunc(procs, func(p *registry.Process) bool { return p.PID != *pid })
	}
	base, err := loadBaseline()
	if err != nil {
		fmt.Fprintln(stderr, "smc stats: note: ignoring the baseline:", err)
	}
	if *clear {
		for _, p := range procs {
			base.put(p)
		}
		if err := base.save(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cleared: counters of %d processes recorded as the baseline\n", len(procs))
		return nil
	}
	var host registry.Snapshot
	report := statsReport{Processes: []processStats{}}
	for _, p := range procs {
		s, since := base.sub(p)
		host = host.Plus(s)
		report.Processes = append(report.Processes, processStats{
			PID: p.PID, Process: p.Name, Signalling: p.Status, Since: since, Statistics: statisticsOf(s),
		})
	}
	report.Host = statisticsOf(host)
	report.Host.MemoryLimit = 0 // a bound is per process
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	printStats(stdout, report, *perProcess)
	return nil
}

// statsReport is what smc stats -j prints.
type statsReport struct {
	Host      smc.Statistics // summed over the processes; MemoryLimit is zero (a bound is per process)
	Processes []processStats
}

type processStats struct {
	PID        int
	Process    string
	Signalling string    // what the process's signalling is
	Since      time.Time // when its counters started: its start, or the baseline
	smc.Statistics
}

// statisticsOf turns a registry snapshot into smc.Statistics, as smc.Stats does in
// the process itself.
func statisticsOf(s registry.Snapshot) smc.Statistics {
	side := func(d registry.Side) smc.SideStatistics {
		reasons := func(m map[uint32]uint64) map[smc.Reason]uint64 {
			out := make(map[smc.Reason]uint64, len(m))
			for code, n := range m {
				out[smc.Reason(code)] = n
			}
			return out
		}
		return smc.SideStatistics{Offered: d.Offered, PeerNoSMC: d.PeerNoSMC, NotSent: d.NotSent, Conflicts: d.Conflicts,
			Negotiated: d.Negotiated, SMCD: d.SMCD,
			Fallbacks: reasons(d.Fallbacks), LocalDeclines: reasons(d.LocalDeclines), PeerDeclines: reasons(d.PeerDeclines),
			Failed: d.Failed}
	}
	st := smc.Statistics{
		Client:             side(s.Side(registry.Client)),
		Server:             side(s.Side(registry.Server)),
		HandshakesInFlight: s.Gauges[registry.HandshakesInFlight],
		OpenSMCD:           s.Gauges[registry.OpenSMCD],
		OpenTCP:            s.Gauges[registry.OpenTCP],
		Links:              s.Gauges[registry.Links],
		MemoryInUse:        s.Gauges[registry.MemoryInUse],
		MemoryLimit:        s.Gauges[registry.MemoryLimit],
		WakeupsSent:        s.Counters[registry.WakeupsSent],
		WakeupsReceived:    s.Counters[registry.WakeupsReceived],
	}
	st.HandshakesRefused = st.Server.Fallbacks[smc.ReasonHandshakeLimit]
	return st
}

// printStats prints the host's counters, and each process's with perProcess.
func printStats(w io.Writer, r statsReport, perProcess bool) {
	if len(r.Processes) == 0 {
		fmt.Fprintln(w, "no process using smc found (as a user, only this user's are shown)")
		return
	}
	fmt.Fprintf(w, "%d processes use smc:\n", len(r.Processes))
	for _, p := range r.Processes {
		fmt.Fprintf(w, "  pid %d (%s): signalling %s; counting since %s\n", p.PID, p.Process, p.Signalling,
			p.Since.Local().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintln(w)
	printStatistics(w, r.Host, "host")
	if !perProcess {
		return
	}
	for _, p := range r.Processes {
		fmt.Fprintln(w)
		printStatistics(w, p.Statistics, fmt.Sprintf("pid %d (%s)", p.PID, p.Process))
	}
}

// printStatistics prints one set of counters, client and server side by side.
func printStatistics(w io.Writer, s smc.Statistics, title string) {
	row := func(name string, c, sv any) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("%-44s %12v %12v", name, c, sv), " "))
	}
	row(title, "client", "server")
	row("offered SMC", s.Client.Offered, s.Server.Offered)
	row("  peer never announced it (PEERNOSMC)", s.Client.PeerNoSMC, s.Server.PeerNoSMC)
	row("  our SYN could not carry it", s.Client.NotSent, s.Server.NotSent)
	row("  another program had written it", s.Client.Conflicts, s.Server.Conflicts)
	row("  negotiated: a CLC handshake ran", s.Client.Negotiated, s.Server.Negotiated)
	row("    ended in SMC-D", s.Client.SMCD, s.Server.SMCD)
	row("    handshake failed", s.Client.Failed, s.Server.Failed)
	reasons := func(title string, c, sv map[smc.Reason]uint64) {
		var keys []smc.Reason
		for k := range c {
			keys = append(keys, k)
		}
		for k := range sv {
			if _, ok := c[k]; !ok {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			row(title, "-", "-")
			return
		}
		slices.SortFunc(keys, func(a, b smc.Reason) int { return strings.Compare(a.String(), b.String()) })
		row(title, "", "")
		indent := title[:len(title)-len(strings.TrimLeft(title, " "))] + "  "
		for _, k := range keys {
			row(indent+k.String(), c[k], sv[k])
		}
	}
	reasons("    fell back to TCP, by reason", s.Client.Fallbacks, s.Server.Fallbacks)
	reasons("Declines sent, by reason", s.Client.LocalDeclines, s.Server.LocalDeclines)
	reasons("Declines received, by the peer's diagnosis", s.Client.PeerDeclines, s.Server.PeerDeclines)
	one := func(name string, v any) { fmt.Fprintf(w, "%-44s %12v\n", name, v) }
	one("handshakes in flight", s.HandshakesInFlight)
	one("handshakes refused by the limit", s.HandshakesRefused)
	one("connections open in SMC-D", s.OpenSMCD)
	one("connections open in TCP after a handshake", s.OpenTCP)
	one("links", s.Links)
	one("shared memory in use", bytesText(s.MemoryInUse))
	if s.MemoryLimit > 0 {
		one("shared memory bound", bytesText(s.MemoryLimit))
	}
	one("wake-ups sent, received", fmt.Sprintf("%d, %d", s.WakeupsSent, s.WakeupsReceived))
}

// bytesText prints a byte count in binary units.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// A baseline holds the counters smc stats --clear recorded, by process (PID and
// the registry's instance number, so that a new process with an old PID starts
// from zero).
type baseline struct {
	path  string
	Procs map[string]baselineEntry
}

type baselineEntry struct {
	At       time.Time
	Snapshot registry.Snapshot
}

func baselineKey(p *registry.Process) string { return fmt.Sprintf("%d/%x", p.PID, p.Instance) }

// loadBaseline reads the baseline file; a missing one is an empty baseline.
func loadBaseline() (*baseline, error) {
	b := &baseline{Procs: map[string]baselineEntry{}}
	dir, err := os.UserCacheDir()
	if err != nil {
		return b, err
	}
	b.path = filepath.Join(dir, "smc", "stats-baseline.json")
	data, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err == nil {
		err = json.Unmarshal(data, b)
	}
	if err != nil || b.Procs == nil {
		b.Procs = map[string]baselineEntry{}
	}
	return b, err
}

// put records p's counters now.
func (b *baseline) put(p *registry.Process) {
	b.Procs[baselineKey(p)] = baselineEntry{At: time.Now(), Snapshot: p.Snapshot}
}

// sub returns p's counters less its baseline, and since when they count.
func (b *baseline) sub(p *registry.Process) (registry.Snapshot, time.Time) {
	e, ok := b.Procs[baselineKey(p)]
	if !ok {
		return p.Snapshot, p.Start
	}
	return p.Snapshot.Sub(e.Snapshot), e.At
}

// save writes the baseline, keeping only processes that still run.
func (b *baseline) save() error {
	if b.path == "" {
		return errors.New("smc: stats: no cache directory for the baseline")
	}
	for k := range b.Procs {
		var pid int
		fmt.Sscanf(k, "%d/", &pid)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			delete(b.Procs, k)
		}
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return fmt.Errorf("smc: stats: %w", err)
	}
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("smc: stats: %w", err)
	}
	return os.Rename(tmp, b.path)
}
