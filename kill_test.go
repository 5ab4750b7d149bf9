package smc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/shm"
)

// Environment of the peer process that TestPeerKilled starts: the test binary
// again, dispatched from TestMain.
const (
	peerRoleEnv = "SMC_TEST_PEER_ROLE"
	peerAddrEnv = "SMC_TEST_PEER_ADDR"
)

// runPeer is the peer process: it dials addr with smc.Dial and, by role, writes or
// reads until it is killed. It reports its mode on stdout first.
func runPeer(role, addr string) int {
	c, err := Dial("tcp", addr)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	fmt.Println("mode", State(c).Mode)
	buf := make([]byte, 64<<10)
	for {
		if role == "writer" {
			_, err = c.Write(buf)
		} else {
			_, err = c.Read(buf)
		}
		if err != nil {
			fmt.Println(role+":", err)
			return 1
		}
	}
}

// resources counts this process's open files, DMB mappings and goroutines.
type resources struct{ fds, maps, goroutines int }

func countResources(t *testing.T) resources {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return resources{len(ents), strings.Count(string(maps), "smc-dmb"), runtime.NumGoroutine()}
}

// settledResources returns the counts once they have stopped changing (for up to 2 s):
// a link finishes its set-up after its first stream started (the link's reader maps the
// peer's poller page when its message arrives), so counts taken right after a warm-up
// may still grow without any leak.
func settledResources(t *testing.T) resources {
	t.Helper()
	prev := countResources(t)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		now := countResources(t)
		if now == prev {
			break
		}
		prev = now
	}
	return prev
}

// waitResources waits up to 2 s for the counts to come back to r.
func waitResources(t *testing.T, r resources) {
	t.Helper()
	var now resources
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if now = countResources(t); now.fds <= r.fds && now.maps <= r.maps && now.goroutines <= r.goroutines {
			return
		}
	}
	t.Errorf("leak: now %+v, at start %+v", now, r)
}

// TestPeerKilled: when the peer process is SIGKILLed mid-transfer, the survivor's
// blocked Read or Write fails within 1 s with a reset, and every fd, mapping and
// goroutine of the connection is released.
func TestPeerKilled(t *testing.T) {
	requireSignalling(t)
	{ // warm up: the process's shm endpoint and signaller stay open for its life
		c, s := pair(t, listenSMC, dialSMC)
		c.Close()
		s.Close()
	}
	for _, role := range []string{"writer", "reader"} {
		t.Run("peer-is-"+role, func(t *testing.T) {
			start := settledResources(t)
			ln, err := Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), peerRoleEnv+"="+role, peerAddrEnv+"="+ln.Addr().String())
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Kill()
			c, err := ln.Accept()
			ln.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if err := c.(*Conn).Handshake(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if line != "mode SMCD\n" || State(c).Mode != ModeSMCD {
				t.Fatalf("peer says %q, we are in %v: want SMC-D on both", line, State(c).Mode)
			}
			// Move data for a while, then kill the peer while our call is blocked
			// or about to block.
			buf := make([]byte, 64<<10)
			var moved int64
			for moved < 64<<20 {
				var n int
				if role == "writer" {
					n, err = c.Read(buf)
				} else {
					n, err = c.Write(buf)
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", moved, err)
				}
				moved += int64(n)
			}
			killed := time.Now()
			cmd.Process.Kill()
			for err == nil {
				if role == "writer" {
					_, err = c.Read(buf)
				} else {
					_, err = c.Write(buf)
				}
			}
			t.Logf("survivor: %v after %v", err, time.Since(killed))
			if d := time.Since(killed); d > time.Second {
				t.Errorf("survivor failed %v after the kill, want within 1s", d)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("survivor got %v, want a reset", err)
			}
			c.Close()
			cmd.Wait()
			waitResources(t, start)
		})
	}
}

var _ net.Conn = (*Conn)(nil)

// checkLeaks fails the test if goroutines, fds or DMB mappings it created outlive
// it. Register it first, so that its check runs after the test's own cleanups.
// The process's shared-memory endpoint and its registry live as long as the
// process, so they are opened before the count. A link outlives its last connection by the link idle
// time, so the test runs with a short one: every link the test set up must be gone
// with its segments by the check, whether or not an earlier test left one behind.
func checkLeaks(t *testing.T) {
	t.Helper()
	if _, err := endpoint(""); err != nil {
		t.Fatal(err)
	}
	processRegistry()
	old := shm.SetLinkIdle(leakLinkIdle)
	t.Cleanup(func() { shm.SetLinkIdle(old) })
	start := countResources(t)
	t.Cleanup(func() { waitResources(t, start) })
}

// leakLinkIdle is the link idle time under checkLeaks: well within waitResources'
// wait, and long enough that a test's back-to-back connections share a link.
const leakLinkIdle = 200 * time.Millisecond
