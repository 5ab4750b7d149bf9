package perf

import (
	"fmt"
	"os"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// cgroupErr says why the tests do not run in a child cgroup.
var cgroupErr error

// TestMain runs the package's tests inside a child cgroup of their own when it can
// (as root), so that the library's signalling attaches its eBPF program there and
// the smc transport can reach SMC-D, and removes the cgroup afterwards.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		cgroupErr = fmt.Errorf("running as uid %d", os.Geteuid())
		os.Exit(m.Run())
	}
	_, leave, err := testenv.EnterChildCgroup()
	if err != nil {
		cgroupErr = err
		os.Exit(m.Run())
	}
	code := m.Run()
	if err := leave(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
