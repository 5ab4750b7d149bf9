package smc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file is the child side of the link acceptance tests (link_linux_test.go): the
// commands a process of the multi-process tests (procMain) runs for them. Every
// command answers with one line, "WORD {json}" where it reports figures. Arguments
// are key=value pairs:
//
//	lserve [addr= dir= buf= ebuf= sink=]
//	                                -> "lserving ADDR": an echo server (with sink=1,
//	                                   one that reads and discards) that keeps
//	                                   tallies instead of one line per connection
//	                                   (with first=N: each connection echoes N bytes
//	                                   and is then parked, with no goroutine, for
//	                                   round; a process under the race detector may
//	                                   not have 10,000 goroutines)
//	lstats                          -> "lstats {srvStats}"
//	round from= to= [size=]         -> "round K": echo size bytes once on the parked
//	                                   connections from..to-1 (by remote port), in
//	                                   the background
//	roundwait                       -> "rounded {openStats}" once the round is over
//	open addr= n= [size= conc= dir= buf= offer= pat= secs= oneway=]
//	                                -> "opened {openStats}": n connections dialed with
//	                                   smc.Dialer, each echoing size bytes (of pat
//	                                   repeated, or random) within secs, or with
//	                                   oneway=1 only writing them, all kept
//	echoall [size= conc=]           -> "echoed {openStats}": every kept connection
//	                                   echoes again, all of them open at once
//	echorange from= to= [size= conc=]
//	                                -> "echoed {openStats}": echoall on the kept
//	                                   connections from..to-1 (by local port)
//	readall [secs=]                 -> "readall {readStats}": a Read on every kept
//	                                   connection, how each ended
//	closeall                        -> "closed N"
//	short addr= n= [size=]          -> "short {openStats}": n connections in a row,
//	                                   each dialed, echoed and closed
//	counters                        -> "counters {procCounters}"
//	setmem n=                       -> "setmem PREV NOW": SetMemoryLimit(n)
//	rlimit n=                       -> "rlimit N": RLIMIT_NOFILE raised towards n
//	flood path= type= n=            -> "flooded {floodStats}": n idle Unix connections,
//	                                   dialed again whenever the server closes one
//	floodstats                      -> "floodstats {floodStats}": how many are open
//	impostor dir= [relay=]          -> "impostor N": replaces the N sockets of dir
//	                                   with its own listeners; with relay=1 it moves
//	                                   the real ones aside and relays to them
//	impreport pat=                  -> "impreport {impStats}"
func procLink(f []string) (string, bool) {
	kv := map[string]string{}
	for _, a := range f[1:] {
		k, v, _ := strings.Cut(a, "=")
		kv[k] = v
	}
	num := func(k string, def int) int {
		if v, ok := kv[k]; ok {
			n, err := strconv.Atoi(v)
			if err == nil {
				return n
			}
		}
		return def
	}
	switch f[0] {
	case "lserve":
		addr, err := linkServe(kv["addr"], linkConfig(kv), serveOpts{ebuf: num("ebuf", 4<<10), first: num("first", 0), sink: kv["sink"] == "1"})
		if err != nil {
			return "lserving error " + err.Error(), true
		}
		return "lserving " + addr, true
	case "lstats":
		return "lstats " + jsonOf(snapshotSrv()), true
	case "open":
		return "opened " + jsonOf(openConns(kv["addr"], linkConfig(kv), num("n", 1), num("size", 1024), num("conc", 1), kv["pat"],
			time.Duration(num("secs", 20))*time.Second, kv["oneway"] == "1")), true
	case "echoall":
		return "echoed " + jsonOf(echoConns(keptConns(), num("size", 1024), num("conc", 32))), true
	case "round":
		return "round " + strconv.Itoa(startRound(num("from", 0), num("to", 0), num("size", 1024))), true
	case "roundwait":
		round.wg.Wait()
		return "rounded " + jsonOf(round.st), true
	case "echorange":
		return "echoed " + jsonOf(echoRange(num("from", 0), num("to", 0), num("size", 1024), num("conc", 32))), true
	case "readall":
		return "readall " + jsonOf(readAll(time.Duration(num("secs", 10))*time.Second)), true
	case "closeall":
		return "closed " + strconv.Itoa(closeAll()), true
	case "short":
		return "short " + jsonOf(shortConns(kv["addr"], linkConfig(kv), num("n", 1), num("size", 1024))), true
	case "counters":
		return "counters " + jsonOf(countersNow()), true
	case "setmem":
		n, _ := strconv.ParseInt(kv["n"], 10, 64)
		prev := setMemoryLimit(n)
		return fmt.Sprintf("setmem %d %d", prev, setMemoryLimit(-1)), true
	case "rlimit":
		// Up to n if the process may raise its hard limit (CAP_SYS_RESOURCE), else
		// up to the hard limit.
		n := uint64(num("n", 0))
		var rl unix.Rlimit
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n}); err != nil {
			if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
				return "rlimit error " + err.Error(), true
			}
			rl.Cur = rl.Max
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
				return "rlimit error " + err.Error(), true
			}
		}
		unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
		return fmt.Sprintf("rlimit %d", rl.Cur), true
	case "flood":
		return "flooded " + jsonOf(flood(kv["path"], kv["type"], num("n", 1))), true
	case "floodstats":
		return "floodstats " + jsonOf(floodStats{Live: floodLive.Load(), Redials: floodRedials.Load()}), true
	case "impostor":
		n, err := imp.replace(kv["dir"], kv["relay"] == "1")
		if err != nil {
			return "impostor error " + err.Error(), true
		}
		return "impostor " + strconv.Itoa(n), true
	case "impreport":
		return "impreport " + jsonOf(imp.report([]byte(kv["pat"]))), true
	}
	return "", false
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"error":` + strconv.Quote(err.Error()) + `}`
	}
	return string(b)
}

// linkConfig builds the Config of a command: dir= EndpointDir, buf= BufferSize,
// offer= a prefix the Dial policy offers SMC to (besides this host).
func linkConfig(kv map[string]string) *Config {
	cfg := &Config{EndpointDir: kv["dir"]}
	cfg.BufferSize, _ = strconv.Atoi(kv["buf"])
	if p, err := netip.ParsePrefix(kv["offer"]); err == nil {
		cfg.Policy = NewPolicy(Rules{Dial: []Rule{{Prefix: p, Offer: true}}})
	}
	return cfg
}

// classify names how a connection's call ended, for tallies.
func classify(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return "other"
}

// endedAs classifies how a connection's call ended, with "tcp " before it for a
// connection in TCP mode: a TCP peer that dies ends with EOF, as TCP does.
func endedAs(c net.Conn, err error) string {
	if State(c).Mode != ModeSMCD {
		return "tcp " + classify(err)
	}
	return classify(err)
}

// srvStats are the tallies of an lserve server.
type srvStats struct {
	Accepted map[string]int // by modeOf, once the handshake is over
	Failed   int            // handshakes that failed
	Open     int            // connections not ended yet
	Ended    map[string]int // by endedAs of the error that ended the echo
	Errors   []string       // the first few unexpected errors
	Received int64          // bytes a sink=1 server read
}

var srv = struct {
	mu sync.Mutex
	st srvStats
}{st: srvStats{Accepted: map[string]int{}, Ended: map[string]int{}}}

func (s *srvStats) note(err error) {
	if len(s.Errors) < 5 && err != nil {
		s.Errors = append(s.Errors, err.Error())
	}
}

func snapshotSrv() srvStats {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	b, _ := json.Marshal(srv.st)
	var c srvStats
	json.Unmarshal(b, &c)
	return c
}

// linkServe listens with cfg and echoes every connection with a buffer of ebuf bytes
// (small, so that thousands of idle connections cost little heap).
// serveOpts say how lserve serves: its echo buffer, the bytes echoed before a
// connection is parked (0: never parked), or only reading.
type serveOpts struct {
	ebuf, first int
	sink        bool
}

func linkServe(addr string, cfg *Config, o serveOpts) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lc := ListenConfig{Config: cfg}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return "", err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveLink(c, o)
		}
	}()
	return ln.Addr().String(), nil
}

func serveLink(c net.Conn, o serveOpts) {
	if sc, ok := c.(*Conn); ok {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		err := sc.Handshake()
		c.SetDeadline(time.Time{})
		if err != nil {
			c.Close()
			srv.mu.Lock()
			srv.st.Failed++
			srv.st.note(err)
			srv.mu.Unlock()
			return
		}
	}
	srv.mu.Lock()
	srv.st.Accepted[modeOf(c)]++
	srv.st.Open++
	srv.mu.Unlock()
	if o.first > 0 {
		err := echoOnce(c, o.first)
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if err != nil {
			srv.st.Open--
			srv.st.Ended[classify(err)]++
			srv.st.note(err)
			c.Close()
			return
		}
		parked = append(parked, c)
		return
	}
	defer c.Close()
	buf := make([]byte, o.ebuf)
	var err error
	for {
		var n int
		n, err = c.Read(buf)
		if n > 0 && o.sink {
			srv.mu.Lock()
			srv.st.Received += int64(n)
			srv.mu.Unlock()
		} else if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
		}
		if err != nil {
			break
		}
	}
	srv.mu.Lock()
	srv.st.Open--
	k := endedAs(c, err)
	srv.st.Ended[k]++
	if k == "other" {
		srv.st.note(err)
	}
	srv.mu.Unlock()
}

// parked are the connections of an lserve first=N server, guarded by srv.mu.
var parked []net.Conn

// echoOnce reads n bytes and writes them back.
func echoOnce(c net.Conn, n int) error {
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	defer c.SetDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	_, err := c.Write(b)
	return err
}

// byPort sorts connections by the port of their remote (server) or local (client)
// address: the same order on both ends of loopback connections.
func byPort(cs []net.Conn, remote bool) []net.Conn {
	port := func(c net.Conn) int {
		a := c.LocalAddr()
		if remote {
			a = c.RemoteAddr()
		}
		ap, _ := netip.ParseAddrPort(a.String())
		return int(ap.Port())
	}
	slices.SortFunc(cs, func(a, b net.Conn) int { return port(a) - port(b) })
	return cs
}

// round is the echo round a parked server runs.
var round struct {
	wg sync.WaitGroup
	mu sync.Mutex
	st openStats
}

func startRound(from, to, size int) int {
	srv.mu.Lock()
	cs := byPort(append([]net.Conn(nil), parked...), true)
	srv.mu.Unlock()
	from, to = min(max(from, 0), len(cs)), min(max(to, 0), len(cs))
	round.st = openStats{Modes: map[string]int{}}
	for _, c := range cs[from:to] {
		round.wg.Add(1)
		go func() {
			defer round.wg.Done()
			err := echoOnce(c, size)
			round.mu.Lock()
			round.st.add(modeOf(c), err)
			round.mu.Unlock()
		}()
	}
	return to - from
}

// openStats tally the connections of open, echoall or short.
type openStats struct {
	Modes      map[string]int // by modeOf
	Order      string         // with conc=1: D for SMCD, T for TCP, E for an error, in order
	Intact     int            // echoes that came back intact
	Errors     int
	FirstError string
	Millis     int64 // how long the command took
}

func (s *openStats) add(mode string, err error) {
	if mode != "" {
		s.Modes[mode]++
	}
	if err != nil {
		s.Errors++
		if s.FirstError == "" {
			s.FirstError = err.Error()
		}
		return
	}
	s.Intact++
}

// kept are the connections open keeps, for echoall, readall and closeall.
var kept struct {
	mu    sync.Mutex
	conns []net.Conn
}

// echo writes size bytes (the pattern pat repeated, or random) and reads them back.
func echo(c net.Conn, size int, pat string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	data := make([]byte, size)
	if pat != "" {
		for i := 0; i < size; i += copy(data[i:], pat) {
		}
	} else {
		rand.Read(data)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := make([]byte, size)
	_, err := io.ReadFull(c, got)
	if err != nil {
		c.SetDeadline(time.Unix(1, 0)) // unblock the writer
		<-werr
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if !bytes.Equal(got, data) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

// modeOf says "MODE REASON", and "MODE PEERDECL/DIAGNOSIS" after a Decline from the
// peer.
func modeOf(c net.Conn) string {
	st := State(c)
	if st.Fallback == ReasonPeerDecl {
		return fmt.Sprintf("%v %v/%v", st.Mode, st.Fallback, st.PeerDiagnosis)
	}
	return fmt.Sprintf("%v %v", st.Mode, st.Fallback)
}

func openConns(addr string, cfg *Config, n, size, conc int, pat string, timeout time.Duration, oneway bool) openStats {
	order := make([]byte, n)
	st := tally(n, conc, func(i int) (string, error) {
		d := Dialer{Config: cfg, Timeout: 60 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			order[i] = 'E'
			return "", err
		}
		mode := modeOf(c)
		order[i] = 'T'
		if State(c).Mode == ModeSMCD {
			order[i] = 'D'
		}
		if oneway {
			c.SetWriteDeadline(time.Now().Add(timeout))
			_, err = c.Write(make([]byte, size))
			c.SetWriteDeadline(time.Time{})
		} else {
			err = echo(c, size, pat, timeout)
		}
		kept.mu.Lock()
		kept.conns = append(kept.conns, c)
		kept.mu.Unlock()
		return mode, err
	})
	if conc <= 1 {
		st.Order = string(order)
	}
	return st
}

// tally runs f(0) to f(n-1), at most conc at once, and adds up the mode and error
// each returns.
func tally(n, conc int, f func(i int) (mode string, err error)) openStats {
	start := time.Now()
	st := openStats{Modes: map[string]int{}}
	var mu sync.Mutex
	sem := make(chan struct{}, max(conc, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			mode, err := f(i)
			mu.Lock()
			st.add(mode, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	st.Millis = time.Since(start).Milliseconds()
	return st
}

func keptConns() []net.Conn {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	return append([]net.Conn(nil), kept.conns...)
}

// echoConns echoes size bytes on each of cs, conc at once.
func echoConns(cs []net.Conn, size, conc int) openStats {
	return tally(len(cs), conc, func(i int) (string, error) {
		return modeOf(cs[i]), echo(cs[i], size, "", 20*time.Second)
	})
}

// echoRange echoes on the kept connections from to to (excluded), in the order of
// their local ports.
func echoRange(from, to, size, conc int) openStats {
	cs := byPort(keptConns(), false)
	from, to = min(max(from, 0), len(cs)), min(max(to, 0), len(cs))
	return echoConns(cs[from:to], size, conc)
}

// readStats say how Reads on the kept connections ended.
type readStats struct {
	Ended     map[string]int // by endedAs
	MaxMillis int64          // the longest a Read took to end
	Errors    []string       // the first few errors that are not resets
}

func readAll(d time.Duration) readStats {
	st := readStats{Ended: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range keptConns() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c.SetReadDeadline(start.Add(d))
			var b [1]byte
			_, err := c.Read(b[:])
			took := time.Since(start).Milliseconds()
			mu.Lock()
			defer mu.Unlock()
			k := endedAs(c, err)
			st.Ended[k]++
			st.MaxMillis = max(st.MaxMillis, took)
			if k != "reset" && len(st.Errors) < 5 && err != nil {
				st.Errors = append(st.Errors, err.Error())
			}
		}()
	}
	wg.Wait()
	return st
}

func closeAll() int {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	for _, c := range kept.conns {
		c.Close()
	}
	n := len(kept.conns)
	kept.conns = nil
	return n
}

func shortConns(addr string, cfg *Config, n, size int) openStats {
	d := Dialer{Config: cfg, Timeout: 30 * time.Second}
	return tally(n, 1, func(int) (string, error) {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return modeOf(c), echo(c, size, "", 20*time.Second)
	})
}

// procCounters are a process's link counters, with what /proc shows of it.
type procCounters struct {
	Counters    linkCounters
	MemoryInUse int64 // smc.MemoryInUse
	MemfdMaps   int   // mappings of memfds other than the registry's
	MaxMemfdMap int64 // the largest of them, in bytes
	FDs         int
	Goroutines  int
}

func countersNow() procCounters {
	pc := procCounters{Counters: readCounters(), MemoryInUse: memoryInUse(), Goroutines: runtime.NumGoroutine()}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		pc.FDs = len(ents)
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	for _, l := range strings.Split(string(maps), "\n") {
		if !strings.Contains(l, "/memfd:") || strings.Contains(l, "smc-registry") {
			continue
		}
		pc.MemfdMaps++
		var lo, hi uint64
		if a, b, ok := strings.Cut(strings.Fields(l)[0], "-"); ok {
			lo, _ = strconv.ParseUint(a, 16, 64)
			hi, _ = strconv.ParseUint(b, 16, 64)
		}
		pc.MaxMemfdMap = max(pc.MaxMemfdMap, int64(hi-lo))
	}
	return pc
}

// floodStats say how many idle Unix connections flood holds.
type floodStats struct {
	Connected  int   // connections open once the first n dials are done
	Live       int64 // connections open now (floodstats)
	Redials    int64 // dials after the server closed one (floodstats)
	FirstError string
}

var floodLive, floodRedials atomic.Int64

// flood opens n connections to the Unix socket at path (of /proc/net/unix's type:
// 1 stream, 5 seqpacket) and keeps them open and idle: each one the server closes
// is dialed again, after a pause, for as long as the process runs.
func flood(path, typ string, n int) floodStats {
	network := "unix"
	if typ == "5" {
		network = "unixpacket"
	}
	var st floodStats
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			first := true
			for {
				c, err := net.DialTimeout(network, path, 5*time.Second)
				if first {
					mu.Lock()
					if err == nil {
						st.Connected++
					} else if st.FirstError == "" {
						st.FirstError = err.Error()
					}
					mu.Unlock()
					first = false
					wg.Done()
				} else {
					floodRedials.Add(1)
				}
				if err == nil {
					floodLive.Add(1)
					var b [64]byte
					for {
						if _, err := c.Read(b[:]); err != nil {
							break
						}
					}
					c.Close()
					floodLive.Add(-1)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return st
}

// An impostor takes over the socket files of an endpoint directory. It plays along
// as far as it can: to each message it answers the same bytes with the token word of
// the old fd-exchange message zeroed, carrying fresh sealed memfds of the sizes it
// received. As a relay, it renames the real socket aside, binds its own at the
// path, and passes every message and descriptor between the client and the real
// server, as a man in the middle. It keeps every memfd it saw and every byte it
// read, to look for the application's data in them.
type impostor struct {
	mu    sync.Mutex
	lns   []*net.UnixListener
	conns int
	msgs  int
	bytes []byte
	fds   []int
}

var imp impostor

// unixType returns the socket type (1 stream, 2 datagram, 5 seqpacket) of the
// listening Unix socket bound to path, from /proc/net/unix.
func unixType(path string) string {
	b, _ := os.ReadFile("/proc/net/unix")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 8 && f[7] == path {
			return strings.TrimLeft(f[4], "0")
		}
	}
	return ""
}

func (im *impostor) replace(dir string, relay bool) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if e.Type()&os.ModeSocket == 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		network := "unixpacket"
		if unixType(path) == "1" {
			network = "unix"
		}
		real := ""
		if relay {
			real = path + ".real"
			if err := os.Rename(path, real); err != nil {
				return n, err
			}
		} else if err := os.Remove(path); err != nil {
			return n, err
		}
		ln, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
		if err != nil {
			return n, err
		}
		ln.SetUnlinkOnClose(false)
		os.Chmod(path, 0o777)
		im.mu.Lock()
		im.lns = append(im.lns, ln)
		im.mu.Unlock()
		go im.serve(ln, network, real)
		n++
	}
	return n, nil
}

func (im *impostor) serve(ln *net.UnixListener, network, real string) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		im.mu.Lock()
		im.conns++
		im.mu.Unlock()
		if real == "" {
			go im.talk(c)
			continue
		}
		s, err := net.DialUnix(network, nil, &net.UnixAddr{Name: real, Net: network})
		if err != nil {
			c.Close()
			continue
		}
		go im.relay(c, s)
		go im.relay(s, c)
	}
}

// relay passes messages and their descriptors from a to b, recording both.
func (im *impostor) relay(a, b *net.UnixConn) {
	defer a.Close()
	defer b.Close()
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(64*4))
	for {
		n, fds, err := readMsg(a, buf, oob)
		if err != nil {
			return
		}
		im.mu.Lock()
		im.msgs++
		im.bytes = append(im.bytes, buf[:n]...)
		im.fds = append(im.fds, fds...)
		im.mu.Unlock()
		var rights []byte
		if len(fds) > 0 {
			rights = unix.UnixRights(fds...)
		}
		if _, _, err := b.WriteMsgUnix(buf[:n], rights, nil); err != nil {
			return
		}
	}
}

// readMsg reads a message from c into buf with the descriptors it carries; an empty
// message without descriptors (the peer's end) is io.EOF.
func readMsg(c *net.UnixConn, buf, oob []byte) (int, []int, error) {
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 && oobn == 0 {
		return 0, nil, io.EOF
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	return n, fds, nil
}

func (im *impostor) talk(c *net.UnixConn) {
	defer c.Close()
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(16*4))
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, fds, err := readMsg(c, buf, oob)
		if err != nil {
			return
		}
		msg := append([]byte(nil), buf[:n]...)
		var mine []int
		for _, fd := range fds {
			if m, err := lookalike(fd); err == nil {
				mine = append(mine, m)
			}
		}
		im.mu.Lock()
		im.msgs++
		im.bytes = append(im.bytes, msg...)
		im.fds = append(im.fds, fds...)
		im.fds = append(im.fds, mine...)
		im.mu.Unlock()
		reply := msg
		if len(reply) == 24 && string(reply[:4]) == "SMCs" {
			binary.LittleEndian.PutUint64(reply[8:], 0) // the old protocol's token word
		}
		c.WriteMsgUnix(reply, unix.UnixRights(mine...), nil)
	}
}

// lookalike returns a new memfd of the size and seals of fd.
func lookalike(fd int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, err
	}
	// Created as the library creates its own, so that its seals can match.
	m, err := unix.MemfdCreate("smc-dmb", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC|unix.MFD_NOEXEC_SEAL)
	if err == unix.EINVAL {
		m, err = unix.MemfdCreate("smc-dmb", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	}
	if err != nil {
		return -1, err
	}
	if err := unix.Ftruncate(m, st.Size); err != nil {
		unix.Close(m)
		return -1, err
	}
	if seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); err == nil {
		// F_SEAL_EXEC added by hand seals writes too; MFD_NOEXEC_SEAL set it.
		unix.FcntlInt(uintptr(m), unix.F_ADD_SEALS, seals&^unix.F_SEAL_EXEC)
	}
	return m, nil
}

// impStats are what the impostor saw.
type impStats struct {
	Conns, Msgs, Bytes, FDs int
	PatternHits             int // places where the application's pattern showed
}

func (im *impostor) report(pat []byte) impStats {
	im.mu.Lock()
	defer im.mu.Unlock()
	st := impStats{Conns: im.conns, Msgs: im.msgs, Bytes: len(im.bytes), FDs: len(im.fds)}
	if len(pat) == 0 {
		return st
	}
	st.PatternHits = bytes.Count(im.bytes, pat)
	for _, fd := range im.fds {
		var s unix.Stat_t
		if unix.Fstat(fd, &s) != nil || s.Size <= 0 || s.Size > 1<<30 {
			continue
		}
		b := make([]byte, s.Size)
		n, _ := unix.Pread(fd, b, 0)
		st.PatternHits += bytes.Count(b[:max(n, 0)], pat)
	}
	return st
}
