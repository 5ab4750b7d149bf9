package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// TestAttachProbe prepares a child cgroup the test moved into with smc attach, checks
// that smc probe then finds and uses the pins, and detaches.
func TestAttachProbe(t *testing.T) {
	testenv.RequireBPF(t)
	// smc attach mounts bpffs if needed; it stays mounted (other test processes
	// may be using it concurrently).
	dir := testenv.ChildCgroup(t)
	if err := runAttach([]string{"--group=65534", dir}); err != nil {
		t.Fatalf("smc attach: %v", err)
	}
	detached := false
	t.Cleanup(func() {
		if !detached {
			runAttach([]string{"--detach", dir})
		}
	})
	if err := runAttach([]string{dir}); err == nil {
		t.Error("a second smc attach of the same cgroup succeeded")
	}
	out := captureStdout(t, func() {
		if err := runProbe(nil); err != nil {
			t.Errorf("smc probe: %v", err)
		}
	})
	if !strings.Contains(out, "signalling: works (pinned at ") {
		t.Errorf("smc probe does not use the prepared cgroup:\n%s", out)
	}
	if err := runAttach([]string{"--detach", dir}); err != nil {
		t.Fatalf("smc attach --detach: %v", err)
	}
	detached = true
	out = captureStdout(t, func() { runProbe(nil) })
	if strings.Contains(out, "pinned at") {
		t.Errorf("smc probe still finds pins after detach:\n%s", out)
	}
	if err := runAttach([]string{"--detach", dir}); err == nil {
		t.Error("detaching an unprepared cgroup succeeded")
	}
	mnt, _ := testenv.Cgroup2Mount()
	if err := runAttach([]string{filepath.Clean(mnt)}); err == nil || !strings.Contains(err.Error(), "--force-root") {
		t.Errorf("smc attach of the root cgroup: %v, want a refusal", err)
	}
}

// captureStdout runs f with the commands' standard output going to a buffer, and
// returns what it printed.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	var b strings.Builder
	old := stdout
	stdout = &b
	defer func() { stdout = old }()
	f()
	return b.String()
}
