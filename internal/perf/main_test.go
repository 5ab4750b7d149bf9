package perf

import (
	"os"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// cgroupErr says why the tests do not run in a child cgroup.
var cgroupErr error

// TestMain runs the package's tests inside a child cgroup of their own when it can
// (as root), so that the smc transport can reach SMC-D.
func TestMain(m *testing.M) { os.Exit(testenv.RunInChildCgroup(m, &cgroupErr)) }
