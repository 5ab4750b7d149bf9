// Command clcfloor measures the floor under smc perf's short scenario: what a short
// connection costs when it keeps Linux SMC-Dv2's CLC exchange on TCP and everything
// else is free. It uses the standard library only, no SMC: the CLC messages are
// bytes of their sizes, and the request and response that SMC-D moves through
// shared memory are not sent at all.
//
// As in smc perf, the client runs the server as a child process ("clcfloor
// server"), and 32 client goroutines each connect, exchange, and close, over
// loopback. Shapes:
//
//	tcp   a 1040-byte request (smc perf's header and 1 KiB) and a 1 KiB response,
//	      smc perf's short scenario over TCP
//	clc   Proposal (80 B, client to server), Accept (68 B), Confirm (68 B), close:
//	      the data is free and nobody waits for it
//	clcw  clc, then the server wakes the client once on the TCP connection (4 B):
//	      a response through shared memory must wake a client that waits for it;
//	      here the netpoller wakes the waiting goroutine itself
//	clcu  clc, then the server wakes the client through one Unix socket shared by
//	      the two processes (4 B naming the connection, which the Confirm carried),
//	      whose reader goroutine hands the wake-up to the waiting goroutine, as an
//	      SMC-D link's reader does
//
// Every round measures every shape for -duration, in an order rotated and
// reversed from round to round; each process's CPU is its getrusage (the server's
// is asked over its stdin). The summary gives medians over rounds and the median
// of each round's rate against the same round's tcp.
//
//	go run ./bench/clcfloor -rounds=6        # as root or not; loopback only
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sizes of the exchange: smc perf's request (header and 1 KiB) and response, and
// Linux SMC-Dv2's Proposal (with one UEID and its SMC-D v2 extension) and Accept and
// Confirm (with the first-contact extension).
const (
	requestLen  = 16 + 1024
	responseLen = 1024
	proposalLen = 80
	acceptLen   = 68
	wakeLen     = 4
)

var shapes = []string{"tcp", "clc", "clcw", "clcu"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "server" {
		exit(serve())
		return
	}
	rounds := flag.Int("rounds", 6, "rounds; each measures every shape once")
	duration := flag.Duration("duration", time.Second, "time per shape and round")
	clients := flag.Int("clients", 32, "concurrent clients")
	flag.Parse()
	if *rounds < 1 || *duration <= 0 || *clients < 1 {
		exit(errors.New("clcfloor: -rounds, -duration and -clients must be positive"))
	}
	exit(run(*rounds, *duration, *clients))
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serve is the child: it prints its TCP address and Unix socket path, answers
// connections by the shape their first byte names, and answers each line on stdin
// with its CPU time in nanoseconds. It ends when stdin does.
func serve() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "clcfloor")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	uln, err := net.Listen("unix", filepath.Join(dir, "wake.sock"))
	if err != nil {
		return err
	}
	// The client's one Unix connection, for clcu's wake-ups.
	wake := make(chan net.Conn, 1)
	go func() {
		if c, err := uln.Accept(); err == nil {
			wake <- c
		}
	}()
	var (
		wakeMu sync.Mutex
		wakeC  net.Conn
	)
	ring := func(b []byte) {
		wakeMu.Lock()
		defer wakeMu.Unlock()
		if wakeC == nil {
			wakeC = <-wake
		}
		wakeC.Write(b)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go answer(c, ring)
		}
	}()
	fmt.Printf("%s %s\n", ln.Addr(), uln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(int64(processCPU()))
	}
	return sc.Err()
}

// answer serves one connection; its first byte says the shape (t, c, w or u).
func answer(c net.Conn, ring func([]byte)) {
	defer c.Close()
	buf := make([]byte, requestLen)
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return
	}
	if buf[0] == 't' {
		if _, err := io.ReadFull(c, buf[1:requestLen]); err != nil {
			return
		}
		c.Write(buf[:responseLen])
	} else {
		if _, err := io.ReadFull(c, buf[1:proposalLen]); err != nil {
			return
		}
		c.Write(buf[:acceptLen])
		if _, err := io.ReadFull(c, buf[:acceptLen]); err != nil { // the Confirm
			return
		}
		switch buf[0] {
		case 'w':
			c.Write(buf[:wakeLen])
		case 'u':
			ring(buf[1 : 1+wakeLen]) // the connection's number, from the Confirm
		}
	}
	io.ReadFull(c, buf[:1]) // the client's close
}

// child is the server process, as the client sees it.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	addr string
	wake net.Conn

	next    atomic.Uint32
	mu      sync.Mutex
	waiting map[uint32]chan struct{} // clcu connections waiting for their wake-up
}

func startChild() (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "server")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := &child{cmd: cmd, in: in, out: bufio.NewReader(out), waiting: map[uint32]chan struct{}{}}
	line, err := ch.out.ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 {
		ch.stop()
		return nil, fmt.Errorf("clcfloor: server child: %q, %v", line, err)
	}
	ch.addr = f[0]
	if ch.wake, err = net.Dial("unix", f[1]); err != nil {
		ch.stop()
		return nil, err
	}
	go ch.readWakes()
	return ch, nil
}

func (ch *child) stop() {
	ch.in.Close()
	if ch.wake != nil {
		ch.wake.Close()
	}
	ch.cmd.Wait()
}

func (ch *child) cpu() (time.Duration, error) {
	if _, err := fmt.Fprintln(ch.in, "cpu"); err != nil {
		return 0, err
	}
	line, err := ch.out.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	return time.Duration(n), err
}

// readWakes is the link reader of clcu: it hands each wake-up to its connection.
func (ch *child) readWakes() {
	var b [wakeLen]byte
	for {
		if _, err := io.ReadFull(ch.wake, b[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(b[:])
		ch.mu.Lock()
		w := ch.waiting[n]
		delete(ch.waiting, n)
		ch.mu.Unlock()
		if w != nil {
			w <- struct{}{}
		}
	}
}

// once runs one connection of the shape.
func (ch *child) once(shape string, buf []byte) error {
	c, err := net.Dial("tcp", ch.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if shape == "tcp" {
		buf[0] = 't'
		if _, err := c.Write(buf[:requestLen]); err != nil {
			return err
		}
		_, err = io.ReadFull(c, buf[:responseLen])
		return err
	}
	buf[0] = shape[len(shape)-1] // c, w or u
	if _, err := c.Write(buf[:proposalLen]); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:acceptLen]); err != nil {
		return err
	}
	var woken chan struct{}
	buf[0] = shape[len(shape)-1]
	if shape == "clcu" {
		n := ch.next.Add(1)
		woken = make(chan struct{}, 1)
		ch.mu.Lock()
		ch.waiting[n] = woken
		ch.mu.Unlock()
		binary.LittleEndian.PutUint32(buf[1:], n)
	}
	if _, err := c.Write(buf[:acceptLen]); err != nil { // the Confirm
		return err
	}
	switch shape {
	case "clcw":
		_, err = io.ReadFull(c, buf[:wakeLen])
	case "clcu":
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			ch.mu.Lock()
			delete(ch.waiting, binary.LittleEndian.Uint32(buf[1:]))
			ch.mu.Unlock()
			err = errors.New("clcfloor: no wake-up on the Unix socket")
		}
	}
	return err
}

// cell is one measurement of one shape.
type cell struct {
	rate               float64 // connections per second
	clientUs, serverUs float64 // CPU per connection
}

func (ch *child) cell(shape string, d time.Duration, clients int) (cell, error) {
	s0, err := ch.cpu()
	if err != nil {
		return cell{}, err
	}
	c0, t0 := processCPU(), time.Now()
	end := t0.Add(d)
	var (
		n       atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range clients {
		wg.Go(func() {
			buf := make([]byte, requestLen)
			for time.Now().Before(end) {
				if err := ch.once(shape, buf); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed, c1 := time.Since(t0), processCPU()
	s1, err := ch.cpu()
	if err != nil {
		return cell{}, err
	}
	if first != nil {
		return cell{}, fmt.Errorf("clcfloor: %s: %w", shape, first)
	}
	k := float64(n.Load())
	if k == 0 {
		return cell{}, fmt.Errorf("clcfloor: %s: no connection completed", shape)
	}
	return cell{
		rate:     k / elapsed.Seconds(),
		clientUs: float64((c1 - c0).Nanoseconds()) / k / 1e3,
		serverUs: float64((s1 - s0).Nanoseconds()) / k / 1e3,
	}, nil
}

func run(rounds int, d time.Duration, clients int) error {
	ch, err := startChild()
	if err != nil {
		return err
	}
	defer ch.stop()
	cells := map[string][]cell{}
	for r := range rounds {
		for i := range shapes {
			j := (i + r) % len(shapes)
			if r%2 == 1 {
				j = (len(shapes) - 1 - i + r) % len(shapes)
			}
			sh := shapes[j]
			c, err := ch.cell(sh, d, clients)
			if err != nil {
				return err
			}
			cells[sh] = append(cells[sh], c)
			fmt.Printf("round %d %-4s %8.0f conn/s  CPU per connection: client %6.1f µs, server %6.1f µs\n",
				r+1, sh, c.rate, c.clientUs, c.serverUs)
		}
	}
	fmt.Printf("medians of %d rounds of %v, %d clients; vs tcp is the median of each round's rate over the same round's tcp:\n", rounds, d, clients)
	for _, sh := range shapes {
		var rate, cli, srv, vs []float64
		for i, c := range cells[sh] {
			rate = append(rate, c.rate)
			cli = append(cli, c.clientUs)
			srv = append(srv, c.serverUs)
			vs = append(vs, c.rate/cells["tcp"][i].rate)
		}
		fmt.Printf("%-4s %8.0f conn/s  CPU per connection: client %6.1f µs, server %6.1f µs  vs tcp %.3fx [%.3f, %.3f]\n",
			sh, median(rate), median(cli), median(srv), median(vs), slices.Min(vs), slices.Max(vs))
	}
	return nil
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
