package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// errEntered is the error of a second [EnterChildCgroup] before the first one's leave.
var errEntered = errors.New("smc: testenv: a child cgroup is already entered")

// EnterChildCgroup is [ChildCgroup] for TestMain, where there is no testing.TB: it
// creates a fresh child cgroup below the process's current cgroup v2 and moves the
// whole process into it, so that a test binary can attach eBPF programs to its own
// cgroup without touching its parent's. leave moves the process back and removes the
// directory. Call it before creating any socket the tests rely on.
func EnterChildCgroup() (dir string, leave func() error, err error) {
	parent, err := OwnCgroup()
	if err != nil {
		return "", nil, err
	}
	if !childCgroups.CompareAndSwap(0, 1) {
		return "", nil, errEntered
	}
	dir, err = os.MkdirTemp(parent, "smc-test-")
	if err != nil {
		childCgroups.Store(0)
		return "", nil, fmt.Errorf("smc: testenv: %w", err)
	}
	os.Chmod(dir, 0o755) // as cgroups usually are: unprivileged test processes look in
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0); err != nil {
		os.Remove(dir)
		childCgroups.Store(0)
		return "", nil, fmt.Errorf("smc: testenv: moving the process into %s: %w", dir, err)
	}
	enteredFrom.Store(&parent)
	leave = func() error {
		defer childCgroups.Store(0)
		if err := os.WriteFile(filepath.Join(parent, "cgroup.procs"), pid, 0); err != nil {
			return fmt.Errorf("smc: testenv: moving the process back to %s: %w", parent, err)
		}
		if err := removeEmptied(dir); err != nil {
			return fmt.Errorf("smc: testenv: %w", err)
		}
		return nil
	}
	return dir, leave, nil
}
