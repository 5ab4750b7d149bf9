package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Nobody is the user and group ID that [UnprivilegedTest] runs as.
const Nobody = 65534

// UnprivilegedTest returns a command that runs the test binary again, as user and
// group 65534 with no supplementary groups and no capabilities (setpriv --reuid=65534
// --regid=65534 --clear-groups), running only the test named run with the extra
// environment env (use a variable to select the child's role). The binary is copied
// into a fresh directory that user 65534 can read, because the go command builds
// tests in a directory only its owner can enter. The caller sets Stdout/Stderr and
// runs it; it requires root and setpriv.
func UnprivilegedTest(tb testing.TB, run string, env ...string) *exec.Cmd {
	tb.Helper()
	prefix, bin := Unprivileged(tb)
	args := append(prefix, bin, "-test.run=^"+run+"$", "-test.count=1", "-test.v")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Unprivileged returns the command prefix that runs a program as user and group
// 65534 with no supplementary groups and no capabilities, and a copy of the test
// binary that user can run (see [UnprivilegedTest]). It requires root and setpriv.
func Unprivileged(tb testing.TB) (prefix []string, bin string) {
	tb.Helper()
	RequireRoot(tb)
	setpriv := RequireTool(tb, "setpriv")
	self, err := os.Executable()
	Require(tb, "the test binary's path", err)
	dir := tb.TempDir()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatalf("smc: testenv: %v", err)
		}
	}
	bin = filepath.Join(dir, filepath.Base(self))
	if err := copyFile(bin, self); err != nil {
		tb.Fatalf("smc: testenv: copying the test binary: %v", err)
	}
	return []string{setpriv,
		fmt.Sprintf("--reuid=%d", Nobody), fmt.Sprintf("--regid=%d", Nobody), "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all"}, bin
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
