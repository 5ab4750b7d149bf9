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

var shapes = []string{"tcp", "clc", "clcw", "clcu", "clcu2"}

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
	// The client's one Unix connection, for the wake-ups of clcu and clcu2.
	accepted := make(chan *link, 1)
	go func() {
		if c, err := uln.Accept(); err == nil {
			l := newLink(c)
			go l.read()
			accepted <- l
		}
	}()
	peer := sync.OnceValue(func() *link { return <-accepted })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go answer(c, peer)
		}
	}()
	fmt.Printf("%s %s\n", ln.Addr(), uln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(int64(processCPU()))
	}
	return sc.Err()
}

// answer serves one connection; its first byte says the shape (t, c, w, u or 2).
func answer(c net.Conn, peer func() *link) {
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
		n := binary.LittleEndian.Uint32(buf[1:]) // the connection's number, from the Confirm
		switch buf[0] {
		case 'w':
			c.Write(buf[:wakeLen])
		case 'u':
			peer().send(n)
		case '2':
			l := peer()
			closed := l.expect(n)
			if l.send(n) == nil {
				l.wait(n, closed) // the client's close
			}
			return
		}
	}
	io.ReadFull(c, buf[:1]) // the client's close
}

// A link is one Unix connection between the two processes that carries 4-byte
// connection numbers, and the connections waiting for theirs.
type link struct {
	c   net.Conn
	wmu sync.Mutex // serializes sends

	mu      sync.Mutex
	waiting map[uint32]chan struct{}
}

func newLink(c net.Conn) *link { return &link{c: c, waiting: map[uint32]chan struct{}{}} }

// send sends connection number n.
func (l *link) send(n uint32) error {
	var b [wakeLen]byte
	binary.LittleEndian.PutUint32(b[:], n)
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_, err := l.c.Write(b[:])
	return err
}

// expect registers a wait for number n, before anything can send it.
func (l *link) expect(n uint32) chan struct{} {
	w := make(chan struct{}, 1)
	l.mu.Lock()
	l.waiting[n] = w
	l.mu.Unlock()
	return w
}

// wait waits for the number that expect registered w for.
func (l *link) wait(n uint32, w chan struct{}) error {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-w:
		return nil
	case <-t.C:
		l.mu.Lock()
		delete(l.waiting, n)
		l.mu.Unlock()
		return errors.New("clcfloor: no wake-up on the Unix socket")
	}
}

// read is the link's reader: it hands each number to the connection waiting for it.
func (l *link) read() {
	var b [wakeLen]byte
	for {
		if _, err := io.ReadFull(l.c, b[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(b[:])
		l.mu.Lock()
		w := l.waiting[n]
		delete(l.waiting, n)
		l.mu.Unlock()
		if w != nil {
			w <- struct{}{}
		}
	}
}

// child is the server process, as the client sees it.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	addr string
	link *link // to the server, for clcu and clcu2

	next atomic.Uint32 // the last connection number given out
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
	ch := &child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	line, err := ch.out.ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 {
		ch.stop()
		return nil, fmt.Errorf("clcfloor: server child: %q, %v", line, err)
	}
	ch.addr = f[0]
	uc, err := net.Dial("unix", f[1])
	if err != nil {
		ch.stop()
		return nil, err
	}
	ch.link = newLink(uc)
	go ch.link.read()
	return ch, nil
}

func (ch *child) stop() {
	ch.in.Close()
	if ch.link != nil {
		ch.link.c.Close()
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
	mark := shape[len(shape)-1] // c, w, u or 2
	buf[0] = mark
	if _, err := c.Write(buf[:proposalLen]); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:acceptLen]); err != nil {
		return err
	}
	n := ch.next.Add(1)
	var woken chan struct{}
	if mark == 'u' || mark == '2' {
		woken = ch.link.expect(n)
	}
	buf[0] = mark
	binary.LittleEndian.PutUint32(buf[1:], n)
	if _, err := c.Write(buf[:acceptLen]); err != nil { // the Confirm
		return err
	}
	switch mark {
	case 'w':
		_, err = io.ReadFull(c, buf[:wakeLen])
	case 'u':
		err = ch.link.wait(n, woken)
	case '2':
		if err = ch.link.wait(n, woken); err == nil {
			err = ch.link.send(n) // the close, before TCP's
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
			fmt.Printf("round %d %-5s %8.0f conn/s  CPU per connection: client %6.1f µs, server %6.1f µs\n",
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
		fmt.Printf("%-5s %8.0f conn/s  CPU per connection: client %6.1f µs, server %6.1f µs  vs tcp %.3fx [%.3f, %.3f]\n",
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
