package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/perf"
)

// The IPPROTO_SMC cover letter's short-connection benchmark, for fallback:
//
//   - wrk-server: wrk -H 'Connection: close' against the server process's Go HTTP
//     server on net.Listen (tcp) and on smc.Listen (smc-fallback/server; wrk does not
//     advertise SMC, so the server falls back);
//   - nginx-client: a Go loop of short HTTP/1.1 requests (Connection: close) with
//     net.Dialer (tcp) and smc.Dialer (smc-fallback/client) against nginx.
//
// A and B alternate in a balanced order (abOrder) and the figures are medians
// over rounds. With --wrk-control a third measurement, tcp again ("tcp-control",
// against its own net.Listen server in the wrk-server scenario), joins the
// rotation: its ratio against tcp is this machine's noise floor for the same
// comparison.

func (l *lab) runWrk(ctx context.Context) error {
	if slices.Contains(l.o.wrkSides, "server") {
		if err := l.runWrkServer(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(l.o.wrkSides, "client") {
		return l.runNginxClient(ctx)
	}
	return nil
}

// abRounds runs the measurements of every round back to back in the order
// abOrder gives, so that across rounds each measurement runs equally often in
// each position and right after each other one.
func abRounds(ctx context.Context, rounds int, fns ...func() error) error {
	for r := 0; r < rounds; r++ {
		for _, i := range abOrder(r, len(fns)) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fns[i](); err != nil {
				return err
			}
		}
	}
	return nil
}

// abOrder is the order of n measurements in round r: the n rotations of
// 0..n-1, then the same rotations reversed (for two: AB, BA, BA, AB; for
// three: ABC, BCA, CAB, CBA, ACB, BAC). Over every 2n rounds each measurement
// takes each position twice and, for n <= 3, follows each other measurement
// equally often, so neither a position in the round nor what ran just before
// (a warmer cache, the previous cell's TIME_WAIT sockets) favours one of them.
func abOrder(r, n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = (i + r) % n
	}
	if (r/n)%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// abTransports names the rows of one A/B comparison.
func (l *lab) abTransports(smcSide string) []string {
	if l.o.wrkControl {
		return []string{"tcp", smcSide, "tcp-control"}
	}
	return []string{"tcp", smcSide}
}

// finishAB fills the ratios of the smc row b, and of the A/A control row when
// there is one, against the tcp row a, and prints them.
func (l *lab) finishAB(a, b, control *perf.Row) {
	rows := []*perf.Row{a, b}
	if control != nil {
		rows = append(rows, control)
	}
	perf.SetVsTCP(rows)
	for _, r := range rows[1:] {
		r.CPUVsTCP = perf.PairedRatio(r.PerRoundCPU(), a.PerRoundCPU(), true)
		if lo, hi, ok := perf.MedianCI95(perf.PairedRatios(r.PerRoundMain(), a.PerRoundMain(), false)); ok && r.VsTCP > 0 {
			r.VsTCPCI95 = []float64{lo, hi}
		}
	}
	for _, r := range rows {
		l.Print(r)
	}
}

// abMeasure is what one A or B measurement collects.
type abMeasure struct {
	rate, ccpu, scpu []float64
	perRound         []float64 // rate per round, zero where the round failed
	perRoundCPU      []float64 // CPU per request per round, zero where unknown
	errors           int64
	err              error
	states           map[string]int
}

func (m *abMeasure) row(scenario string, conns int, transport string) *perf.Row {
	r := &perf.Row{Group: "wrk", Scenario: scenario, Conns: conns, Transport: transport,
		Rounds: len(m.rate), OpsPerSec: perf.Median(m.rate), ClientCPU: perf.Median(m.ccpu), ServerCPU: perf.Median(m.scpu),
		CPUUnit: "us/op", Errors: m.errors, PerRound: m.perRound}
	r.SetRounds(m.perRound, nil, m.perRoundCPU)
	if m.err != nil && len(m.rate) == 0 {
		r.Error = m.err.Error()
	}
	return r
}

func (l *lab) runWrkServer(ctx context.Context) error {
	wrk, err := exec.LookPath("wrk")
	for _, n := range l.o.wrkConns {
		if err != nil {
			for _, t := range l.abTransports("smc-fallback/server") {
				l.Print(&perf.Row{Group: "wrk", Scenario: "wrk-server", Conns: n, Transport: t, Unavailable: "wrk not installed (apt-get install wrk)"})
			}
			continue
		}
		var a, b, aa abMeasure
		measure := func(m *abMeasure, addr string) func() error {
			return func() error {
				if _, err := l.ServerStats(true); err != nil {
					return err
				}
				s0, err := l.ServerStats(false)
				if err != nil {
					return err
				}
				res, err := runWrkOnce(ctx, l.cg, wrk, "http://"+addr+"/", n, l.o.wrkDuration)
				if err != nil {
					m.err = err
					m.perRound, m.perRoundCPU = append(m.perRound, 0), append(m.perRoundCPU, 0)
					return nil
				}
				s1, err := l.ServerStats(false)
				if err != nil {
					return err
				}
				m.rate = append(m.rate, res.rate)
				m.perRound = append(m.perRound, res.rate)
				m.errors += res.errors
				cpu := 0.0
				if res.requests > 0 {
					m.ccpu = append(m.ccpu, float64(res.cpu.Microseconds())/float64(res.requests))
					m.scpu = append(m.scpu, float64((s1.CPUNanos-s0.CPUNanos)/1e3)/float64(res.requests))
					cpu = m.ccpu[len(m.ccpu)-1] + m.scpu[len(m.scpu)-1]
				}
				m.perRoundCPU = append(m.perRoundCPU, cpu)
				if m.states == nil {
					m.states = map[string]int{}
				}
				for k, v := range s1.States["http-smc"] {
					m.states[k] += v
				}
				return nil
			}
		}
		fns := []func() error{measure(&a, l.Info().HTTPTCP), measure(&b, l.Info().HTTPSMC)}
		if l.o.wrkControl {
			fns = append(fns, measure(&aa, l.Info().HTTPControl))
		}
		if err := abRounds(ctx, l.o.wrkRounds, fns...); err != nil {
			return err
		}
		ra, rb := a.row("wrk-server", n, "tcp"), b.row("wrk-server", n, "smc-fallback/server")
		rb.ServerMode = perf.JoinStates(b.states)
		rb.Mode = rb.ServerMode
		var control *perf.Row
		if l.o.wrkControl {
			control = aa.row("wrk-server", n, "tcp-control")
		}
		l.finishAB(ra, rb, control)
	}
	return nil
}

type wrkResult struct {
	rate     float64
	requests int64
	errors   int64
	cpu      time.Duration
}

var (
	wrkRate     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrkOnce runs wrk with n connections over two threads and parses its summary.
func runWrkOnce(ctx context.Context, cg *perf.Cgroup, wrk, url string, n int, d time.Duration) (wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, wrk, "-t2", "-c"+strconv.Itoa(n), "-d"+strconv.Itoa(secs)+"s",
		"-H", "Connection: close", url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	attr, done := cg.PlainPeerAttr(false)
	cmd.SysProcAttr = attr
	err := cmd.Start()
	done()
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("smc: lab: wrk: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return parseWrk(out.String(), cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
}

// parseWrk reads wrk's summary: the request rate, the request count and the
// errors (socket errors plus non-2xx responses).
func parseWrk(out string, cpu time.Duration) (wrkResult, error) {
	m := wrkRate.FindStringSubmatch(out)
	if m == nil {
		return wrkResult{}, fmt.Errorf("smc: lab: no rate in wrk's output: %q", out)
	}
	res := wrkResult{cpu: cpu}
	res.rate, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		res.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			v, _ := strconv.ParseInt(s, 10, 64)
			res.errors += v
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		v, _ := strconv.ParseInt(m[1], 10, 64)
		res.errors += v
	}
	return res, nil
}

func (l *lab) runNginxClient(ctx context.Context) error {
	ngx, err := startNginx(ctx, l.cg)
	if err != nil {
		for _, n := range l.o.wrkConns {
			for _, t := range l.abTransports("smc-fallback/client") {
				l.Print(&perf.Row{Group: "wrk", Scenario: "nginx-client", Conns: n, Transport: t, Unavailable: err.Error()})
			}
		}
		return nil
	}
	defer ngx.stop()
	nd := net.Dialer{Timeout: 10 * time.Second}
	sd := smc.Dialer{Timeout: 10 * time.Second}
	for _, n := range l.o.wrkConns {
		var a, b, aa abMeasure
		measure := func(m *abMeasure, dial func(ctx context.Context, network, addr string) (net.Conn, error), isSMC bool) func() error {
			return func() error {
				cpu0 := perf.ProcessCPU()
				ngx0, ngxErr := perf.PidCPU(ngx.cmd.Process.Pid)
				res := httpLoop(ctx, dial, ngx.addr, n, l.o.nginxDur, isSMC)
				cpu := perf.ProcessCPU() - cpu0
				ngx1, ngxErr1 := perf.PidCPU(ngx.cmd.Process.Pid)
				m.errors += res.Errors
				if res.Err != nil {
					m.err = res.Err
					m.perRound, m.perRoundCPU = append(m.perRound, 0), append(m.perRoundCPU, 0)
					return nil
				}
				m.rate = append(m.rate, float64(res.Ops)/res.Elapsed.Seconds())
				m.perRound = append(m.perRound, m.rate[len(m.rate)-1])
				m.ccpu = append(m.ccpu, float64(cpu.Microseconds())/float64(res.Ops))
				// The ratio is the client's alone: the fallback under test is there.
				m.perRoundCPU = append(m.perRoundCPU, m.ccpu[len(m.ccpu)-1])
				if ngxErr == nil && ngxErr1 == nil {
					m.scpu = append(m.scpu, float64((ngx1-ngx0).Microseconds())/float64(res.Ops))
				}
				if m.states == nil {
					m.states = map[string]int{}
				}
				for k, v := range res.ClientStates {
					m.states[k] += v
				}
				return nil
			}
		}
		fns := []func() error{measure(&a, nd.DialContext, false), measure(&b, sd.DialContext, true)}
		if l.o.wrkControl {
			fns = append(fns, measure(&aa, nd.DialContext, false))
		}
		if err := abRounds(ctx, l.o.wrkRounds, fns...); err != nil {
			return err
		}
		ra, rb := a.row("nginx-client", n, "tcp"), b.row("nginx-client", n, "smc-fallback/client")
		rb.ClientMode = perf.JoinStates(b.states)
		rb.Mode = rb.ClientMode
		var control *perf.Row
		if l.o.wrkControl {
			control = aa.row("nginx-client", n, "tcp-control")
		}
		l.finishAB(ra, rb, control)
	}
	return nil
}

// httpRequest is the short HTTP/1.1 request of the nginx-client scenario.
const httpRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

// httpLoop runs n workers, each repeatedly connecting, sending one request with
// Connection: close and reading the response to EOF, for d.
func httpLoop(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, n int, d time.Duration, isSMC bool) perf.CellResult {
	var (
		ops, errs atomic.Int64
		wg        sync.WaitGroup
		lastErr   atomic.Value
	)
	sampler := perf.NewStateSampler()
	t0 := time.Now()
	end := t0.Add(d)
	for range n {
		wg.Go(func() {
			buf := make([]byte, 4096)
			var done int64
			for time.Now().Before(end) && ctx.Err() == nil {
				if err := httpOnce(ctx, dial, addr, buf, sampler, isSMC); err != nil {
					errs.Add(1)
					lastErr.Store(err)
					continue
				}
				done++
			}
			ops.Add(done)
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if ops.Load() == 0 {
		err, _ := lastErr.Load().(error)
		if err == nil {
			err = errors.New("smc: lab: no request completed")
		}
		return perf.CellResult{Err: err, Errors: errs.Load()}
	}
	return perf.CellResult{Ops: ops.Load(), Elapsed: elapsed, Errors: errs.Load(), ClientStates: sampler.Take(false)}
}

func httpOnce(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, buf []byte, sampler *perf.StateSampler, isSMC bool) error {
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if isSMC {
		sampler.Sample(conn)
	}
	if _, err := io.WriteString(conn, httpRequest); err != nil {
		return err
	}
	n, total := 0, 0
	for {
		m, err := conn.Read(buf[n:])
		n += m
		total += m
		if n == len(buf) {
			n = 12 // keep the status line's head for the check below
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if total < 12 || string(buf[:12]) != "HTTP/1.1 200" {
		return fmt.Errorf("smc: lab: unexpected response %q", buf[:min(n, 40)])
	}
	return nil
}

// nginxProc is nginx running on a loopback port with a generated configuration.
type nginxProc struct {
	cmd  *exec.Cmd
	dir  string
	addr string
	done chan struct{}
}

const nginxConf = `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log error;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path {{dir}}/body;
	proxy_temp_path {{dir}}/proxy;
	fastcgi_temp_path {{dir}}/fastcgi;
	uwsgi_temp_path {{dir}}/uwsgi;
	scgi_temp_path {{dir}}/scgi;
	server {
		listen {{addr}} backlog=4096;
		location / { return 200 "hello\n"; }
	}
}
`

// startNginx starts nginx as a child process serving a fixed body on a free
// loopback port, and waits until it accepts connections.
func startNginx(ctx context.Context, cg *perf.Cgroup) (*nginxProc, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return nil, errors.New("nginx not installed (apt-get install nginx)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "smc-perf-nginx-")
	if err != nil {
		return nil, err
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{addr}}", addr).Replace(nginxConf)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	attr, done := cg.PlainPeerAttr(true)
	cmd.SysProcAttr = attr
	err = cmd.Start()
	done()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	p := &nginxProc{cmd: cmd, dir: dir, addr: addr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("nginx exited: %s", strings.TrimSpace(out.String()))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("nginx did not accept on %s: %s", addr, strings.TrimSpace(out.String()))
		}
	}
}

func (p *nginxProc) stop() {
	p.cmd.Process.Kill()
	<-p.done
	os.RemoveAll(p.dir)
}
