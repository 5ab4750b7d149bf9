package perf

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
)

func TestParseCgroup2Mount(t *testing.T) {
	tests := []struct {
		name, mountinfo, mnt, root string
		ok                         bool
	}{
		{"hybrid", "25 30 0:23 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified", "/", true},
		{"pure v2 with optional fields", "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup", "/", true},
		{"namespaced root, escaped space", `50 40 0:26 /a\040b /mnt/cg\040v2 rw - cgroup2 none rw` + "\n", "/mnt/cg v2", "/a b", true},
		{"v1 only", "35 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "", "", false},
		{"empty", "", "", "", false},
	}
	for _, tt := range tests {
		mnt, root, ok := parseCgroup2Mount(tt.mountinfo)
		if mnt != tt.mnt || root != tt.root || ok != tt.ok {
			t.Errorf("%s: parseCgroup2Mount = %q, %q, %v; want %q, %q, %v", tt.name, mnt, root, ok, tt.mnt, tt.root, tt.ok)
		}
	}
}

func TestParseOwnCgroup(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"9:name=systemd:/\n4:memory:/x\n0::/\n", "/", true},
		{"0::/system.slice/foo.service\n", "/system.slice/foo.service", true},
		{"4:memory:/x\n", "", false},
		{"0::\n", "", false},
	}
	for _, tt := range tests {
		got, ok := parseOwnCgroup(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseOwnCgroup(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestChildCgroup moves the test process into a child of its own cgroup v2 and
// back, as smc perf does from the root cgroup, and checks the child is removed.
func TestChildCgroup(t *testing.T) {
	testenv.RequireRoot(t)
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mnt, root, ok := parseCgroup2Mount(string(mountinfo))
	if !ok {
		testenv.Require(t, "cgroup v2", os.ErrNotExist)
	}
	self, _ := os.ReadFile("/proc/self/cgroup")
	own, ok := parseOwnCgroup(string(self))
	if !ok {
		t.Fatalf("no cgroup v2 line in %q", self)
	}
	parent := filepath.Join(mnt, strings.TrimPrefix(own, root))
	name := "smc-perf-test-" + strconv.Itoa(os.Getpid())
	cg, err := enterChildCgroup(parent, name)
	if err != nil {
		t.Fatal(err)
	}
	self, _ = os.ReadFile("/proc/self/cgroup")
	if now, _ := parseOwnCgroup(string(self)); !strings.HasSuffix(now, "/"+name) {
		cg.Leave()
		t.Fatalf("after entering, the process is in %q; want a path ending in /%s", now, name)
	}
	if err := cg.Leave(); err != nil {
		t.Fatal(err)
	}
	self, _ = os.ReadFile("/proc/self/cgroup")
	if now, _ := parseOwnCgroup(string(self)); now != own {
		t.Errorf("after leaving, the process is in %q; want %q", now, own)
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
