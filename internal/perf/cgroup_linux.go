package perf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smc-go/smc/internal/signal"
)

// A Cgroup is a child cgroup v2 that the process moved itself into, so that the
// library, which attaches its signalling only to a non-root cgroup, can do so. A
// nil *Cgroup means no move was made; its methods do nothing.
type Cgroup struct {
	parent string // the cgroup directory the process came from
	dir    string // the child it moved into
}

// EnterCgroup moves the process into a fresh child cgroup when it runs as root
// in the root cgroup v2, and says in a note what it did. It must run before any
// socket is created: a socket keeps the cgroup it was created in. Without root,
// without cgroup v2, or in a non-root cgroup it does nothing but say so.
func EnterCgroup() (*Cgroup, string, error) {
	dir, root, err := signal.OwnCgroup()
	if err != nil {
		return nil, "no cgroup v2 in sight (" + err.Error() + "); left alone", nil
	}
	if !root {
		return nil, "in " + dir + " (not the root cgroup; the library attaches there itself)", nil
	}
	if os.Geteuid() != 0 {
		return nil, "in the root cgroup, not root: left alone (smc rows fall back)", nil
	}
	removeStaleCgroups(dir)
	cg, err := enterChildCgroup(dir, fmt.Sprintf("smc-perf-%d", os.Getpid()))
	if err != nil {
		return nil, "", err
	}
	return cg, "moved from the root cgroup into " + cg.dir + " (removed on exit)", nil
}

// enterChildCgroup creates the child cgroup name below the cgroup directory parent
// and moves the whole process (every thread) into it.
func enterChildCgroup(parent, name string) (*Cgroup, error) {
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("smc: perf: creating a child cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("smc: perf: moving into the child cgroup %s: %w", dir, err)
	}
	return &Cgroup{parent: parent, dir: dir}, nil
}

// removeStaleCgroups removes the empty smc-perf-<pid> cgroups below parent whose
// process is gone: a run killed with SIGKILL cannot remove its own.
func removeStaleCgroups(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "smc-perf-*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "smc-perf-"))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // not ours, or its process still exists
		}
		if ev, err := os.ReadFile(filepath.Join(dir, "cgroup.events")); err == nil && strings.Contains(string(ev), "populated 0") {
			os.Remove(dir)
		}
	}
}

// Leave moves the process back to the cgroup it came from and removes the child.
// Child processes must have exited first; their exit may take a moment to show.
func (cg *Cgroup) Leave() error {
	if cg == nil {
		return nil
	}
	return leaveChild(cg.parent, cg.dir, "child cgroup")
}

// leaveChild moves the process back to the cgroup directory parent and removes
// its child dir, waiting a moment for exited children to leave it; what names
// the child in errors.
func leaveChild(parent, dir, what string) error {
	if err := os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("smc: perf: moving back from %s %s to %s: %w", what, dir, parent, err)
	}
	var err error
	for range 100 {
		if err = os.Remove(dir); err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("smc: perf: removing %s: %w", what, err)
	}
	return nil
}

// PidCPU returns the user and system CPU time of another process, from
// /proc/<pid>/stat (clock ticks of 10 ms: Linux's USER_HZ is 100 everywhere).
func PidCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("smc: perf: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("smc: perf: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("smc: perf: malformed /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// PlainPeerAttr returns the attributes that start a plain TCP peer (wrk, nginx)
// in the cgroup the process came from, outside the one whose sockets the library's
// signalling program sees, where a plain peer would be; done must be called once
// the process has started. Without a child cgroup the peer stays in ours. With
// dieWithParent the peer is killed when this process ends (strictly: when the
// thread that started it ends, which Go threads rarely do), for long-lived peers.
func (cg *Cgroup) PlainPeerAttr(dieWithParent bool) (attr *syscall.SysProcAttr, done func()) {
	attr = &syscall.SysProcAttr{}
	if dieWithParent {
		attr.Pdeathsig = syscall.SIGKILL
	}
	if cg == nil {
		return attr, func() {}
	}
	f, err := os.Open(cg.parent)
	if err != nil {
		return attr, func() {}
	}
	attr.UseCgroupFD, attr.CgroupFD = true, int(f.Fd())
	return attr, func() { f.Close() }
}

// PlainPeerNote says where PlainPeerAttr starts plain peers.
func (cg *Cgroup) PlainPeerNote() string {
	if cg == nil {
		return "in this process's cgroup"
	}
	return "in " + cg.parent + ", outside the signalling cgroup"
}
