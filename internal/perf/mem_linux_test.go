package perf

import (
	"os"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// touch allocates n bytes and writes every page, so that they are resident.
func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

// TestPidMemory checks that RSS and PSS grow by what the process touches, and
// that a process that does not exist is an error.
func TestPidMemory(t *testing.T) {
	before, err := SelfMemory()
	if err != nil {
		t.Fatal(err)
	}
	if before.RSS <= 0 || before.PSS <= 0 || before.PSS > before.RSS {
		t.Fatalf("implausible memory %+v", before)
	}
	b := touch(64 << 20)
	after, err := PidMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after.RSS - before.RSS; d < 60<<20 {
		t.Errorf("RSS grew by %d bytes after touching 64 MiB", d)
	}
	if d := after.PSS - before.PSS; d < 60<<20 {
		t.Errorf("PSS grew by %d bytes after touching 64 MiB", d)
	}
	b[0] = 2 // keep b alive until here
	if _, err := PidMemory(-1); err == nil {
		t.Error("PidMemory(-1) succeeded")
	}
}

// TestMemCgroup moves the test process into a memory cgroup of its own, as a
// run of the idlemem scenario does, checks that its charge grows by what the
// process touches, and that leaving removes the cgroup.
func TestMemCgroup(t *testing.T) {
	testenv.RequireRoot(t)
	_, err := ownMemCgroup()
	testenv.Require(t, "cgroup v1 memory controller", err)
	cg, note, err := EnterMemCgroup()
	if err != nil {
		t.Fatal(err)
	}
	if cg == nil {
		t.Fatalf("no memory cgroup: %s", note)
	}
	defer cg.Leave()
	if now, err := ownMemCgroup(); err != nil || now != cg.dir {
		t.Fatalf("after entering, the process is in memory cgroup %q (%v); want %q", now, err, cg.dir)
	}
	c0, ok := cg.Charge()
	if !ok {
		t.Fatal("no charge read")
	}
	b := touch(32 << 20)
	c1, _ := cg.Charge()
	if d := c1 - c0; d < 30<<20 {
		t.Errorf("the charge grew by %d bytes after touching 32 MiB", d)
	}
	b[0] = 2
	if err := cg.Leave(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg.dir); !os.IsNotExist(err) {
		t.Errorf("memory cgroup %s still exists: %v", cg.dir, err)
	}
	if now, _ := ownMemCgroup(); now != cg.parent || strings.Contains(now, "smc-perf-") {
		t.Errorf("after leaving, the process is in %q; want %q", now, cg.parent)
	}
	if _, ok := (*MemCgroup)(nil).Charge(); ok {
		t.Error("a nil MemCgroup read a charge")
	}
}
