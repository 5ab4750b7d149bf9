package smc

import (
	"fmt"
	"os"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// TestMain runs the package's tests inside a child cgroup of their own when it can
// (as root), so that the package's signalling attaches its eBPF program there and
// nowhere else, and removes the cgroup afterwards.
func TestMain(m *testing.M) {
	if os.Getenv(procEnv) != "" && runProc != nil {
		os.Exit(runProc()) // a process of the multi-process tests
	}
	if role := os.Getenv(peerRoleEnv); role != "" {
		os.Exit(runPeer(role, os.Getenv(peerAddrEnv))) // a peer process of TestPeerKilled
	}
	os.Exit(runInChildCgroup(m))
}

// procEnv makes the test binary a process that a multi-process test drives through
// its standard input; runProc is that process's main, where those tests exist.
const procEnv = "SMC_TEST_PROC"

var runProc func() int

// cgroupErr says why the tests do not run in a child cgroup.
var cgroupErr error

func runInChildCgroup(m *testing.M) int {
	if os.Geteuid() != 0 {
		cgroupErr = fmt.Errorf("running as uid %d", os.Geteuid())
		return m.Run()
	}
	_, leave, err := testenv.EnterChildCgroup()
	if err != nil {
		cgroupErr = err
		return m.Run()
	}
	code := m.Run()
	if s, err := signalling(); err == nil {
		s.Close() // detach before the cgroup goes
	}
	if err := leave(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// TestSignallingAvailable: the tests of this package exercise the real signalling
// wherever it can work; CI (root, eBPF) must not quietly test the fallback only.
func TestSignallingAvailable(t *testing.T) {
	testenv.Require(t, "a child cgroup for the test binary", cgroupErr)
	testenv.Require(t, "eBPF signalling", SignallingError())
}
