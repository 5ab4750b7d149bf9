package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/smc-go/smc/internal/perf"
)

// The shmipc-go comparison: shmipc-go's own ping-pong shape (shmipcStreams
// parallel streams, each a size-byte request and a size-byte response, payloads
// copied), measured by bench/shmipc (a module of its own, so that shmipc-go is
// never a dependency of smc) in the same rounds as the same shape over tcp, unix
// and smc, each connection standing for one stream.

// shmipcStreams is GOMAXPROCS of shmipc-go's RunParallel on this project's 2-vCPU
// machines.
const shmipcStreams = 2

func (l *lab) runShmipc(ctx context.Context) error {
	base := l.Transports() // tcp, unix, smc as selected
	bench, err := startShmipcBench(ctx, l.o.shmipcDir)
	if err != nil {
		for _, size := range l.o.shmipcSizes {
			l.Print(&perf.Row{Group: "shmipc", Scenario: "shmipc-pingpong", Size: size, Conns: shmipcStreams, Transport: "shmipc-go", Unavailable: err.Error()})
		}
		return nil
	}
	defer bench.stop()
	shm := &perf.Transport{Name: "shmipc-go"}
	ts := append([]*perf.Transport{shm}, base...)
	for _, size := range l.o.shmipcSizes {
		// Any scenario but the core's is request/response over Conns connections.
		sh := perf.Shape{Scenario: "shmipc-pingpong", Size: size, Conns: shmipcStreams}
		results := make([][]perf.CellResult, len(ts))
		for r := 0; r < l.o.perf.Rounds; r++ {
			for i := range ts {
				k := (i + r) % len(ts)
				if err := ctx.Err(); err != nil {
					return err
				}
				if ts[k] == shm {
					results[k] = append(results[k], bench.measure(ctx, size, l.o.perf.Duration))
				} else {
					results[k] = append(results[k], l.Cell(ctx, sh, ts[k]))
				}
			}
		}
		rows := make([]*perf.Row, len(ts))
		for k, t := range ts {
			rows[k] = perf.CoreRow("shmipc", sh, t, results[k])
		}
		perf.SetVsTCP(rows)
		for _, r := range rows[1:] {
			if r.Error == "" && rows[0].Error == "" {
				r.VsShmipc = perf.PairedRatio(r.PerRoundMain(), rows[0].PerRoundMain(), false)
			}
		}
		l.Print(rows...)
	}
	return nil
}

// shmipcBench is the built bench/shmipc program with its server process running.
type shmipcBench struct {
	bin, dir, sock string
	server         *exec.Cmd
	stdin          io.WriteCloser
	stdout         *bufio.Reader
}

// startShmipcBench builds bench/shmipc in dir with the go command and starts its
// server. The error says why the comparison is unavailable.
func startShmipcBench(ctx context.Context, dir string) (*shmipcBench, error) {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return nil, fmt.Errorf("no %s/go.mod (run from the repository root or pass --shmipc-dir)", dir)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, errors.New("the go command is not on PATH (needed to build bench/shmipc)")
	}
	tmp, err := os.MkdirTemp("", "smc-perf-shmipc-")
	if err != nil {
		return nil, err
	}
	b := &shmipcBench{bin: filepath.Join(tmp, "shmipc-bench"), dir: tmp, sock: filepath.Join(tmp, "shmipc.sock")}
	build := exec.CommandContext(ctx, goBin, "build", "-o", b.bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return nil, fmt.Errorf("building bench/shmipc: %v: %s", err, lines[len(lines)-1])
	}
	b.server = exec.Command(b.bin, "server", "-sock", b.sock)
	b.server.Stderr = os.Stderr
	if b.stdin, err = b.server.StdinPipe(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	out, err := b.server.StdoutPipe()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := b.server.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("starting the shmipc-go server: %w", err)
	}
	b.stdout = bufio.NewReader(out)
	if line, err := b.stdout.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		b.stop()
		return nil, fmt.Errorf("the shmipc-go server did not start: %q %v", line, err)
	}
	return b, nil
}

// serverCPU asks the server process for its CPU time so far.
func (b *shmipcBench) serverCPU() (time.Duration, error) {
	if _, err := io.WriteString(b.stdin, "cpu\n"); err != nil {
		return 0, err
	}
	line, err := b.stdout.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	return time.Duration(n), err
}

// measure runs one shmipc-go client measurement of size-byte ping-pongs for d.
// The server's CPU is read when the client says its clock starts and after it
// reports, so that session set-up is left out as it is for the client.
//
// shmipc-go's client has been seen to hang, so a client that is not done
// shmipcGrace after its duration is killed and the cell reports an error.
func (b *shmipcBench) measure(ctx context.Context, size int, d time.Duration) perf.CellResult {
	ctx, cancel := context.WithTimeout(ctx, d+shmipcGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, "client", "-sock", b.sock, "-size", strconv.Itoa(size),
		"-streams", strconv.Itoa(shmipcStreams), "-duration", d.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return perf.CellResult{Err: err}
	}
	if err := cmd.Start(); err != nil {
		return perf.CellResult{Err: fmt.Errorf("smc: lab: shmipc-go client: %w", err)}
	}
	out := bufio.NewReader(pipe)
	fail := func(err error) perf.CellResult {
		cmd.Process.Kill()
		cmd.Wait()
		return perf.CellResult{Err: fmt.Errorf("smc: lab: shmipc-go: %v: %s", err, strings.TrimSpace(stderr.String()))}
	}
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "start" {
		return fail(fmt.Errorf("client said %q, %v", line, err))
	}
	s0, err := b.serverCPU()
	if err != nil {
		return fail(err)
	}
	line, err := out.ReadString('\n')
	if err != nil {
		return fail(err)
	}
	s1, err := b.serverCPU()
	if err != nil {
		return fail(err)
	}
	if err := cmd.Wait(); err != nil {
		return fail(err)
	}
	var res struct {
		Ops       int64 `json:"ops"`
		ElapsedNs int64 `json:"elapsed_ns"`
		CPUNs     int64 `json:"cpu_ns"`
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return perf.CellResult{Err: fmt.Errorf("smc: lab: shmipc-go client output %q: %w", line, err)}
	}
	return perf.CellResult{Ops: res.Ops, Bytes: res.Ops * int64(size), Elapsed: time.Duration(res.ElapsedNs),
		ClientCPU: time.Duration(res.CPUNs), ServerCPU: s1 - s0}
}

// shmipcGrace is how long a shmipc-go client may run past its duration.
var shmipcGrace = 30 * time.Second

func (b *shmipcBench) stop() {
	b.stdin.Close()
	done := make(chan struct{})
	go func() { b.server.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		b.server.Process.Kill()
		<-done
	}
	os.RemoveAll(b.dir)
}
