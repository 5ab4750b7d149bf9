// Package testenv holds the helpers tests use to require privileges, kernel features
// and external tools. A missing requirement skips the test with a reason, except when
// the environment variable SMC_REQUIRE_PRIVILEGED=1 is set (CI sets it: CI runs as root
// with eBPF), where it fails the test instead, so that nothing CI can run hides behind a
// skip.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Strict reports whether missing requirements fail tests instead of skipping them
// (SMC_REQUIRE_PRIVILEGED=1).
func Strict() bool { return os.Getenv("SMC_REQUIRE_PRIVILEGED") == "1" }

// Require stops the test when err is non-nil, naming what is missing: it fails the test
// under SMC_REQUIRE_PRIVILEGED=1 and skips it otherwise.
func Require(tb testing.TB, what string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("requires %s: %v", what, err)
	if Strict() {
		tb.Fatalf("%s (SMC_REQUIRE_PRIVILEGED=1)", msg)
	}
	tb.Skip(msg)
}

// RequireRoot requires an effective user ID of 0.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	var err error
	if os.Geteuid() != 0 {
		err = fmt.Errorf("running as uid %d", os.Geteuid())
	}
	Require(tb, "root", err)
}

// RequireTool requires an executable on PATH and returns its path.
func RequireTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	Require(tb, "the "+name+" command", err)
	return path
}

// RunInChildCgroup runs m's tests, as root inside a fresh child cgroup
// ([EnterChildCgroup]) so that the library attaches its eBPF program there and
// nowhere else, and returns their exit code, 1 if leaving the cgroup fails. When it
// cannot enter one it runs them where they are, after storing why in *why.
func RunInChildCgroup(m *testing.M, why *error) int {
	if os.Geteuid() != 0 {
		*why = fmt.Errorf("running as uid %d", os.Geteuid())
		return m.Run()
	}
	_, leave, err := EnterChildCgroup()
	if err != nil {
		*why = err
		return m.Run()
	}
	code := m.Run()
	if err := leave(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// GoTool returns the go command that built the running test: the one in its GOROOT,
// else the first on PATH.
func GoTool() (string, error) {
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	bin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command: %w", err)
	}
	return bin, nil
}
