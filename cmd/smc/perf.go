package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smc-go/smc/internal/perf"
)

func init() {
	register("perf", "measure smc side by side with TCP and a Unix socket on this host", runPerf)
}

const perfUsage = `usage: smc perf [flags]                  run server and client here and print a table
       smc perf server [--control=addr]  serve the benchmarks (prints its control address)
       smc perf client --control=addr    run the benchmarks against a server on this host

Transports: tcp (net), unix (net, unix socket), smc (smc.Dial <-> smc.Listen),
smc-fallback (two rows: smc client -> net server, net client -> smc server).
Scenarios: pingpong (64 B..64 KiB round trips), bulk (64 KiB and 1 MiB writes),
rr (1 KiB request/response over 1 and 16 connections), short (connect, one 1 KiB
request/response, close), setup (connections one after the other: time and CPU
of each side until the client can write and the server can read), idle (CPU of
both processes while an open connection is idle, after one round trip).
Measured only when named (or with "all"), as they take longer: idlemem (memory
per open idle connection of both processes, after 64 B and after a full lap of
the default ring each way, --idle-conns of them), many (1 KiB
request/response over --many-conns concurrent connections).

As root in the root cgroup v2, smc perf moves itself into a child cgroup for the
run (the library attaches its signalling only there) and removes it on exit.
With idlemem, as root, client and server also run in a memory cgroup of their own
(cgroup v1's memory controller, TCP memory accounted), removed on exit.
The comparisons with wrk and nginx and with shmipc-go are in the benchmark lab:
go run ./bench/lab -h (from the repository).

flags:
`

const bufferSizeUsage = "smc.Config.BufferSize of the smc transports, in bytes: 0 (the library's default) or a power of two from 16 KiB to 512 MiB; client and server must agree"

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
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), perfUsage)
		fs.PrintDefaults()
	}
	scenarios := fs.String("scenario", "default", "comma-separated scenarios: "+strings.Join(perf.Scenarios, ",")+", default ("+strings.Join(perf.DefaultScenarios, ",")+") or all")
	transports := fs.String("transport", "all", "comma-separated transports: "+strings.Join(perf.Transports, ",")+" or all")
	duration := fs.Duration("duration", 250*time.Millisecond, "time per transport, scenario and round")
	rounds := fs.Int("rounds", 3, "round-robin rounds; each figure is the median over rounds")
	shortConc := fs.Int("short-concurrency", 32, "concurrent clients in the short-connection scenario")
	idleConns := fs.Int("idle-conns", 1000, "connections the idlemem scenario holds open")
	manyConns := fs.Int("many-conns", 1000, "concurrent connections of the many scenario")
	bufferSize := fs.Int("buffer-size", 0, bufferSizeUsage)
	asJSON := fs.Bool("json", false, "print one JSON object per result row instead of a table")
	jsonOut := fs.String("json-out", "", "also write one JSON object per result row to this file")
	quick := fs.Bool("quick", false, "a tiny run of the selected scenarios that checks the harness works (figures meaningless)")
	control := fs.String("control", "", "client mode: control address of an \"smc perf server\"")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the client to `FILE`.client and, in the local mode, of the server to FILE.server")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "smc: perf: unexpected argument %q", fs.Arg(0))
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile + ".client")
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	o := perf.Options{
		Duration: *duration, Rounds: *rounds, ShortConc: *shortConc,
		IdleConns: *idleConns, ManyConns: *manyConns, BufferSize: *bufferSize,
		JSON: *asJSON, JSONOut: *jsonOut, Out: stdout,
	}
	var err error
	// "core" named these scenarios when smc perf also ran the lab's.
	aliases := map[string][]string{"default": perf.DefaultScenarios, "core": perf.DefaultScenarios}
	if o.Scenarios, err = perf.PickList(*scenarios, perf.Scenarios, aliases); err != nil {
		for _, lab := range []string{"wrk", "shmipc"} {
			if slices.Contains(strings.Split(*scenarios, ","), lab) {
				err = fmt.Errorf("%s moved to the benchmark lab: go run ./bench/lab --scenario=%s", lab, lab)
			}
		}
		return usageErrorf(fs, "smc: perf: --scenario: %w", err)
	}
	if o.Transports, err = perf.PickList(*transports, perf.Transports, nil); err != nil {
		return usageErrorf(fs, "smc: perf: --transport: %w", err)
	}
	if *quick {
		quick := perf.QuickOptions(o)
		// Connection counts given explicitly stay, so that a quick run can check them.
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "idle-conns":
				quick.IdleConns = o.IdleConns
			case "many-conns":
				quick.ManyConns = o.ManyConns
			}
		})
		o = quick
	}
	if err := o.Check(); err != nil {
		return usageErrorf(fs, "%w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if client {
		if *control == "" {
			return usageErrorf(fs, "smc: perf: client mode needs --control=addr of an \"smc perf server\"")
		}
		cg, cgNote, err := perf.EnterCgroup()
		if err != nil {
			return err
		}
		defer func() {
			if err := cg.Leave(); err != nil {
				fmt.Fprintln(stderr, err)
			}
		}()
		return perf.RunClient(ctx, *control, o, cgNote)
	}
	serverArgs := []string{"perf", "server", "--exit-on-stdin", "--buffer-size=" + strconv.Itoa(*bufferSize)}
	if *cpuProfile != "" {
		serverArgs = append(serverArgs, "--cpuprofile="+*cpuProfile+".server")
	}
	return perf.Run(ctx, o, serverArgs...)
}

// startCPUProfile starts profiling this process's CPU into the file name; the
// function it returns stops and writes the profile.
func startCPUProfile(name string) (func(), error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("smc: perf: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("smc: perf: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(stderr, err)
		}
	}, nil
}

// runPerfServer is "smc perf server".
func runPerfServer(args []string) error {
	fs := flag.NewFlagSet("perf server", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: smc perf server [--control=addr] [--host=addr]

Serves the benchmarks of smc perf until told to quit or interrupted, and prints its
control address as a JSON line on standard output; "smc perf client" runs them.

flags:
`)
		fs.PrintDefaults()
	}
	control := fs.String("control", "127.0.0.1:0", "address of the control listener")
	host := fs.String("host", "127.0.0.1", "address the benchmark listeners bind to")
	exitOnStdin := fs.Bool("exit-on-stdin", false, "exit when standard input reaches EOF (used by the local mode)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the server to `FILE`")
	bufferSize := fs.Int("buffer-size", 0, bufferSizeUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "smc: perf server: unexpected argument %q", fs.Arg(0))
	}
	if err := perf.CheckBufferSize(*bufferSize); err != nil {
		return usageErrorf(fs, "%w", err)
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	// An interrupt ends the server through Serve's clean-up, which moves the
	// process out of its child cgroup and removes it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return perf.Serve(ctx, perf.ServerOptions{Control: *control, Host: *host, ExitOnStdin: *exitOnStdin, BufferSize: *bufferSize})
}
