package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/wire"
	"golang.org/x/sys/unix"
)

// The core scenarios and the transports, in table order. DefaultScenarios is
// what a run measures unless told otherwise: the slow scenarios, which open
// hundreds of connections per cell, are measured when named (or with "all").
var (
	Scenarios        = []string{"pingpong", "bulk", "rr", "short", "setup", "idle", "idlemem", "many"}
	DefaultScenarios = []string{"pingpong", "bulk", "rr", "short", "setup", "idle"}
	Transports       = []string{"tcp", "unix", "smc", "smc-fallback"}
)

// setupBatch is how many connections the setup scenario opens, one after the
// other, before it closes them: the close of a connection is left out of the
// figures, and the connections of a batch must fit the process's shared-memory
// bound at the largest default ring.
const setupBatch = 32

// Options is what a client run measures and how it prints.
type Options struct {
	Scenarios  []string      // a selection of Scenarios, in any order
	Transports []string      // a selection of Transports, in any order
	Duration   time.Duration // per cell and round
	Rounds     int
	ShortConc  int // concurrent clients of the short scenario
	IdleConns  int // connections the idlemem scenario holds open
	ManyConns  int // concurrent connections of the many scenario
	// BufferSize is the smc.Config.BufferSize of the smc dialers (0: the
	// library's default); the server's listeners must use the same.
	BufferSize int
	// Memcg is the memory cgroup client and server run in, whose charge the
	// idlemem scenario reads; nil reads none.
	Memcg   *MemCgroup
	JSON    bool      // print one JSON object per row instead of a table
	JSONOut string    // also write one JSON object per row to this file
	Quick   bool      // a harness check: the header says the figures are meaningless
	Out     io.Writer // where rows go; notes go there too, or to standard error with JSON
	Name    string    // what the header calls the run; empty means "smc perf"
}

// QuickOptions returns o with the tiny cells of a harness check.
func QuickOptions(o Options) Options {
	o.Quick = true
	o.Duration, o.Rounds, o.ShortConc = 15*time.Millisecond, 2, 8
	o.IdleConns, o.ManyConns = 16, 32
	return o
}

// Check reports options that cannot be measured.
func (o Options) Check() error {
	if o.Rounds < 1 || o.Duration <= 0 || o.ShortConc < 1 {
		return errors.New("smc: perf: --rounds, --duration and --short-concurrency must be positive")
	}
	if (slices.Contains(o.Scenarios, "idlemem") && o.IdleConns < 1) || (slices.Contains(o.Scenarios, "many") && o.ManyConns < 1) {
		return errors.New("smc: perf: --idle-conns and --many-conns must be positive")
	}
	return CheckBufferSize(o.BufferSize)
}

// CheckBufferSize reports a --buffer-size that is not 0 (the library's default)
// or a power of two SMC-D can offer, from 16 KiB to 512 MiB: the library would
// round any other size up, and the figures would be for a ring not asked for.
func CheckBufferSize(n int) error {
	if n == 0 {
		return nil
	}
	if n < wire.MinBufferSize || n > wire.BufferSize(wire.MaxCompressedSize) || n&(n-1) != 0 {
		return fmt.Errorf("smc: perf: --buffer-size %d is not 0 or a power of two from %d to %d", n, wire.MinBufferSize, wire.BufferSize(wire.MaxCompressedSize))
	}
	return nil
}

// Run is the local mode of smc perf: it moves the process into a child cgroup when
// it must (see [EnterCgroup]), starts the server as a child process by running this
// executable with serverArgs, measures o against it and prints the table.
func Run(ctx context.Context, o Options, serverArgs ...string) error {
	if err := o.Check(); err != nil {
		return err
	}
	// The cgroup move must come before any socket: a socket keeps the cgroup it was
	// created in, and the library attaches its signalling to the process's cgroup.
	cg, cgNote, err := EnterCgroup()
	if err != nil {
		return err
	}
	defer printErr(cg.Leave)
	// Only the memory scenario needs a memory cgroup of its own; the server,
	// started next, inherits it.
	memNote := ""
	if slices.Contains(o.Scenarios, "idlemem") {
		mcg, note, err := EnterMemCgroup()
		if err != nil {
			return err
		}
		defer printErr(mcg.Leave)
		o.Memcg, memNote = mcg, "memory cgroup: "+note
	}
	srv, err := StartServer(serverArgs...)
	if err != nil {
		return err
	}
	defer srv.Stop() // before the cgroups are left: deferred calls run last first
	return RunClient(ctx, srv.Control, o, cgNote, memNote)
}

// printErr prints the error of f, if any, on stderr: for deferred clean-ups that have
// no one else to tell.
func printErr(f func() error) {
	if err := f(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// RunClient is the client mode of smc perf: it measures o against the server at
// the control address and prints the table. cgNote says what the caller did about
// cgroups ([EnterCgroup]'s note).
func RunClient(ctx context.Context, control string, o Options, cgNote string, notes ...string) error {
	if err := o.Check(); err != nil {
		return err
	}
	c, err := NewClient(ctx, control, o)
	if err != nil {
		return err
	}
	defer c.Close()
	var hn []string
	for _, n := range notes {
		if n != "" {
			hn = append(hn, n)
		}
	}
	c.Header(cgNote, hn...)
	if err := c.RunCore(ctx); err != nil {
		return err
	}
	return c.Err(ctx)
}

// A Client measures against an smc perf server and prints the rows.
type Client struct {
	o       Options
	ctl     *control
	info    ServerInfo
	p       *printer
	jsonOut *os.File
}

// NewClient connects to the server at the control address.
func NewClient(ctx context.Context, control string, o Options) (*Client, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	ctl, err := dialControl(ctx, control)
	if err != nil {
		return nil, err
	}
	c := &Client{o: o, ctl: ctl, p: &printer{w: o.Out, json: o.JSON}}
	if err := ctl.call(request{Cmd: "info"}, &c.info); err != nil {
		ctl.c.Close()
		return nil, err
	}
	if c.info.BufferSize != o.BufferSize {
		ctl.c.Close()
		return nil, fmt.Errorf("smc: perf: the server's smc rings are --buffer-size=%d, the client's %d: give both the same", c.info.BufferSize, o.BufferSize)
	}
	if o.JSONOut != "" {
		f, err := os.Create(o.JSONOut)
		if err != nil {
			ctl.c.Close()
			return nil, fmt.Errorf("smc: perf: %w", err)
		}
		c.jsonOut, c.p.jsonOut = f, f
	}
	return c, nil
}

// Close closes the control connection and the JSON copy.
func (c *Client) Close() error {
	err := c.ctl.c.Close()
	if c.jsonOut != nil {
		if cerr := c.jsonOut.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Info returns where the server's listeners are.
func (c *Client) Info() ServerInfo { return c.info }

// Header prints what the run is on: machine, signalling and cgroups of both
// processes, then each of notes, then the run's shape.
func (c *Client) Header(cgNote string, notes ...string) {
	sig := "available"
	if err := smc.SignallingError(); err != nil {
		sig = "unavailable: " + err.Error()
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	name := c.o.Name
	if name == "" {
		name = "smc perf"
	}
	c.p.note("%s: %s, kernel %s, %d CPUs, GOMAXPROCS %d, %s", name, unix.ByteSliceToString(uts.Machine[:]),
		unix.ByteSliceToString(uts.Release[:]), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	c.p.note("signalling (client pid %d): %s", os.Getpid(), sig)
	c.p.note("signalling (server pid %d): %s", c.info.PID, c.info.Signalling)
	c.p.note("cgroup (client): %s", cgNote)
	c.p.note("cgroup (server): %s", c.info.Cgroup)
	if c.o.BufferSize != 0 {
		c.p.note("smc rings (smc.Config.BufferSize, both sides): %d bytes", c.o.BufferSize)
	}
	for _, n := range notes {
		c.p.note("%s", n)
	}
	mode := "full"
	if c.o.Quick {
		mode = "QUICK (harness check; figures meaningless)"
	}
	c.p.note("run: %s; %d rounds x %v per cell, transports alternating round-robin; figures are medians over rounds; vs tcp >1 is better", mode, c.o.Rounds, c.o.Duration)
	c.p.note("")
}

// Note prints a line of commentary: in the table, or on standard error with JSON.
func (c *Client) Note(format string, args ...any) { c.p.note(format, args...) }

// Print prints rows.
func (c *Client) Print(rows ...*Row) {
	for _, r := range rows {
		c.p.row(r)
	}
}

// Err reports rows that failed, or the end of ctx. The table is printed either
// way; the exit status tells a script (CI's --quick run) that the harness itself
// failed somewhere.
func (c *Client) Err(ctx context.Context) error {
	if c.p.failed > 0 {
		return fmt.Errorf("smc: perf: %d measurements failed (see the error rows)", c.p.failed)
	}
	return ctx.Err()
}

// ServerStats returns the server's CPU time so far and the states it sampled
// since the last reset; reset starts a new sample.
func (c *Client) ServerStats(reset bool) (ServerStats, error) { return c.ctl.stats(reset) }

// A Transport is one way of connecting a client to the server.
type Transport struct {
	Name      string
	listener  string // the server listener it reaches
	dial      func(ctx context.Context) (net.Conn, error)
	clientSMC bool // the client side is this package (its state is shown)
	serverSMC bool // the server side is this package
}

// Transports builds the selected transports against the server's listeners:
// "smc-fallback" gives two, smc-fallback/client and smc-fallback/server.
func (c *Client) Transports() []*Transport {
	netDial := func(network, addr string) func(context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, network, addr) }
	}
	smcDial := func(addr string) func(context.Context) (net.Conn, error) {
		d := smc.Dialer{Timeout: 10 * time.Second, Config: &smc.Config{BufferSize: c.o.BufferSize}}
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	var ts []*Transport
	for _, name := range Transports {
		if !slices.Contains(c.o.Transports, name) {
			continue
		}
		switch name {
		case "tcp":
			ts = append(ts, &Transport{Name: "tcp", listener: "tcp", dial: netDial("tcp", c.info.TCP)})
		case "unix":
			ts = append(ts, &Transport{Name: "unix", listener: "unix", dial: netDial("unix", c.info.Unix)})
		case "smc":
			ts = append(ts, &Transport{Name: "smc", listener: "smc", dial: smcDial(c.info.SMC), clientSMC: true, serverSMC: true})
		case "smc-fallback":
			ts = append(ts,
				&Transport{Name: "smc-fallback/client", listener: "tcp", dial: smcDial(c.info.TCP), clientSMC: true},
				&Transport{Name: "smc-fallback/server", listener: "smc", dial: netDial("tcp", c.info.SMC), serverSMC: true})
		}
	}
	return ts
}

// A Shape is one measured shape: a scenario, a message size and a connection
// count. The scenarios bulk, short and idle are as Scenarios describes them;
// pingpong is request/response on one connection with every round trip timed; any
// other scenario (rr, a lab's) is request/response of Size bytes each way over
// Conns connections.
type Shape struct {
	Scenario string
	Size     int
	Conns    int
}

func (c *Client) shapes() []Shape {
	var shapes []Shape
	for _, s := range Scenarios {
		if !slices.Contains(c.o.Scenarios, s) {
			continue
		}
		switch s {
		case "pingpong":
			for _, n := range []int{64, 1 << 10, 16 << 10, 64 << 10} {
				shapes = append(shapes, Shape{"pingpong", n, 1})
			}
		case "bulk":
			shapes = append(shapes, Shape{"bulk", 64 << 10, 1}, Shape{"bulk", 1 << 20, 1})
		case "rr":
			shapes = append(shapes, Shape{"rr", 1 << 10, 1}, Shape{"rr", 1 << 10, 16})
		case "short":
			shapes = append(shapes, Shape{"short", 1 << 10, c.o.ShortConc})
		case "setup":
			shapes = append(shapes, Shape{"setup", 0, 1})
		case "idle":
			shapes = append(shapes, Shape{"idle", 64, 1})
		case "idlemem":
			// A little data, then a full lap of the default ring each way: a
			// ring's pages are resident only once data has passed through them.
			shapes = append(shapes, Shape{"idlemem", 64, c.o.IdleConns}, Shape{"idlemem", smc.DefaultBufferSize, c.o.IdleConns})
		case "many":
			shapes = append(shapes, Shape{"many", 1 << 10, c.o.ManyConns})
		}
	}
	return shapes
}

// RunCore measures every selected core shape on every selected transport: for
// each shape, rounds of all transports in rotated order, then one row per
// transport with medians.
func (c *Client) RunCore(ctx context.Context) error {
	ts := c.Transports()
	for _, sh := range c.shapes() {
		results := make([][]CellResult, len(ts))
		for r := 0; r < c.o.Rounds; r++ {
			for i := range ts {
				k := (i + r) % len(ts)
				if err := ctx.Err(); err != nil {
					return err
				}
				results[k] = append(results[k], c.Cell(ctx, sh, ts[k]))
			}
		}
		rows := make([]*Row, len(ts))
		for k, t := range ts {
			rows[k] = CoreRow("core", sh, t, results[k])
		}
		SetVsTCP(rows)
		c.Print(rows...)
	}
	return nil
}

// A CellResult is one measurement: one shape, one transport, one round.
type CellResult struct {
	Ops          int64
	Bytes        int64
	Elapsed      time.Duration
	Lat          []time.Duration // every round trip's latency, where timed
	ClientCPU    time.Duration
	ServerCPU    time.Duration
	ClientStates map[string]int // sampled states of the smc client side
	ServerStates map[string]int // sampled states of the server's listener
	// ClientCounts and ServerCounts count every connection of the cell by the
	// state it ended in, from smc.Stats of each side ([CellCounts]).
	ClientCounts map[string]int64
	ServerCounts map[string]int64
	Mem          *MemResult // idlemem: memory per connection
	Errors       int64      // failed operations that did not stop the measurement
	Err          error      // what stopped the measurement
}

// CoreRow reduces the rounds of one shape and transport to a row of medians.
func CoreRow(group string, sh Shape, t *Transport, res []CellResult) *Row {
	row := &Row{Group: group, Scenario: sh.Scenario, Size: sh.Size, Conns: sh.Conns, Transport: t.Name}
	var rate, p50, p99, gbps, ccpu, scpu []float64
	var crss, srss, cpss, spss, pte, cgrp []float64
	cs, ss := map[string]int{}, map[string]int{}
	cc, sc := map[string]int64{}, map[string]int64{}
	countCPU := countScenarios[sh.Scenario]
	for _, r := range res {
		row.Errors += r.Errors
		row.perRound, row.perRoundP99 = append(row.perRound, 0), append(row.perRoundP99, 0)
		if countCPU {
			row.perRoundCPU = append(row.perRoundCPU, 0)
		}
		if sh.Scenario == "idlemem" {
			row.perRoundCgroup = append(row.perRoundCgroup, 0)
		}
		if r.Err != nil {
			row.Error = r.Err.Error()
			continue
		}
		for k, v := range r.ClientStates {
			cs[k] += v
		}
		for k, v := range r.ServerStates {
			ss[k] += v
		}
		for k, v := range r.ClientCounts {
			cc[k] += v
		}
		for k, v := range r.ServerCounts {
			sc[k] += v
		}
		if r.Ops == 0 || r.Elapsed <= 0 {
			continue
		}
		row.Rounds++
		switch sh.Scenario {
		case "idle":
			ccpu = append(ccpu, r.ClientCPU.Seconds()*1e3/r.Elapsed.Seconds())
			scpu = append(scpu, r.ServerCPU.Seconds()*1e3/r.Elapsed.Seconds())
			continue
		case "idlemem":
			m := r.Mem
			crss, srss = append(crss, m.ClientRSS), append(srss, m.ServerRSS)
			cpss, spss = append(cpss, m.ClientPSS), append(spss, m.ServerPSS)
			pte = append(pte, m.PTE)
			row.perRound[len(row.perRound)-1] = m.ClientPSS + m.ServerPSS
			row.ShmAtStart = max(row.ShmAtStart, m.ShmAtStart)
			if m.HasCgroup {
				cgrp = append(cgrp, m.Cgroup)
				row.perRoundCgroup[len(row.perRoundCgroup)-1] = m.Cgroup
			}
			continue
		}
		rate = append(rate, float64(r.Ops)/r.Elapsed.Seconds())
		row.perRound[len(row.perRound)-1] = rate[len(rate)-1]
		if sh.Scenario == "bulk" {
			gib := float64(r.Bytes) / (1 << 30)
			gbps = append(gbps, float64(r.Bytes)/r.Elapsed.Seconds()/1e9)
			row.perRound[len(row.perRound)-1] = gbps[len(gbps)-1]
			ccpu = append(ccpu, r.ClientCPU.Seconds()/gib)
			scpu = append(scpu, r.ServerCPU.Seconds()/gib)
		} else {
			ccpu = append(ccpu, float64(r.ClientCPU.Nanoseconds())/1e3/float64(r.Ops))
			scpu = append(scpu, float64(r.ServerCPU.Nanoseconds())/1e3/float64(r.Ops))
			if countCPU {
				row.perRoundCPU[len(row.perRoundCPU)-1] = ccpu[len(ccpu)-1] + scpu[len(scpu)-1]
			}
		}
		if len(r.Lat) > 0 {
			slices.Sort(r.Lat)
			p50 = append(p50, float64(r.Lat[len(r.Lat)/2].Nanoseconds())/1e3)
			p99 = append(p99, float64(r.Lat[len(r.Lat)*99/100].Nanoseconds())/1e3)
			row.perRound[len(row.perRound)-1] = p50[len(p50)-1]
			row.perRoundP99[len(row.perRoundP99)-1] = p99[len(p99)-1]
		}
	}
	if row.Rounds > 0 {
		row.Error = "" // some rounds measured; the error count says what failed
	}
	row.OpsPerSec, row.P50us, row.P99us, row.GBps = Median(rate), Median(p50), Median(p99), Median(gbps)
	row.ClientCPU, row.ServerCPU = Median(ccpu), Median(scpu)
	switch sh.Scenario {
	case "bulk":
		row.CPUUnit = "s/GiB"
	case "idle":
		row.CPUUnit = "ms/s"
	case "idlemem":
		row.ClientRSS, row.ServerRSS = Median(crss), Median(srss)
		row.ClientPSS, row.ServerPSS = Median(cpss), Median(spss)
		row.MemRSS, row.MemPSS = row.ClientRSS+row.ServerRSS, row.ClientPSS+row.ServerPSS
		row.MemPTE, row.MemCgroup = Median(pte), Median(cgrp)
	default:
		row.CPUUnit = "us/op"
	}
	setModes(row, t, cs, ss)
	if countScenarios[sh.Scenario] {
		row.ClientCounts, row.ServerCounts = nilIfEmpty(cc), nilIfEmpty(sc)
		setCountModes(row, t)
	}
	return row
}

// countScenarios are the scenarios whose rows count every connection by the
// state it ended in (from smc.Stats), rather than sample the states of a few,
// and whose rows pair CPU per connection against tcp: those where what
// set-up costs, and how many connections get SMC-D, is the point.
var countScenarios = map[string]bool{"short": true, "setup": true, "idlemem": true, "many": true}

func nilIfEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// setCountModes sets the mode columns from the counts of every connection.
func setCountModes(row *Row, t *Transport) {
	if t.clientSMC {
		row.ClientMode = JoinCounts(row.ClientCounts)
	}
	if t.serverSMC {
		row.ServerMode = JoinCounts(row.ServerCounts)
	}
	setMode(row, t)
}

// setModes fills the mode columns from the states the smc side(s) reported.
func setModes(row *Row, t *Transport, cs, ss map[string]int) {
	if t.clientSMC {
		row.ClientMode = JoinStates(cs)
		if row.ClientMode == "" {
			row.ClientMode = "unknown"
		}
	}
	if t.serverSMC {
		row.ServerMode = JoinStates(ss)
		if row.ServerMode == "" {
			row.ServerMode = "unknown"
		}
	}
	setMode(row, t)
}

// setMode sets the mode column from the mode columns of the smc side(s).
func setMode(row *Row, t *Transport) {
	switch {
	case t.clientSMC && t.serverSMC && row.ClientMode != row.ServerMode:
		row.Mode = "c:" + row.ClientMode + " s:" + row.ServerMode
	case t.clientSMC:
		row.Mode = row.ClientMode
	case t.serverSMC:
		row.Mode = row.ServerMode
	}
}

// Cell measures one shape on one transport once.
func (c *Client) Cell(ctx context.Context, sh Shape, t *Transport) (res CellResult) {
	srvBase, err := c.ctl.stats(true)
	if err != nil {
		return CellResult{Err: err}
	}
	cliBase := SideCounts(smc.Stats().Client)
	sampler := NewStateSampler()
	var dials atomic.Int64
	dial := func(ctx context.Context) (net.Conn, error) {
		conn, err := t.dial(ctx)
		if err == nil {
			dials.Add(1)
			if t.clientSMC {
				sampler.Sample(conn)
			}
		}
		return conn, err
	}
	// start and stop bracket the timed part: connection set-up before it and
	// tear-down after it are left out of the CPU figures, as they are of the time.
	var cpu0, cpu1 time.Duration
	var srv0, srv1 ServerStats
	var stopErr error
	start := func() error {
		var err error
		srv0, err = c.ctl.stats(false)
		cpu0 = ProcessCPU()
		return err
	}
	stop := func() {
		cpu1 = ProcessCPU()
		srv1, stopErr = c.ctl.stats(false)
	}
	selfTimed := false // the scenario measures CPU itself, or none
	switch sh.Scenario {
	case "bulk":
		res = runBulk(ctx, dial, sh.Size, c.o.Duration, start, stop)
	case "short":
		res = runShort(ctx, dial, sh, c.o.Duration, start, stop)
	case "idle":
		res = runIdle(ctx, dial, sh.Size, c.o.Duration, start, stop)
	case "setup":
		res, selfTimed = c.runSetup(ctx, dial, c.o.Duration), true
	case "idlemem":
		res, selfTimed = c.runIdleMem(ctx, dial, sh, c.o.Duration), true
	default:
		res = runEcho(ctx, dial, sh, c.o.Duration, start, stop, sh.Scenario == "pingpong")
	}
	if res.Err != nil {
		return res
	}
	if !selfTimed {
		if stopErr != nil {
			return CellResult{Err: stopErr}
		}
		res.ClientCPU = cpu1 - cpu0
		res.ServerCPU = time.Duration(srv1.CPUNanos - srv0.CPUNanos)
	}
	// The counts are taken once the cell is over: every connection of it has
	// ended its handshake by then (the server's, at its first read).
	end, err := c.ctl.stats(false)
	if err != nil {
		return CellResult{Err: err}
	}
	res.ClientStates = sampler.Take(false)
	res.ServerStates = end.States[t.listener]
	if t.clientSMC {
		res.ClientCounts = CellCounts(cliBase, SideCounts(smc.Stats().Client), dials.Load())
	}
	if t.serverSMC {
		res.ServerCounts = CellCounts(srvBase.Counts, end.Counts, end.Accepted[t.listener]-srvBase.Accepted[t.listener])
	}
	return res
}
