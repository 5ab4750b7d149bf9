package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smc-go/smc"
	"golang.org/x/sys/unix"
)

// perfTransport is one way of connecting a client to the server.
type perfTransport struct {
	name      string
	listener  string // the server listener it reaches
	dial      func(ctx context.Context) (net.Conn, error)
	clientSMC bool // the client side is this package (its state is shown)
	serverSMC bool // the server side is this package
}

// perfShape is one measured shape of a core scenario.
type perfShape struct {
	scenario string
	size     int
	conns    int
}

// cellResult is one measurement: one shape, one transport, one round.
type cellResult struct {
	ops          int64
	bytes        int64
	elapsed      time.Duration
	lat          []time.Duration
	clientCPU    time.Duration
	serverCPU    time.Duration
	clientStates map[string]int
	serverStates map[string]int
	errors       int64
	err          error
}

type perfClient struct {
	cg   *perfCgroup // nil when this process did not make a child cgroup
	o    perfOptions
	ctl  *perfControl
	info perfInfo
	p    *perfPrinter
}

func runPerfClient(ctx context.Context, control string, o perfOptions, cg *perfCgroup, cgNote string) error {
	ctl, err := dialPerfControl(ctx, control)
	if err != nil {
		return err
	}
	defer ctl.c.Close()
	c := &perfClient{cg: cg, o: o, ctl: ctl, p: &perfPrinter{w: o.out, json: o.json}}
	if o.jsonOut != "" {
		f, err := os.Create(o.jsonOut)
		if err != nil {
			return fmt.Errorf("smc: perf: %w", err)
		}
		defer f.Close()
		c.p.jsonOut = f
	}
	if err := ctl.call(perfRequest{Cmd: "info"}, &c.info); err != nil {
		return err
	}
	c.header(cgNote)
	if err := c.runCore(ctx); err != nil {
		return err
	}
	if slices.Contains(o.scenarios, "wrk") {
		if err := c.runWrk(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(o.scenarios, "shmipc") {
		if err := c.runShmipc(ctx); err != nil {
			return err
		}
	}
	if c.p.failed > 0 {
		// The table is printed; the exit status tells a script (CI's --quick run)
		// that the harness itself failed somewhere.
		return fmt.Errorf("smc: perf: %d measurements failed (see the error rows)", c.p.failed)
	}
	return ctx.Err()
}

func (c *perfClient) header(cgNote string) {
	sig := "available"
	if err := smc.SignallingError(); err != nil {
		sig = "unavailable: " + err.Error()
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	c.p.note("smc perf: %s, kernel %s, %d CPUs, GOMAXPROCS %d, %s", unix.ByteSliceToString(uts.Machine[:]),
		unix.ByteSliceToString(uts.Release[:]), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	c.p.note("signalling (client pid %d): %s", os.Getpid(), sig)
	c.p.note("signalling (server pid %d): %s", c.info.PID, c.info.Signalling)
	c.p.note("cgroup (client): %s", cgNote)
	c.p.note("cgroup (server): %s", c.info.Cgroup)
	c.p.note("cgroup (wrk, nginx: plain peers): %s", c.cg.plainPeerNote())
	mode := "full"
	if c.o.quick {
		mode = "QUICK (harness check; figures meaningless)"
	}
	c.p.note("run: %s; %d rounds x %v per cell, transports alternating round-robin; figures are medians over rounds; vs tcp >1 is better", mode, c.o.rounds, c.o.duration)
	c.p.note("")
}

// transports builds the selected transports against the server's listeners.
func (c *perfClient) transports() []*perfTransport {
	netDial := func(network, addr string) func(context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, network, addr) }
	}
	smcDial := func(addr string) func(context.Context) (net.Conn, error) {
		d := smc.Dialer{Timeout: 10 * time.Second}
		return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	var ts []*perfTransport
	for _, name := range c.o.transports {
		switch name {
		case "tcp":
			ts = append(ts, &perfTransport{name: "tcp", listener: "tcp", dial: netDial("tcp", c.info.TCP)})
		case "unix":
			ts = append(ts, &perfTransport{name: "unix", listener: "unix", dial: netDial("unix", c.info.Unix)})
		case "smc":
			ts = append(ts, &perfTransport{name: "smc", listener: "smc", dial: smcDial(c.info.SMC), clientSMC: true, serverSMC: true})
		case "smc-fallback":
			ts = append(ts,
				&perfTransport{name: "smc-fallback/client", listener: "tcp", dial: smcDial(c.info.TCP), clientSMC: true},
				&perfTransport{name: "smc-fallback/server", listener: "smc", dial: netDial("tcp", c.info.SMC), serverSMC: true})
		}
	}
	return ts
}

func (c *perfClient) shapes() []perfShape {
	var shapes []perfShape
	for _, s := range c.o.scenarios {
		switch s {
		case "pingpong":
			for _, n := range []int{64, 1 << 10, 16 << 10, 64 << 10} {
				shapes = append(shapes, perfShape{"pingpong", n, 1})
			}
		case "bulk":
			shapes = append(shapes, perfShape{"bulk", 64 << 10, 1}, perfShape{"bulk", 1 << 20, 1})
		case "rr":
			shapes = append(shapes, perfShape{"rr", 1 << 10, 1}, perfShape{"rr", 1 << 10, 16})
		case "short":
			shapes = append(shapes, perfShape{"short", 1 << 10, c.o.shortConc})
		case "idle":
			shapes = append(shapes, perfShape{"idle", 64, 1})
		}
	}
	return shapes
}

// runCore measures every core shape on every transport: for each shape, rounds
// of all transports in rotated order, then one row per transport with medians.
func (c *perfClient) runCore(ctx context.Context) error {
	ts := c.transports()
	for _, sh := range c.shapes() {
		results := make([][]cellResult, len(ts))
		for r := 0; r < c.o.rounds; r++ {
			for i := range ts {
				k := (i + r) % len(ts)
				if err := ctx.Err(); err != nil {
					return err
				}
				results[k] = append(results[k], c.runCell(ctx, sh, ts[k]))
			}
		}
		rows := make([]*perfRow, len(ts))
		for k, t := range ts {
			rows[k] = coreRow("core", sh, t, results[k])
		}
		setVsTCP(rows)
		for _, r := range rows {
			c.p.row(r)
		}
	}
	return nil
}

// setVsTCP fills VsTCP for rows of one shape from the tcp row among them: the
// median of the per-round ratios.
func setVsTCP(rows []*perfRow) {
	var base *perfRow
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
		r.VsTCP = pairedRatio(r.perRound, base.perRound, lowerIsBetter)
		if lowerIsBetter {
			r.P99VsTCP = pairedRatio(r.perRoundP99, base.perRoundP99, true)
		}
	}
}

// pairedRatio returns the median over rounds of x/base (base/x when lower is
// better), skipping rounds where either failed.
func pairedRatio(x, base []float64, lowerIsBetter bool) float64 {
	return median(pairedRatios(x, base, lowerIsBetter))
}

// pairedRatios returns x/base (base/x when lower is better) for every round
// where both succeeded.
func pairedRatios(x, base []float64, lowerIsBetter bool) []float64 {
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

// coreRow reduces the rounds of one shape and transport to a row of medians.
func coreRow(group string, sh perfShape, t *perfTransport, res []cellResult) *perfRow {
	row := &perfRow{Group: group, Scenario: sh.scenario, Size: sh.size, Conns: sh.conns, Transport: t.name}
	var rate, p50, p99, gbps, ccpu, scpu []float64
	cs, ss := map[string]int{}, map[string]int{}
	for _, r := range res {
		row.Errors += r.errors
		row.perRound, row.perRoundP99 = append(row.perRound, 0), append(row.perRoundP99, 0)
		if r.err != nil {
			row.Error = r.err.Error()
			continue
		}
		for k, v := range r.clientStates {
			cs[k] += v
		}
		for k, v := range r.serverStates {
			ss[k] += v
		}
		if r.ops == 0 || r.elapsed <= 0 {
			continue
		}
		row.Rounds++
		if sh.scenario == "idle" {
			ccpu = append(ccpu, r.clientCPU.Seconds()*1e3/r.elapsed.Seconds())
			scpu = append(scpu, r.serverCPU.Seconds()*1e3/r.elapsed.Seconds())
			continue
		}
		rate = append(rate, float64(r.ops)/r.elapsed.Seconds())
		row.perRound[len(row.perRound)-1] = rate[len(rate)-1]
		if sh.scenario == "bulk" {
			gib := float64(r.bytes) / (1 << 30)
			gbps = append(gbps, float64(r.bytes)/r.elapsed.Seconds()/1e9)
			row.perRound[len(row.perRound)-1] = gbps[len(gbps)-1]
			ccpu = append(ccpu, r.clientCPU.Seconds()/gib)
			scpu = append(scpu, r.serverCPU.Seconds()/gib)
		} else {
			ccpu = append(ccpu, float64(r.clientCPU.Microseconds())/float64(r.ops))
			scpu = append(scpu, float64(r.serverCPU.Microseconds())/float64(r.ops))
		}
		if len(r.lat) > 0 {
			slices.Sort(r.lat)
			p50 = append(p50, float64(r.lat[len(r.lat)/2].Nanoseconds())/1e3)
			p99 = append(p99, float64(r.lat[len(r.lat)*99/100].Nanoseconds())/1e3)
			row.perRound[len(row.perRound)-1] = p50[len(p50)-1]
			row.perRoundP99[len(row.perRoundP99)-1] = p99[len(p99)-1]
		}
	}
	if row.Rounds > 0 {
		row.Error = "" // some rounds measured; the error count says what failed
	}
	row.OpsPerSec, row.P50us, row.P99us, row.GBps = median(rate), median(p50), median(p99), median(gbps)
	row.ClientCPU, row.ServerCPU = median(ccpu), median(scpu)
	switch sh.scenario {
	case "bulk":
		row.CPUUnit = "s/GiB"
	case "idle":
		row.CPUUnit = "ms/s"
	default:
		row.CPUUnit = "us/op"
	}
	setModes(row, t, cs, ss)
	return row
}

// setModes fills the mode columns from the states the smc side(s) reported.
func setModes(row *perfRow, t *perfTransport, cs, ss map[string]int) {
	if t.clientSMC {
		row.ClientMode = joinStates(cs)
		if row.ClientMode == "" {
			row.ClientMode = "unknown"
		}
	}
	if t.serverSMC {
		row.ServerMode = joinStates(ss)
		if row.ServerMode == "" {
			row.ServerMode = "unknown"
		}
	}
	switch {
	case t.clientSMC && t.serverSMC && row.ClientMode != row.ServerMode:
		row.Mode = "c:" + row.ClientMode + " s:" + row.ServerMode
	case t.clientSMC:
		row.Mode = row.ClientMode
	case t.serverSMC:
		row.Mode = row.ServerMode
	}
}

// runCell measures one shape on one transport once.
func (c *perfClient) runCell(ctx context.Context, sh perfShape, t *perfTransport) (res cellResult) {
	if _, err := c.ctl.stats(true); err != nil {
		return cellResult{err: err}
	}
	var sampler stateSampler
	sampler.left.Store(perfSamples)
	dial := func(ctx context.Context) (net.Conn, error) {
		conn, err := t.dial(ctx)
		if err == nil && t.clientSMC {
			sampler.sample(conn)
		}
		return conn, err
	}
	// start and stop bracket the timed part: connection set-up before it and
	// tear-down after it are left out of the CPU figures, as they are of the time.
	var cpu0, cpu1 time.Duration
	var srv0, srv1 perfStats
	var stopErr error
	start := func() error {
		var err error
		srv0, err = c.ctl.stats(false)
		cpu0 = processCPU()
		return err
	}
	stop := func() {
		cpu1 = processCPU()
		srv1, stopErr = c.ctl.stats(false)
	}
	switch sh.scenario {
	case "pingpong", "rr", "shmipc-pingpong":
		res = runEcho(ctx, dial, sh, c.o.duration, start, stop, sh.scenario == "pingpong")
	case "bulk":
		res = runBulk(ctx, dial, sh.size, c.o.duration, start, stop)
	case "short":
		res = runShort(ctx, dial, sh, c.o.duration, start, stop)
	case "idle":
		res = runIdle(ctx, dial, sh.size, c.o.duration, start, stop)
	}
	if res.err != nil {
		return res
	}
	if stopErr != nil {
		return cellResult{err: stopErr}
	}
	res.clientCPU = cpu1 - cpu0
	res.serverCPU = time.Duration(srv1.CPUNanos - srv0.CPUNanos)
	res.clientStates = sampler.take(false)
	res.serverStates = srv1.States[t.listener]
	return res
}

// runEcho runs sh.conns connections doing request/response of sh.size bytes each
// way for d; with lat it records every round trip's latency (one connection).
// start is called once every connection is set up, just before the clock starts.
func runEcho(ctx context.Context, dial func(context.Context) (net.Conn, error), sh perfShape, d time.Duration, start func() error, stop func(), lat bool) cellResult {
	conns := make([]net.Conn, 0, sh.conns)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	hdr := perfHeader(nil, opEcho, sh.size, sh.size)
	for range sh.conns {
		conn, err := dial(ctx)
		if err != nil {
			return cellResult{err: err}
		}
		conns = append(conns, conn)
		if _, err := conn.Write(hdr); err != nil {
			return cellResult{err: err}
		}
	}
	if err := start(); err != nil {
		return cellResult{err: err}
	}
	var (
		ops   atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		lats  []time.Duration
	)
	t0 := time.Now()
	end := t0.Add(d)
	for i, conn := range conns {
		conn.SetDeadline(end.Add(10 * time.Second))
		wg.Go(func() {
			buf := make([]byte, sh.size)
			for j := range buf {
				buf[j] = byte(j)
			}
			var n int64
			var mine []time.Duration
			if lat && i == 0 {
				mine = make([]time.Duration, 0, 1<<14)
			}
			for {
				s := time.Now()
				if s.After(end) {
					break
				}
				if _, err := conn.Write(buf); err != nil {
					errMu.Lock()
					first = cmpOr(first, err)
					errMu.Unlock()
					break
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					errMu.Lock()
					first = cmpOr(first, err)
					errMu.Unlock()
					break
				}
				n++
				if mine != nil {
					mine = append(mine, time.Since(s))
				}
			}
			ops.Add(n)
			if mine != nil {
				lats = mine
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	stop()
	if first != nil {
		return cellResult{err: first}
	}
	return cellResult{ops: ops.Load(), bytes: ops.Load() * int64(sh.size), elapsed: elapsed, lat: lats}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// runIdle makes one round trip of size bytes on a new connection, then leaves it
// open and idle for d: the CPU both processes spend meanwhile is what an idle
// connection costs (a data path that keeps spinning shows here).
func runIdle(ctx context.Context, dial func(context.Context) (net.Conn, error), size int, d time.Duration, start func() error, stop func()) cellResult {
	conn, err := dial(ctx)
	if err != nil {
		return cellResult{err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(d + 10*time.Second))
	buf := make([]byte, size)
	if _, err := conn.Write(append(perfHeader(nil, opEcho, size, size), buf...)); err != nil {
		return cellResult{err: err}
	}
	if _, err := io.ReadFull(conn, buf); err != nil {
		return cellResult{err: err}
	}
	if err := start(); err != nil {
		return cellResult{err: err}
	}
	t0 := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return cellResult{err: ctx.Err()}
	}
	elapsed := time.Since(t0)
	stop()
	return cellResult{ops: 1, elapsed: elapsed}
}

// runBulk writes size-byte chunks one way for d, then half-closes and waits for
// the server's count of what it received; the time includes that drain.
func runBulk(ctx context.Context, dial func(context.Context) (net.Conn, error), size int, d time.Duration, start func() error, stop func()) cellResult {
	conn, err := dial(ctx)
	if err != nil {
		return cellResult{err: err}
	}
	defer conn.Close()
	if _, err := conn.Write(perfHeader(nil, opSink, 0, 0)); err != nil {
		return cellResult{err: err}
	}
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		return cellResult{err: fmt.Errorf("smc: perf: %T has no CloseWrite", conn)}
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	if err := start(); err != nil {
		return cellResult{err: err}
	}
	t0 := time.Now()
	conn.SetDeadline(t0.Add(d + 10*time.Second))
	var total, ops int64
	for time.Since(t0) < d {
		n, err := conn.Write(buf)
		total += int64(n)
		if err != nil {
			return cellResult{err: err}
		}
		ops++
	}
	if err := cw.CloseWrite(); err != nil {
		return cellResult{err: err}
	}
	var got [8]byte
	if _, err := io.ReadFull(conn, got[:]); err != nil {
		return cellResult{err: fmt.Errorf("smc: perf: reading the sink's count: %w", err)}
	}
	elapsed := time.Since(t0)
	stop()
	if n := int64(binary.BigEndian.Uint64(got[:])); n != total {
		return cellResult{err: fmt.Errorf("smc: perf: the server received %d bytes of %d", n, total)}
	}
	return cellResult{ops: ops, bytes: total, elapsed: elapsed}
}

// runShort runs sh.conns workers, each repeatedly connecting, sending one request
// of sh.size bytes (with the header, in one write), reading the response and
// closing, for d.
func runShort(ctx context.Context, dial func(context.Context) (net.Conn, error), sh perfShape, d time.Duration, start func() error, stop func()) cellResult {
	if err := start(); err != nil {
		return cellResult{err: err}
	}
	var (
		ops, errs atomic.Int64
		wg        sync.WaitGroup
		lastErr   atomic.Value
	)
	t0 := time.Now()
	end := t0.Add(d)
	for range sh.conns {
		wg.Go(func() {
			req := perfHeader(make([]byte, 0, perfHeaderLen+sh.size), opEcho, sh.size, sh.size)
			req = append(req, make([]byte, sh.size)...)
			resp := make([]byte, sh.size)
			var n int64
			for time.Now().Before(end) {
				if err := shortOnce(ctx, dial, req, resp); err != nil {
					errs.Add(1)
					lastErr.Store(err)
					continue
				}
				n++
			}
			ops.Add(n)
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	stop()
	if ops.Load() == 0 {
		err, _ := lastErr.Load().(error)
		if err == nil {
			err = errors.New("smc: perf: no connection completed")
		}
		return cellResult{err: err}
	}
	return cellResult{ops: ops.Load(), elapsed: elapsed, errors: errs.Load()}
}

func shortOnce(ctx context.Context, dial func(context.Context) (net.Conn, error), req, resp []byte) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		return err
	}
	_, err = io.ReadFull(conn, resp)
	return err
}
