package signal

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		v    uint32
		want Result
	}{
		{0, Result{}},
		{resultSent | resultReceived | resultDone, Result{}}, // not marked: nothing
		{markMarked, Result{Marked: true}},
		{markMarked | resultSent, Result{Marked: true}}, // not done: no "yes"
		{markMarked | resultDone, Result{Marked: true}},
		{markMarked | resultDone | resultSent, Result{Marked: true, Sent: true}},
		{markMarked | resultDone | resultSent | resultReceived, Result{Marked: true, Sent: true, Received: true}},
		{markMarked | resultDone | resultUnknown, Result{Marked: true, PeerUnknown: true}},
	} {
		if got := decode(tc.v); got != tc.want {
			t.Errorf("decode(%#x) = %+v, want %+v", tc.v, got, tc.want)
		}
	}
}

// TestAttachRefusesRoot checks that the root cgroup is refused without ForceRoot,
// before anything is loaded.
func TestAttachRefusesRoot(t *testing.T) {
	mnt, err := testenv.Cgroup2Mount()
	testenv.Require(t, "cgroup v2", err)
	_, err = AttachCgroup(mnt, AttachOptions{})
	if err == nil || !strings.Contains(err.Error(), "--force-root") {
		t.Fatalf("AttachCgroup(root) = %v, want a refusal naming --force-root", err)
	}
}

// TestOpenCloseNoLeak checks that a self-attached Signaller releases every fd (the
// link among them, which detaches the program) and its sweeper goroutine on Close,
// and that Close is idempotent.
func TestOpenCloseNoLeak(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.ChildCgroup(t)
	before, goroutines := fdCount(t), runtime.NumGoroutine()
	s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	if fdCount(t) <= before {
		t.Fatal("Open holds no fd")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Goroutines and fds of earlier tests (tcpdump's pipes, their readers) may still
	// be winding down: allow a moment for the counts to settle, never to exceed.
	var fds, gs int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if fds, gs = fdCount(t), runtime.NumGoroutine(); fds <= before && gs <= goroutines {
			return
		}
	}
	t.Errorf("after Close: %d fds and %d goroutines, before Open: %d and %d", fds, gs, before, goroutines)
}

// TestResultUnmarked checks that sockets never marked read as the zero Result, and
// that a bad fd is an error rather than a result.
func TestResultUnmarked(t *testing.T) {
	s := selfAttach(t)
	ln := listen(t, s, "tcp4", "127.0.0.1:0", false, false)
	c := dial(t, s, "tcp4", ln.Addr().String(), false, nil)
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if r := resultOf(t, s, c); r != (Result{}) {
		t.Errorf("unmarked client: %+v", r)
	}
	if r := resultOf(t, s, sc); r != (Result{}) {
		t.Errorf("unmarked server: %+v", r)
	}
	if _, err := s.Result(-1); err == nil {
		t.Error("Result(-1) succeeded")
	}
	if err := s.Mark(-1); err == nil {
		t.Error("Mark(-1) succeeded")
	}
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestCounterNames(t *testing.T) {
	seen := map[string]bool{}
	for i, n := range counterNames {
		if n == "" || seen[n] {
			t.Errorf("counter %d: name %q empty or repeated", i, n)
		}
		seen[n] = true
	}
}
