package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smc-go/smc"
	"golang.org/x/sys/unix"
)

// The data protocol: every benchmark connection starts with a 16-byte header,
// "SMCP", an operation, three reserved bytes, and two big-endian uint32 sizes.
//
// opEcho: the server reads req bytes and answers resp bytes, until EOF.
// opSink: the server reads until EOF, then writes the byte count (uint64) and closes.
const (
	perfHeaderLen = 16
	opEcho        = 1
	opSink        = 2
	perfMaxSize   = 16 << 20
	// perfSamples is how many connections per listener and measurement have their
	// state recorded; sampling keeps smc.State's cost out of the figures.
	perfSamples = 64
)

func perfHeader(b []byte, op byte, req, resp int) []byte {
	b = append(b, 'S', 'M', 'C', 'P', op, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(req))
	return binary.BigEndian.AppendUint32(b, uint32(resp))
}

// perfInfo is the server's answer to "info": where its listeners are.
type perfInfo struct {
	PID     int    `json:"pid"`
	TCP     string `json:"tcp"`      // net.Listen
	Unix    string `json:"unix"`     // net.Listen("unix")
	SMC     string `json:"smc"`      // smc.Listen
	HTTPTCP string `json:"http_tcp"` // Go HTTP server on net.Listen
	HTTPSMC string `json:"http_smc"` // Go HTTP server on smc.Listen
	// HTTPControl is a second Go HTTP server on net.Listen, the A/A control's
	// twin of HTTPTCP (its own port, so its TIME_WAIT sockets are its own).
	HTTPControl string `json:"http_control"`
	Signalling  string `json:"signalling"`
	Cgroup      string `json:"cgroup"`
}

// perfStats is the server's answer to "stats": its CPU time so far and the
// states of the connections sampled on each listener since the last reset.
type perfStats struct {
	CPUNanos int64                     `json:"cpu_ns"`
	States   map[string]map[string]int `json:"states"`
}

type perfRequest struct {
	Cmd   string `json:"cmd"` // "info", "stats", "quit"
	Reset bool   `json:"reset,omitempty"`
}

// stateSampler records the states of the first perfSamples connections after
// each reset.
type stateSampler struct {
	left   atomic.Int32
	mu     sync.Mutex
	states map[string]int
}

func (s *stateSampler) sample(c net.Conn) {
	if s.left.Add(-1) < 0 {
		return
	}
	st := stateString(smc.State(c))
	s.mu.Lock()
	if s.states == nil {
		s.states = map[string]int{}
	}
	s.states[st]++
	s.mu.Unlock()
}

func (s *stateSampler) take(reset bool) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := maps.Clone(s.states) // the caller encodes it while connections keep being sampled
	if reset {
		s.states = nil
		s.left.Store(perfSamples)
	}
	return m
}

// sampledListener samples the states of the connections it accepts.
type sampledListener struct {
	net.Listener
	s *stateSampler
}

func (l sampledListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.sample(c)
	}
	return c, err
}

type perfServer struct {
	info     perfInfo
	dir      string
	control  net.Listener
	data     map[string]net.Listener
	https    []*http.Server
	samplers map[string]*stateSampler
	quit     chan struct{}
	quitOnce sync.Once
}

// runPerfServer is "smc perf server": it serves until told to quit (or, with
// --exit-on-stdin, until its standard input closes) and prints its control address
// as a JSON line on standard output.
func runPerfServer(args []string) error {
	fs := flag.NewFlagSet("perf server", flag.ContinueOnError)
	control := fs.String("control", "127.0.0.1:0", "address of the control listener")
	host := fs.String("host", "127.0.0.1", "address the benchmark listeners bind to")
	exitOnStdin := fs.Bool("exit-on-stdin", false, "exit when standard input reaches EOF (used by the local mode)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cg, cgNote, err := enterPerfCgroup()
	if err != nil {
		return err
	}
	defer cg.leave()
	s, err := newPerfServer(*host, *control, cgNote)
	if err != nil {
		return err
	}
	defer s.close()
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"control": s.control.Addr().String()}); err != nil {
		return fmt.Errorf("smc: perf server: %w", err)
	}
	if *exitOnStdin {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			s.stop()
		}()
	}
	// An interrupt ends the server through the deferred clean-up, which moves the
	// process out of its child cgroup and removes it.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	select {
	case <-s.quit:
	case <-ctx.Done():
	}
	return nil
}

func newPerfServer(host, control, cgNote string) (s *perfServer, err error) {
	s = &perfServer{data: map[string]net.Listener{}, samplers: map[string]*stateSampler{}, quit: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "smc-perf-"); err != nil {
		return nil, fmt.Errorf("smc: perf server: %w", err)
	}
	hostPort := net.JoinHostPort(host, "0")
	listen := map[string]func() (net.Listener, error){
		"tcp":      func() (net.Listener, error) { return net.Listen("tcp", hostPort) },
		"unix":     func() (net.Listener, error) { return net.Listen("unix", filepath.Join(s.dir, "perf.sock")) },
		"smc":      func() (net.Listener, error) { return smc.Listen("tcp", hostPort) },
		"http-tcp": func() (net.Listener, error) { return net.Listen("tcp", hostPort) },
		"http-smc": func() (net.Listener, error) { return smc.Listen("tcp", hostPort) },
		"http-ctl": func() (net.Listener, error) { return net.Listen("tcp", hostPort) },
	}
	for _, name := range []string{"tcp", "unix", "smc", "http-tcp", "http-smc", "http-ctl"} {
		ln, err := listen[name]()
		if err != nil {
			return nil, fmt.Errorf("smc: perf server: listening for %s: %w", name, err)
		}
		s.data[name] = ln
		sm := &stateSampler{}
		sm.left.Store(perfSamples)
		s.samplers[name] = sm
	}
	if s.control, err = net.Listen("tcp", control); err != nil {
		return nil, fmt.Errorf("smc: perf server: control listener: %w", err)
	}
	sigNote := "available"
	if err := smc.SignallingError(); err != nil {
		sigNote = "unavailable: " + err.Error()
	}
	s.info = perfInfo{
		PID: os.Getpid(), TCP: s.data["tcp"].Addr().String(), Unix: s.data["unix"].Addr().String(),
		SMC: s.data["smc"].Addr().String(), HTTPTCP: s.data["http-tcp"].Addr().String(),
		HTTPSMC: s.data["http-smc"].Addr().String(), HTTPControl: s.data["http-ctl"].Addr().String(),
		Signalling: sigNote, Cgroup: cgNote,
	}
	for _, name := range []string{"tcp", "unix", "smc"} {
		go s.serveData(s.data[name], s.samplers[name])
	}
	hello := []byte("hello\n")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	for _, name := range []string{"http-tcp", "http-smc", "http-ctl"} {
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		s.https = append(s.https, hs)
		go hs.Serve(sampledListener{s.data[name], s.samplers[name]})
	}
	go s.serveControl()
	return s, nil
}

func (s *perfServer) stop() { s.quitOnce.Do(func() { close(s.quit) }) }

func (s *perfServer) close() {
	if s.control != nil {
		s.control.Close()
	}
	for _, hs := range s.https {
		hs.Close()
	}
	for _, ln := range s.data {
		ln.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func (s *perfServer) serveControl() {
	for {
		c, err := s.control.Accept()
		if err != nil {
			return
		}
		go s.handleControl(c)
	}
}

func (s *perfServer) handleControl(c net.Conn) {
	defer c.Close()
	dec, enc := json.NewDecoder(bufio.NewReader(c)), json.NewEncoder(c)
	for {
		var req perfRequest
		if err := dec.Decode(&req); err != nil {
			return
		}
		var resp any
		switch req.Cmd {
		case "info":
			resp = s.info
		case "stats":
			st := perfStats{CPUNanos: processCPU().Nanoseconds(), States: map[string]map[string]int{}}
			for name, sm := range s.samplers {
				if m := sm.take(req.Reset); m != nil {
					st.States[name] = m
				}
			}
			resp = st
		case "quit":
			s.stop()
			resp = map[string]string{}
		default:
			resp = map[string]string{"error": "unknown command " + req.Cmd}
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// serveData accepts benchmark connections until ln is closed.
func (s *perfServer) serveData(ln net.Listener, sm *stateSampler) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. EMFILE: let connections drain
			continue
		}
		go handleData(c, sm)
	}
}

// handleData runs the server side of one benchmark connection.
func handleData(c net.Conn, sm *stateSampler) {
	defer c.Close()
	var h [perfHeaderLen]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || string(h[:4]) != "SMCP" {
		return
	}
	// Sampled after the first Read, so that an *smc.Conn has finished its handshake.
	sm.sample(c)
	req, resp := int(binary.BigEndian.Uint32(h[8:])), int(binary.BigEndian.Uint32(h[12:]))
	switch h[4] {
	case opEcho:
		if req < 1 || req > perfMaxSize || resp < 1 || resp > perfMaxSize {
			return
		}
		buf := make([]byte, max(req, resp))
		for {
			if _, err := io.ReadFull(c, buf[:req]); err != nil {
				return
			}
			if _, err := c.Write(buf[:resp]); err != nil {
				return
			}
		}
	case opSink:
		buf := make([]byte, 1<<20)
		var total uint64
		for {
			n, err := c.Read(buf)
			total += uint64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		c.Write(binary.BigEndian.AppendUint64(nil, total))
	}
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perfServerProc is the server child process of the local mode.
type perfServerProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	control string
}

// startPerfServer starts "smc perf server" as a child process of this executable
// (which inherits this process's cgroup) and waits for its control address.
func startPerfServer() (*perfServerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "perf", "server", "--exit-on-stdin")
	cmd.Stderr = os.Stderr
	// No parent-death signal: it follows the starting thread, not the process. The
	// server exits when its stdin closes, which happens however this process ends.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("smc: perf: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("smc: perf: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("smc: perf: starting the server process: %w", err)
	}
	p := &perfServerProc{cmd: cmd, stdin: stdin}
	var hello struct{ Control string }
	if err := json.NewDecoder(stdout).Decode(&hello); err != nil || hello.Control == "" {
		p.stop()
		return nil, fmt.Errorf("smc: perf: the server process did not report its address: %v", err)
	}
	p.control = hello.Control
	go io.Copy(io.Discard, stdout)
	return p, nil
}

// stop ends the server process: closing its stdin asks it to exit; it is killed if
// it has not within a few seconds.
func (p *perfServerProc) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// perfControl is the client's control connection to the server.
type perfControl struct {
	c   net.Conn
	dec *json.Decoder
	enc *json.Encoder
}

func dialPerfControl(ctx context.Context, addr string) (*perfControl, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smc: perf: control connection: %w", err)
	}
	return &perfControl{c: c, dec: json.NewDecoder(bufio.NewReader(c)), enc: json.NewEncoder(c)}, nil
}

func (pc *perfControl) call(req perfRequest, resp any) error {
	pc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := pc.enc.Encode(req); err != nil {
		return fmt.Errorf("smc: perf: control: %w", err)
	}
	if err := pc.dec.Decode(resp); err != nil {
		return fmt.Errorf("smc: perf: control: %w", err)
	}
	return nil
}

func (pc *perfControl) stats(reset bool) (perfStats, error) {
	var st perfStats
	err := pc.call(perfRequest{Cmd: "stats", Reset: reset}, &st)
	return st, err
}
