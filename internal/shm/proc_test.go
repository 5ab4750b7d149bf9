package shm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The cross-process tests re-execute the test binary as the peer: TestHelperProcess does
// nothing unless SMC_SHM_CHILD names a role.
const childEnv = "SMC_SHM_CHILD"

// TestHelperProcess is the child side of the cross-process tests and benchmarks. It
// connects over link SMC_SHM_LINK with SMC_SHM_TOKEN and plays the role named by SMC_SHM_CHILD:
// "echo" echoes until EOF, "slowecho" too but waits 200 µs before each reply, "sink-read" and "sink-discard" read until EOF (see sink) then write one byte, "source" writes
// until it fails.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(childEnv)
	if role == "" {
		return
	}
	err := runChild(role)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(role string) error {
	if d, err := time.ParseDuration(os.Getenv("SMC_SHM_SPIN")); err == nil {
		SetSpin(d)
	}
	switch role {
	case "multi":
		return runMulti()
	case "relay":
		return runRelay()
	case "stranger":
		return runStranger()
	case "offer":
		return runOffer()
	}
	token, _ := strconv.ParseUint(os.Getenv("SMC_SHM_TOKEN"), 10, 64)
	linkID, _ := strconv.ParseUint(os.Getenv("SMC_SHM_LINK"), 10, 32)
	size, _ := strconv.Atoi(os.Getenv("SMC_SHM_SIZE"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Connect(ctx, "", uint32(linkID), token, size, size, MaxRingSize)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println(confirmLine(s))
	switch role {
	case "echo", "slowecho": // slowecho: a server with think time, 200 µs per request
		buf := make([]byte, 64<<10)
		for {
			n, err := s.Read(buf)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if role == "slowecho" {
				time.Sleep(200 * time.Microsecond)
			}
			if _, err := s.Write(buf[:n]); err != nil {
				return err
			}
		}
	case "sink-read", "sink-discard":
		if err := sink(s, strings.TrimPrefix(role, "sink-")); err != nil {
			return err
		}
		_, err := s.Write([]byte{1})
		return err
	case "source":
		buf := make([]byte, 64<<10)
		for {
			if _, err := s.Write(buf); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown role %q", role)
}

// startChild starts the test binary as a peer in role and returns our side of the stream.
func startChild(tb testing.TB, e *Endpoint, role string, size int) (*Stream, *exec.Cmd) {
	tb.Helper()
	o, err := e.Offer(context.Background(), PeerID{}, size, MaxRingSize)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(),
		childEnv+"="+role,
		"SMC_SHM_LINK="+strconv.FormatUint(uint64(o.LinkID()), 10),
		"SMC_SHM_TOKEN="+strconv.FormatUint(o.Token(), 10),
		"SMC_SHM_SIZE="+strconv.Itoa(size),
		"SMC_SHM_SPIN="+time.Duration(spinNanos.Load()).String(),
	)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		o.Cancel()
		tb.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	s, err2 := bindChild(o, strings.TrimSpace(line))
	if err != nil || err2 != nil {
		o.Cancel()
		cmd.Process.Kill()
		cmd.Wait()
		tb.Fatal(err, err2)
	}
	return s, cmd
}

// confirmLine is what a child prints once it connected, as the client's Confirm would
// carry it: its slot's token and ring size.
func confirmLine(s *Stream) string { return fmt.Sprint(s.Token(), " ", s.RingSize()) }

// bindChild binds o to the slot a child's confirmLine names.
func bindChild(o *Offer, line string) (*Stream, error) {
	var tok uint64
	var size int
	if _, err := fmt.Sscan(line, &tok, &size); err != nil {
		o.Cancel()
		return nil, fmt.Errorf("child's confirm line %q: %w", line, err)
	}
	return o.Bind(tok, size)
}

func TestCrossProcessEcho(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, cmd := startChild(t, e, "echo", 64<<10)
	defer s.Close()
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 13)
	}
	go func() {
		s.Write(want)
		s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != string(want) {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// TestWakeupsCounted: with a peer process that thinks before it answers, our Read
// parks and is woken over the link, and the peer's Read parks too and is woken by our
// Write: both directions are counted, and only in the counters CountWakeups named.
func TestWakeupsCounted(t *testing.T) {
	defer checkLeaks(t)()
	var sent, received atomic.Uint64
	CountWakeups(&sent, &received)
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, cmd := startChild(t, e, "slowecho", 64<<10)
	defer s.Close()
	s0, r0 := sent.Load(), received.Load()
	buf := make([]byte, 64)
	for range 20 {
		if _, err := s.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the child parks in its Read meanwhile
	}
	if got := received.Load() - r0; got == 0 {
		t.Errorf("no wake-up received: our Read waited 200 µs per request past the spin")
	}
	if got := sent.Load() - s0; got == 0 {
		t.Errorf("no wake-up sent: the child's Read waited 1 ms per request past its spin")
	}
	if c := ReadCounters(); c.WakeupsSent != sent.Load() || c.WakeupsReceived != received.Load() {
		t.Errorf("ReadCounters says %d/%d wake-ups, the words %d/%d", c.WakeupsSent, c.WakeupsReceived, sent.Load(), received.Load())
	}
	s.CloseWrite()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// TestPeerKilled kills the peer process mid-transfer with SIGKILL: the survivor's blocked
// Read or Write must fail with a reset within a second, and everything must be released.
func TestPeerKilled(t *testing.T) {
	for _, tc := range []struct {
		role string
		op   func(s *Stream) error
	}{
		{"source", func(s *Stream) error { _, err := s.WriteTo(io.Discard); return err }},
		{"sink-discard", func(s *Stream) error {
			buf := make([]byte, 64<<10)
			for {
				if _, err := s.Write(buf); err != nil {
					return err
				}
			}
		}},
	} {
		t.Run(tc.role, func(t *testing.T) {
			defer checkLeaks(t)()
			e, err := Listen(Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			s, cmd := startChild(t, e, tc.role, 256<<10)
			defer s.Close()
			errc := make(chan error, 1)
			go func() { errc <- tc.op(s) }()
			time.Sleep(100 * time.Millisecond) // mid-transfer
			killed := time.Now()
			cmd.Process.Kill()
			select {
			case err := <-errc:
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("after SIGKILL: %v, want ECONNRESET", err)
				}
				t.Logf("survivor failed %v after SIGKILL: %v", time.Since(killed), err)
			case <-time.After(time.Second):
				t.Fatal("survivor did not notice the SIGKILLed peer within 1s")
			}
			cmd.Wait()
		})
	}
}

// runMulti connects one stream per "linkID token" line on stdin and echoes on each; it
// prints its confirmLine after each connect, and runs until killed. A line "rusage" instead prints
// the CPU time the process used so far (user + system, in nanoseconds).
func runMulti() error {
	size, _ := strconv.Atoi(os.Getenv("SMC_SHM_SIZE"))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "rusage" {
			fmt.Println(int64(cpuTime()))
			continue
		}
		var id uint32
		var tok uint64
		if _, err := fmt.Sscan(sc.Text(), &id, &tok); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := Connect(ctx, "", id, tok, size, size, MaxRingSize)
		cancel()
		if err != nil {
			return err
		}
		go io.Copy(s, s)
		fmt.Println(confirmLine(s))
	}
	select {}
}

// runRelay is an impostor that replaced the socket file a client looks for: it forwards
// every message, descriptors included, between the client and the real endpoint, and
// prints how many messages the client sent it, once the client hung up.
func runRelay() error {
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: os.Getenv("SMC_SHM_RELAY_FROM"), Net: "unixpacket"})
	if err != nil {
		return err
	}
	fmt.Println("listening")
	c, err := ln.AcceptUnix()
	if err != nil {
		return err
	}
	s, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: os.Getenv("SMC_SHM_RELAY_TO"), Net: "unixpacket"})
	if err != nil {
		return err
	}
	fwd := func(from, to *net.UnixConn) int {
		n := 0
		buf, oob := make([]byte, 4096), make([]byte, 4096)
		for {
			k, oobn, _, _, err := from.ReadMsgUnix(buf, oob)
			if err != nil || k == 0 {
				to.Close()
				return n
			}
			n++
			to.WriteMsgUnix(buf[:k], oob[:oobn], nil)
		}
	}
	go fwd(s, c)
	fmt.Println(fwd(c, s))
	return nil
}

// runStranger keeps opening idle connections to SMC_SHM_ADDR, holding the last 1024,
// and prints "held" once it opened the first 1024; it runs until killed.
func runStranger() error {
	var conns []*net.UnixConn
	for i := 0; ; i++ {
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: os.Getenv("SMC_SHM_ADDR"), Net: "unixpacket"})
		if err == nil {
			conns = append(conns, c)
		}
		if len(conns) > 1024 {
			conns[0].Close()
			conns = conns[1:]
		}
		if i == 1024 {
			fmt.Println("held")
		}
		if i >= 1024 {
			time.Sleep(time.Millisecond)
		}
	}
}

// runOffer is a server that offers one slot to a new link, prints the offer's link ID
// and token, and never reads a Confirm: it waits to be killed.
func runOffer() error {
	size, _ := strconv.Atoi(os.Getenv("SMC_SHM_SIZE"))
	e, err := Listen(Config{})
	if err != nil {
		return err
	}
	o, err := e.Offer(context.Background(), PeerID{}, size, MaxRingSize)
	if err != nil {
		return err
	}
	fmt.Println(o.LinkID(), o.Token())
	select {}
}
