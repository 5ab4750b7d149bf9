package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	ossignal "os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smc-go/smc/internal/signal"
)

// runIn runs args in the cgroup dir, or in a fresh child of this process's cgroup
// when dir is empty, and returns its exit status as an exitStatus.
func runIn(dir string, keep bool, args []string) error {
	created := false
	if dir == "" {
		if os.Geteuid() != 0 {
			return errors.New("smc: run: creating a cgroup needs root; name a prepared one with --cgroup (smc attach --list)")
		}
		own, _, err := signal.OwnCgroup()
		if err != nil {
			return fmt.Errorf("smc: run: %w", err)
		}
		removeStaleRunCgroups(own)
		dir = filepath.Join(own, fmt.Sprintf("smc-run-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("smc: run: creating a child cgroup: %w", err)
		}
		created = true
	} else if !filepath.IsAbs(dir) {
		mnt, err := cgroup2Mount()
		if err != nil {
			return fmt.Errorf("smc: run: %w", err)
		}
		dir = filepath.Join(mnt, dir)
	}
	status, err := runInDir(dir, args)
	if created && !keep {
		if rerr := removeCgroup(dir); rerr != nil {
			fmt.Fprintf(stderr, "smc run: %v\n", rerr)
		}
	} else if created {
		fmt.Fprintf(stderr, "smc run: kept %s\n", dir)
	}
	if err != nil {
		return err
	}
	if status != 0 {
		return exitStatus(status)
	}
	return nil
}

// runInDir starts args in the cgroup dir and waits for it.
func runInDir(dir string, args []string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("smc: run: %w", err)
	}
	defer f.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	sigs := make(chan os.Signal, 4)
	ossignal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	defer ossignal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("smc: run: starting %s in %s: %w", args[0], dir, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM || s == syscall.SIGHUP {
				cmd.Process.Signal(s)
			}
		case err := <-done:
			var ee *exec.ExitError
			switch {
			case err == nil:
				return 0, nil
			case errors.As(err, &ee):
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal()), nil
				}
				return ee.ExitCode(), nil
			}
			return 0, fmt.Errorf("smc: run: %w", err)
		}
	}
}

// removeCgroup removes a cgroup smc run created once its processes are gone; exited
// processes take a moment to leave it. A cgroup where processes still run is left.
func removeCgroup(dir string) error {
	var err error
	for range 100 {
		if err = os.Remove(dir); err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("processes the command started still run in %s: left in place", dir)
	}
	return err
}

// removeStaleRunCgroups removes the empty smc-run-<pid> cgroups below parent whose
// smc run is gone: one killed with SIGKILL cannot remove its own.
func removeStaleRunCgroups(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "smc-run-*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "smc-run-"))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if ev, err := os.ReadFile(filepath.Join(dir, "cgroup.events")); err == nil && strings.Contains(string(ev), "populated 0") {
			os.Remove(dir)
		}
	}
}

// cgroup2Mount returns where cgroup v2 is mounted.
func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if pf, qf := strings.Fields(pre), strings.Fields(post); ok && len(pf) >= 5 && len(qf) >= 1 && qf[0] == "cgroup2" {
			return pf[4], nil
		}
	}
	return "", errors.New("no cgroup v2 mounted")
}
