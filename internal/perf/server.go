package perf

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smc-go/smc"
	"golang.org/x/sys/unix"
)

// The data protocol: every benchmark connection starts with a 16-byte header,
// "SMCP", an operation, three reserved bytes, and two big-endian uint32 sizes.
//
// opEcho: the server reads req bytes and answers resp bytes, until EOF.
// opSink: the server reads until EOF, then writes the byte count (uint64) and closes.
// opHold: the server counts the connection as held once it has read the header
// (for an *smc.Conn: once its handshake has ended and it can read), then waits,
// without reading, for the control command "release" (or its own end) and
// closes: a blocked Read would spend CPU of its own (an SMC-D Read spins before
// it parks) inside the set-up's measurement.
// opPass: the server reads req bytes and answers resp bytes once, through a small
// buffer, then reads until EOF: a connection that passed data and then idles,
// holding no buffer of the harness's.
const (
	headerLen = 16
	opEcho    = 1
	opSink    = 2
	opHold    = 3
	opPass    = 4
	maxSize   = 16 << 20
	// passChunk is the buffer opPass copies through, on both sides.
	passChunk = 16 << 10
	// samples is how many connections per listener and measurement have their
	// state recorded; sampling keeps smc.State's cost out of the figures.
	samples = 64
)

func header(b []byte, op byte, req, resp int) []byte {
	b = append(b, 'S', 'M', 'C', 'P', op, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(req))
	return binary.BigEndian.AppendUint32(b, uint32(resp))
}

// ServerInfo is the server's answer to "info": where its listeners are.
type ServerInfo struct {
	PID  int    `json:"pid"`
	TCP  string `json:"tcp"`  // net.Listen
	Unix string `json:"unix"` // net.Listen("unix")
	SMC  string `json:"smc"`  // smc.Listen
	// HTTPTCP, HTTPSMC and HTTPControl are Go HTTP servers answering "hello\n" to
	// every request, on net.Listen, on smc.Listen and on a second net.Listen (the
	// A/A control's twin of HTTPTCP: its own port, so its TIME_WAIT sockets are
	// its own); empty unless the server was started with HTTP listeners.
	HTTPTCP     string `json:"http_tcp,omitempty"`
	HTTPSMC     string `json:"http_smc,omitempty"`
	HTTPControl string `json:"http_control,omitempty"`
	Signalling  string `json:"signalling"`
	Cgroup      string `json:"cgroup"`
	// BufferSize is the smc.Config.BufferSize of the smc listeners (0: the
	// library's default); a client must use the same.
	BufferSize int `json:"buffer_size"`
}

// ServerStats is the server's answer to "stats": its CPU time so far and the
// states of the connections sampled on each listener ("tcp", "unix", "smc",
// "http-tcp", "http-smc", "http-ctl") since the last reset.
type ServerStats struct {
	CPUNanos int64                     `json:"cpu_ns"`
	States   map[string]map[string]int `json:"states"`
	// Held is how many opHold connections have had their header read and are
	// not closed yet; Open how many benchmark connections the server has not
	// closed yet.
	Held int64 `json:"held"`
	Open int64 `json:"open"`
	// Accepted counts the connections each listener accepted, and Counts is the
	// server side of smc.Stats as [SideCounts] flattens it: both only grow, so a
	// cell's figures are the difference of two answers.
	Accepted map[string]int64 `json:"accepted"`
	Counts   map[string]int64 `json:"counts"`
	// ShmInUse is the shared memory the server process holds now, as
	// smc.Stats reports it.
	ShmInUse int64 `json:"shm_in_use"`
}

// ServerMemory is the server's answer to "mem": the memory of its process
// after a garbage collection that returned free memory to the system.
type ServerMemory struct {
	Mem   Memory `json:"mem"`
	Error string `json:"error,omitempty"`
}

type request struct {
	Cmd   string `json:"cmd"` // "info", "stats", "mem", "release", "quit"
	Reset bool   `json:"reset,omitempty"`
}

// A StateSampler records the states (as [StateString] names them) of the first
// 64 connections after each reset.
type StateSampler struct {
	left   atomic.Int32
	mu     sync.Mutex
	states map[string]int
}

// NewStateSampler returns a sampler ready for its first 64 connections.
func NewStateSampler() *StateSampler {
	s := &StateSampler{}
	s.left.Store(samples)
	return s
}

// Sample records c's state, as smc.State reports it at that moment, if the
// sampler still takes samples: call it after an *smc.Conn's handshake.
func (s *StateSampler) Sample(c net.Conn) {
	if s.left.Add(-1) < 0 {
		return
	}
	st := StateString(smc.State(c))
	s.mu.Lock()
	if s.states == nil {
		s.states = map[string]int{}
	}
	s.states[st]++
	s.mu.Unlock()
}

// Take returns a copy of the states recorded; reset starts a new sample.
func (s *StateSampler) Take(reset bool) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := maps.Clone(s.states) // the caller encodes it while connections keep being sampled
	if reset {
		s.states = nil
		s.left.Store(samples)
	}
	return m
}

// sampledListener samples the states of the connections it accepts.
type sampledListener struct {
	net.Listener
	s *StateSampler
}

func (l sampledListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.Sample(c)
	}
	return c, err
}

// ServerOptions configures [Serve].
type ServerOptions struct {
	Control     string // address of the control listener, e.g. "127.0.0.1:0"
	Host        string // address the benchmark listeners bind to, e.g. "127.0.0.1"
	ExitOnStdin bool   // exit when standard input reaches EOF (the local mode's child)
	HTTP        bool   // also serve the HTTP listeners of [ServerInfo]
	// BufferSize is the smc.Config.BufferSize of the smc listeners: the ring they
	// offer; 0 means the library's default.
	BufferSize int
}

// Serve is the server mode of smc perf: it moves the process into a child cgroup
// when it must ([EnterCgroup]), prints its control address as a JSON line on
// standard output and serves until told to quit, until ctx ends or, with
// ExitOnStdin, until its standard input closes. On return it has moved the
// process out of its child cgroup and removed it.
func Serve(ctx context.Context, o ServerOptions) error {
	cg, cgNote, err := EnterCgroup()
	if err != nil {
		return err
	}
	defer cg.Leave()
	s, err := newServer(o, cgNote)
	if err != nil {
		return err
	}
	defer s.close()
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"control": s.control.Addr().String()}); err != nil {
		return fmt.Errorf("smc: perf server: %w", err)
	}
	if o.ExitOnStdin {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			s.stop()
		}()
	}
	select {
	case <-s.quit:
	case <-ctx.Done():
	}
	return nil
}

type server struct {
	info     ServerInfo
	held     atomic.Int64
	open     atomic.Int64
	accepted map[string]*atomic.Int64
	dir      string
	control  net.Listener
	data     map[string]net.Listener
	https    []*http.Server
	samplers map[string]*StateSampler
	quit     chan struct{}
	quitOnce sync.Once
	relMu    sync.Mutex
	rel      chan struct{} // closed by "release": the held connections close
}

func newServer(o ServerOptions, cgNote string) (s *server, err error) {
	s = &server{data: map[string]net.Listener{}, samplers: map[string]*StateSampler{}, accepted: map[string]*atomic.Int64{}, quit: make(chan struct{}), rel: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "smc-perf-"); err != nil {
		return nil, fmt.Errorf("smc: perf server: %w", err)
	}
	hostPort := net.JoinHostPort(o.Host, "0")
	smcListen := func() (net.Listener, error) {
		lc := smc.ListenConfig{Config: &smc.Config{BufferSize: o.BufferSize}}
		return lc.Listen(context.Background(), "tcp", hostPort)
	}
	listen := map[string]func() (net.Listener, error){
		"tcp":      func() (net.Listener, error) { return net.Listen("tcp", hostPort) },
		"unix":     func() (net.Listener, error) { return net.Listen("unix", filepath.Join(s.dir, "perf.sock")) },
		"smc":      smcListen,
		"http-tcp": func() (net.Listener, error) { return net.Listen("tcp", hostPort) },
		"http-smc": smcListen,
		"http-ctl": func() (net.Listener, error) { return net.Listen("tcp", hostPort) },
	}
	names := []string{"tcp", "unix", "smc"}
	httpNames := []string{"http-tcp", "http-smc", "http-ctl"}
	if o.HTTP {
		names = append(names, httpNames...)
	}
	for _, name := range names {
		ln, err := listen[name]()
		if err != nil {
			return nil, fmt.Errorf("smc: perf server: listening for %s: %w", name, err)
		}
		s.data[name] = ln
		s.samplers[name] = NewStateSampler()
		s.accepted[name] = new(atomic.Int64)
	}
	if s.control, err = net.Listen("tcp", o.Control); err != nil {
		return nil, fmt.Errorf("smc: perf server: control listener: %w", err)
	}
	sigNote := "available"
	if err := smc.SignallingError(); err != nil {
		sigNote = "unavailable: " + err.Error()
	}
	addr := func(name string) string {
		if ln := s.data[name]; ln != nil {
			return ln.Addr().String()
		}
		return ""
	}
	s.info = ServerInfo{
		PID: os.Getpid(), TCP: addr("tcp"), Unix: addr("unix"), SMC: addr("smc"),
		HTTPTCP: addr("http-tcp"), HTTPSMC: addr("http-smc"), HTTPControl: addr("http-ctl"),
		Signalling: sigNote, Cgroup: cgNote, BufferSize: o.BufferSize,
	}
	for _, name := range []string{"tcp", "unix", "smc"} {
		go s.serveData(s.data[name], s.samplers[name], s.accepted[name])
	}
	if o.HTTP {
		hello := []byte("hello\n")
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(hello)
		})
		for _, name := range httpNames {
			hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
			s.https = append(s.https, hs)
			go hs.Serve(sampledListener{s.data[name], s.samplers[name]})
		}
	}
	go s.serveControl()
	return s, nil
}

func (s *server) stop() { s.quitOnce.Do(func() { close(s.quit) }) }

func (s *server) close() {
	s.stop() // held connections end too
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

func (s *server) serveControl() {
	for {
		c, err := s.control.Accept()
		if err != nil {
			return
		}
		go s.handleControl(c)
	}
}

func (s *server) handleControl(c net.Conn) {
	defer c.Close()
	dec, enc := json.NewDecoder(bufio.NewReader(c)), json.NewEncoder(c)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return
		}
		var resp any
		switch req.Cmd {
		case "info":
			resp = s.info
		case "stats":
			sst := smc.Stats()
			st := ServerStats{
				CPUNanos: ProcessCPU().Nanoseconds(), States: map[string]map[string]int{},
				Held: s.held.Load(), Open: s.open.Load(),
				Accepted: map[string]int64{}, Counts: SideCounts(sst.Server), ShmInUse: sst.MemoryInUse,
			}
			for name, sm := range s.samplers {
				if m := sm.Take(req.Reset); m != nil {
					st.States[name] = m
				}
				st.Accepted[name] = s.accepted[name].Load()
			}
			resp = st
		case "mem":
			var sm ServerMemory
			m, err := SelfMemory()
			sm.Mem = m
			if err != nil {
				sm.Error = err.Error()
			}
			resp = sm
		case "release":
			s.relMu.Lock()
			close(s.rel)
			s.rel = make(chan struct{})
			s.relMu.Unlock()
			resp = map[string]string{}
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
func (s *server) serveData(ln net.Listener, sm *StateSampler, accepted *atomic.Int64) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. EMFILE: let connections drain
			continue
		}
		accepted.Add(1)
		s.open.Add(1)
		go func() {
			defer s.open.Add(-1)
			s.handleData(c, sm)
		}()
	}
}

// handleData runs the server side of one benchmark connection.
func (s *server) handleData(c net.Conn, sm *StateSampler) {
	defer c.Close()
	var h [headerLen]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || string(h[:4]) != "SMCP" {
		return
	}
	// Sampled after the first Read, so that an *smc.Conn has finished its handshake.
	sm.Sample(c)
	req, resp := int(binary.BigEndian.Uint32(h[8:])), int(binary.BigEndian.Uint32(h[12:]))
	switch h[4] {
	case opEcho:
		if req < 1 || req > maxSize || resp < 1 || resp > maxSize {
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
	case opHold:
		s.relMu.Lock()
		rel := s.rel
		s.relMu.Unlock()
		s.held.Add(1)
		defer s.held.Add(-1)
		select {
		case <-rel:
		case <-s.quit:
		}
	case opPass:
		if req < 0 || req > maxSize || resp < 0 || resp > maxSize {
			return
		}
		if err := passData(c, req, resp); err != nil {
			return
		}
		var b [1]byte // a connection that idles holds no buffer of ours
		for {
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	}
}

// passData reads in bytes from c, then writes out bytes to it, through a
// passChunk buffer that is garbage once it returns.
func passData(c net.Conn, in, out int) error {
	buf := make([]byte, min(passChunk, max(in, out, 1)))
	for in > 0 {
		n, err := c.Read(buf[:min(len(buf), in)])
		in -= n
		if err != nil {
			return err
		}
	}
	for out > 0 {
		n, err := c.Write(buf[:min(len(buf), out)])
		out -= n
		if err != nil {
			return err
		}
	}
	return nil
}

// ProcessCPU returns the user and system CPU time this process has used.
func ProcessCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A ServerProc is the server child process of the local mode.
type ServerProc struct {
	Control string // the server's control address
	cmd     *exec.Cmd
	stdin   io.WriteCloser
}

// StartServer starts this executable with args as the server child process (it
// inherits this process's cgroup) and waits for its control address. args must
// select a mode that runs [Serve] with ExitOnStdin.
func StartServer(args ...string) (*ServerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, args...)
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
	p := &ServerProc{cmd: cmd, stdin: stdin}
	var hello struct{ Control string }
	if err := json.NewDecoder(stdout).Decode(&hello); err != nil || hello.Control == "" {
		p.Stop()
		return nil, fmt.Errorf("smc: perf: the server process did not report its address: %v", err)
	}
	p.Control = hello.Control
	go io.Copy(io.Discard, stdout)
	return p, nil
}

// Stop ends the server process: closing its stdin asks it to exit; it is killed if
// it has not within a few seconds.
func (p *ServerProc) Stop() {
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

// control is the client's control connection to the server.
type control struct {
	c   net.Conn
	dec *json.Decoder
	enc *json.Encoder
}

func dialControl(ctx context.Context, addr string) (*control, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smc: perf: control connection: %w", err)
	}
	return &control{c: c, dec: json.NewDecoder(bufio.NewReader(c)), enc: json.NewEncoder(c)}, nil
}

func (pc *control) call(req request, resp any) error {
	pc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := pc.enc.Encode(req); err != nil {
		return fmt.Errorf("smc: perf: control: %w", err)
	}
	if err := pc.dec.Decode(resp); err != nil {
		return fmt.Errorf("smc: perf: control: %w", err)
	}
	return nil
}

func (pc *control) stats(reset bool) (ServerStats, error) {
	var st ServerStats
	err := pc.call(request{Cmd: "stats", Reset: reset}, &st)
	return st, err
}

// mem asks the server for its memory after a collection.
func (pc *control) mem() (Memory, error) {
	var sm ServerMemory
	if err := pc.call(request{Cmd: "mem"}, &sm); err != nil {
		return Memory{}, err
	}
	if sm.Error != "" {
		return Memory{}, errors.New(sm.Error)
	}
	return sm.Mem, nil
}

// release tells the server to close its held connections.
func (pc *control) release() error {
	var resp map[string]string
	return pc.call(request{Cmd: "release"}, &resp)
}

// waitServer polls the server's stats until cond holds, for at most limit.
func (pc *control) waitServer(ctx context.Context, limit time.Duration, what string, cond func(ServerStats) bool) (ServerStats, error) {
	deadline := time.Now().Add(limit)
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 5*time.Millisecond) {
		st, err := pc.stats(false)
		if err != nil || cond(st) {
			return st, err
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("smc: perf: the server did not reach %s within %v (held %d, open %d)", what, limit, st.Held, st.Open)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}
