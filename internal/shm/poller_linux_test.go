package shm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// multiPeer is a "multi" child process and the streams we connected to it.
type multiPeer struct {
	streams []*Stream
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *bufio.Scanner
}

// startMulti starts a "multi" child and connects n streams of MinRingSize rings to it,
// all of them echoed by the child over one link, and waits for the child's poller page.
func startMulti(t *testing.T, e *Endpoint, peer PeerID, n int) *multiPeer {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd, out := startHelper(t, "multi", pr,
		"SMC_SHM_SIZE="+strconv.Itoa(MinRingSize), "SMC_SHM_SPIN="+time.Duration(spinNanos.Load()).String())
	pr.Close()
	m := &multiPeer{cmd: cmd, stdin: pw, out: out}
	ok := false
	defer func() {
		if !ok {
			m.stop()
		}
	}()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		o, err := e.Offer(ctx, peer, MinRingSize, MaxRingSize)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(pw, o.LinkID(), o.Token())
		cancel()
		s, err := bindChild(o, m.line(t))
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		m.streams = append(m.streams, s)
	}
	// The child's poller page, which makes our streams ring its poller, not its streams.
	waitFor(t, "the child's poller page", func() bool { return m.streams[0].link.peerPoll.Load() != nil })
	ok = true
	return m
}

// line reads a line the child printed.
func (m *multiPeer) line(t *testing.T) string {
	t.Helper()
	if !m.out.Scan() {
		t.Fatalf("child: %v", m.out.Err())
	}
	return m.out.Text()
}

// stop closes the streams and kills the child.
func (m *multiPeer) stop() {
	for _, s := range m.streams {
		s.Close()
	}
	stopHelper(m.cmd)
	m.stdin.Close()
}

// waitReadsParked waits until a Read on each stream, ours and the child's, announced
// its sleep.
func waitReadsParked(t *testing.T, streams []*Stream) {
	t.Helper()
	waitFor(t, "every Read in both processes to announce its sleep", func() bool {
		for _, s := range streams {
			if s.rxh.consCtl.sleep.Load() == 0 || s.txh.consCtl.sleep.Load() == 0 {
				return false
			}
		}
		return true
	})
}

// waitAll runs f for every stream in a goroutine of its own and returns once all did,
// reporting their errors.
func waitAll(t *testing.T, streams []*Stream, f func(i int, s *Stream) error) func() {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i, s); err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		}()
	}
	return func() {
		t.Helper()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// TestManyWaitersCrossProcess has 256 streams to a child process all waiting at once,
// in both processes and in both directions, and checks that every one gets its data:
// no wake-up is lost when many streams of a link wait on one poller (or, without
// spinning, when every wait parks at once).
func TestManyWaitersCrossProcess(t *testing.T) {
	for _, spin := range []time.Duration{DefaultSpin, 0} {
		t.Run("spin="+spin.String(), func(t *testing.T) {
			defer checkLeaks(t)()
			defer SetSpin(SetSpin(spin))
			e, err := Listen(Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			const n = 256
			m := startMulti(t, e, PeerID{20, byte(spin)}, n)
			defer m.stop()
			streams := m.streams

			// Data: our Reads wait, and so do the child's (inside its io.Copy).
			done := waitAll(t, streams, func(i int, s *Stream) error {
				s.SetReadDeadline(time.Now().Add(30 * time.Second))
				got := make([]byte, 8)
				if _, err := io.ReadFull(s, got); err != nil {
					return err
				}
				if want := fmt.Sprintf("%08d", i); string(got) != want {
					return fmt.Errorf("read %q, want %q", got, want)
				}
				return nil
			})
			waitReadsParked(t, streams)
			for i, s := range streams {
				if _, err := s.Write([]byte(fmt.Sprintf("%08d", i))); err != nil {
					t.Fatal(err)
				}
			}
			done()

			// Space: our Writes fill the child's ring, the child's echo fills ours, and
			// then the Writes in both processes wait for space.
			const total = 3 * MinRingSize
			pattern := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5a}, total/3) }
			done = waitAll(t, streams, func(i int, s *Stream) error {
				s.SetWriteDeadline(time.Now().Add(30 * time.Second))
				_, err := s.Write(pattern(i))
				return err
			})
			waitFor(t, "every Write in both processes to announce its sleep", func() bool {
				for _, s := range streams {
					if s.txh.prodCtl.sleep.Load() == 0 || s.rxh.prodCtl.sleep.Load() == 0 {
						return false
					}
				}
				return true
			})
			readDone := waitAll(t, streams, func(i int, s *Stream) error {
				s.SetReadDeadline(time.Now().Add(30 * time.Second))
				got := make([]byte, total)
				if _, err := io.ReadFull(s, got); err != nil {
					return err
				}
				if !bytes.Equal(got, pattern(i)) {
					return fmt.Errorf("echo of %d bytes differs", total)
				}
				return nil
			})
			done()
			readDone()
		})
	}
}

// TestIdleLinkNoCPU: with 64 streams between two processes, each with a Read waiting on
// both sides and no traffic, neither process uses more than 5% of a CPU over 2 s.
// Spinning instead of sleeping (a poller or a waiter that never parks) uses one CPU.
func TestIdleLinkNoCPU(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 64
	m := startMulti(t, e, PeerID{21}, n)
	defer m.stop()
	streams := m.streams
	// Traffic first, so that both pollers ran and went to sleep.
	waitAll(t, streams, func(i int, s *Stream) error {
		buf := make([]byte, 64)
		for range 100 {
			if _, err := s.Write(buf); err != nil {
				return err
			}
			if _, err := io.ReadFull(s, buf); err != nil {
				return err
			}
		}
		return nil
	})()
	readers := waitAll(t, streams, func(i int, s *Stream) error {
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("read on an idle stream: %v, want it closed", err)
		}
		return nil
	})
	waitReadsParked(t, streams)
	childCPU := func() time.Duration {
		fmt.Fprintln(m.stdin, "rusage")
		d, err := strconv.ParseInt(m.line(t), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(d)
	}
	const period, bound = 2 * time.Second, 100 * time.Millisecond
	our0, child0 := cpuTime(), childCPU()
	time.Sleep(period)
	our, child := cpuTime()-our0, childCPU()-child0
	t.Logf("CPU over %v idle: this process %v, the child %v", period, our, child)
	if our > bound || child > bound {
		t.Errorf("idle link: this process used %v of CPU over %v, the child %v; want at most %v each", our, period, child, bound)
	}
	for _, s := range streams {
		s.Close()
	}
	readers()
}

// TestPingPongParked makes thousands of round trips to an echoing child with spinning
// off in both processes, so that every wait parks and every answer needs a wake-up:
// a poller that lets a sleep it announced be answered twice, or not at all, stalls.
func TestPingPongParked(t *testing.T) {
	defer checkLeaks(t)()
	defer SetSpin(SetSpin(0))
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, cmd := startChild(t, e, "echo", MinRingSize)
	defer cmd.Wait()
	defer s.Close()
	buf := make([]byte, 64)
	for i := range 5000 {
		s.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Write(buf); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
	}
	s.CloseWrite()
}
