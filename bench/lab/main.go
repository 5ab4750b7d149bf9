// Command lab is the benchmark lab beside smc perf: the comparisons that need a
// third-party program, kept out of the smc command. It measures on the engine of
// smc perf (internal/perf), against its server with Go HTTP listeners added:
//
//   - wrk: the IPPROTO_SMC cover letter's short-connection benchmark, for fallback.
//     wrk -H 'Connection: close' against a Go HTTP server on net.Listen and on
//     smc.Listen (wrk never offers SMC: fallback in the server), and a Go client
//     loop with net.Dialer and smc.Dialer against nginx (fallback in the client).
//     Needs the Debian packages wrk and nginx.
//   - shmipc: cloudwego/shmipc-go's ping-pong shape against the same shape over
//     tcp, unix and smc. The shmipc-go side is the module in bench/shmipc, built
//     with the go command, so that shmipc-go never becomes a dependency of smc.
//
// Run it from the repository root as root, as smc perf is run:
//
//	go run ./bench/lab                   # both comparisons
//	go run ./bench/lab --scenario=wrk --wrk-rounds=7 --wrk-control
//	go run ./bench/lab --quick           # a harness check (CI); figures meaningless
//
// bench/run.sh and bench/fallback.sh record its runs under bench/results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/smc-go/smc/internal/perf"
)

// The lab's scenarios, in table order.
var labScenarios = []string{"wrk", "shmipc"}

// options is what the flags select.
type options struct {
	perf        perf.Options // the shmipc rows' cells, printing
	scenarios   []string
	wrkDuration time.Duration
	nginxDur    time.Duration // per nginx-client measurement
	wrkSides    []string      // "server" (wrk-server), "client" (nginx-client)
	wrkConns    []int
	wrkRounds   int
	wrkControl  bool
	shmipcDir   string
	shmipcSizes []int
}

const usage = `usage: go run ./bench/lab [flags]   (or a built lab binary)

Runs the lab's comparisons on this host and prints a table, as smc perf does.
Scenarios:
  wrk     the IPPROTO_SMC cover letter's short-connection benchmark, for fallback:
          wrk -> Go HTTP server on net.Listen vs smc.Listen (wrk-server), and a Go
          client with net.Dialer vs smc.Dialer -> nginx (nginx-client); short HTTP
          connections, A/B in balanced order (needs wrk and nginx)
  shmipc  cloudwego/shmipc-go ping-pong against the same shape over tcp, unix and
          smc, built from bench/shmipc with the go command

flags:
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "server" {
		exit(serve(os.Args[2:]))
	}
	exit(run(os.Args[1:]))
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve is "lab server", the server child process: smc perf's server with its
// HTTP listeners.
func serve(args []string) error {
	fs := flag.NewFlagSet("lab server", flag.ExitOnError)
	exitOnStdin := fs.Bool("exit-on-stdin", false, "exit when standard input reaches EOF")
	fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return perf.Serve(ctx, perf.ServerOptions{Control: "127.0.0.1:0", Host: "127.0.0.1", ExitOnStdin: *exitOnStdin, HTTP: true})
}

func run(args []string) error {
	fs := flag.NewFlagSet("lab", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	scenarios := fs.String("scenario", "all", "comma-separated scenarios: "+strings.Join(labScenarios, ",")+" or all")
	transports := fs.String("transport", "tcp,unix,smc", "transports the shmipc rows compare with: tcp,unix,smc")
	duration := fs.Duration("duration", 250*time.Millisecond, "time per shmipc cell and round")
	rounds := fs.Int("rounds", 3, "round-robin rounds of the shmipc rows; each figure is the median over rounds")
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
	quick := fs.Bool("quick", false, "a tiny run of everything that checks the lab works (figures meaningless)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("smc: lab: unexpected argument %q", fs.Arg(0))
	}
	o := options{
		perf:        perf.Options{Duration: *duration, Rounds: *rounds, ShortConc: 1, JSON: *asJSON, JSONOut: *jsonOut, Out: os.Stdout, Name: "bench/lab"},
		wrkDuration: *wrkDuration, nginxDur: *nginxDur, wrkRounds: *wrkRounds, wrkControl: *wrkControl, shmipcDir: *shmipcDir,
	}
	var err error
	if o.scenarios, err = perf.PickList(*scenarios, labScenarios, nil); err != nil {
		return fmt.Errorf("smc: lab: --scenario: %w", err)
	}
	if o.perf.Transports, err = perf.PickList(*transports, []string{"tcp", "unix", "smc"}, nil); err != nil {
		return fmt.Errorf("smc: lab: --transport: %w", err)
	}
	if o.wrkConns, err = perf.PositiveInts(*wrkConns); err != nil {
		return fmt.Errorf("smc: lab: --wrk-conns: %w", err)
	}
	if o.wrkSides, err = perf.PickList(*wrkSides, []string{"server", "client"}, nil); err != nil {
		return fmt.Errorf("smc: lab: --wrk-side: %w", err)
	}
	if o.shmipcSizes, err = perf.PositiveInts(*shmipcSizes); err != nil {
		return fmt.Errorf("smc: lab: --shmipc-sizes: %w", err)
	}
	if *quick {
		o.perf = perf.QuickOptions(o.perf)
		o.wrkDuration, o.nginxDur, o.wrkConns, o.wrkRounds = time.Second, 0, []int{128}, 1
		o.shmipcSizes = []int{64, 64 << 10}
	}
	if o.nginxDur == 0 {
		o.nginxDur = o.wrkDuration
	}
	if err := o.perf.Check(); err != nil {
		return err
	}
	if o.wrkRounds < 1 || o.wrkDuration <= 0 || o.nginxDur < 0 {
		return errors.New("smc: lab: --wrk-rounds, --wrk-duration and --nginx-duration must be positive")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// As in smc perf: into a child cgroup before any socket, so that the library can
	// attach its signalling; wrk and nginx are started outside it, as plain peers.
	cg, cgNote, err := perf.EnterCgroup()
	if err != nil {
		return err
	}
	defer func() {
		if err := cg.Leave(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	srv, err := perf.StartServer("server", "--exit-on-stdin")
	if err != nil {
		return err
	}
	defer srv.Stop()
	c, err := perf.NewClient(ctx, srv.Control, o.perf)
	if err != nil {
		return err
	}
	defer c.Close()
	l := &lab{Client: c, cg: cg, o: o}
	c.Header(cgNote, "cgroup (wrk, nginx: plain peers): "+cg.PlainPeerNote(),
		fmt.Sprintf("wrk: %d A/B rounds x %v per wrk cell, %v per nginx-client cell, arms in balanced order", o.wrkRounds, o.wrkDuration, o.nginxDur))
	if slices.Contains(o.scenarios, "wrk") {
		if err := l.runWrk(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(o.scenarios, "shmipc") {
		if err := l.runShmipc(ctx); err != nil {
			return err
		}
	}
	return c.Err(ctx)
}

// lab is one run of the lab against its server.
type lab struct {
	*perf.Client
	cg *perf.Cgroup // nil when this process did not make a child cgroup
	o  options
}
