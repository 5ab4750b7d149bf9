package perf

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/signal"
	"github.com/smc-go/smc/internal/testenv"
)

// TestChildCgroup moves the test process into a child of its own cgroup v2 and
// back, as smc perf does from the root cgroup, and checks the child is removed.
func TestChildCgroup(t *testing.T) {
	testenv.RequireRoot(t)
	parent, _, err := signal.OwnCgroup()
	testenv.Require(t, "cgroup v2", err)
	name := "smc-perf-test-" + strconv.Itoa(os.Getpid())
	cg, err := enterChildCgroup(parent, name)
	if err != nil {
		t.Fatal(err)
	}
	if now, _, _ := signal.OwnCgroup(); !strings.HasSuffix(now, "/"+name) {
		cg.Leave()
		t.Fatalf("after entering, the process is in %q; want a path ending in /%s", now, name)
	}
	if err := cg.Leave(); err != nil {
		t.Fatal(err)
	}
	if now, _, _ := signal.OwnCgroup(); now != parent {
		t.Errorf("after leaving, the process is in %q; want %q", now, parent)
	}
	if _, err := os.Stat(cg.dir); !os.IsNotExist(err) {
		t.Errorf("child cgroup %s still exists: %v", cg.dir, err)
	}
	if err := (*Cgroup)(nil).Leave(); err != nil {
		t.Errorf("leaving no cgroup: %v", err)
	}

	// A stale child of a process that is gone is removed; a live one is not.
	stale, live := filepath.Join(parent, "smc-perf-999999999"), filepath.Join(parent, "smc-perf-"+strconv.Itoa(os.Getpid()))
	for _, d := range []string{stale, live} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(d)
	}
	removeStaleCgroups(parent)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale cgroup %s not removed: %v", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the cgroup of a live process was removed: %v", err)
	}
}

// TestPidCPU reads the CPU time of this process through /proc and checks it
// against getrusage, which counts the same time more finely.
func TestPidCPU(t *testing.T) {
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	got, err := PidCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if own := ProcessCPU(); got <= 0 || got > own+20*time.Millisecond {
		t.Errorf("PidCPU = %v; getrusage says %v", got, own)
	}
	if _, err := PidCPU(-1); err == nil {
		t.Error("PidCPU(-1) succeeded")
	}
}
