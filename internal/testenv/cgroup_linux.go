package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The product code finds mounts and cgroups in one place, internal/signal
// (CgroupMount, OwnCgroup), which knows cgroup namespaces too. This package cannot
// import it, because internal/signal's own tests import this package; tests run on
// the host's cgroup namespace, where the short lookup below is enough.

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted, read from
// /proc/self/mountinfo (/sys/fs/cgroup on pure-v2 systems, /sys/fs/cgroup/unified in
// hybrid mode).
func Cgroup2Mount() (string, error) {
	return mountOf("cgroup2")
}

// BPFFSMount returns where a bpf file system is mounted, from /proc/self/mountinfo.
func BPFFSMount() (string, error) {
	return mountOf("bpf")
}

// mountOf returns the first mount point of a file system type in /proc/self/mountinfo.
func mountOf(fstype string) (string, error) {
	mnt, err := findMount(func(typ, _ string) bool { return typ == fstype })
	if err == nil && mnt == "" {
		err = fmt.Errorf("smc: testenv: no %s file system is mounted", fstype)
	}
	return mnt, err
}

// findMount returns the first mount point in /proc/self/mountinfo whose file system
// type and super options (the fields after " - ") match, or "" if none does.
func findMount(match func(fstype, opts string) bool) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("smc: testenv: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || !match(qf[0], qf[2]) {
			continue
		}
		return unescapeMountinfo(pf[4]), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("smc: testenv: reading mountinfo: %w", err)
	}
	return "", nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// OwnCgroup returns the directory of the process's current cgroup v2, from
// /proc/self/cgroup ("0::/path") and the v2 mount point.
func OwnCgroup() (string, error) {
	mnt, err := Cgroup2Mount()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("smc: testenv: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(mnt, rel), nil
		}
	}
	return "", errors.New("smc: testenv: the process has no cgroup v2 entry in /proc/self/cgroup")
}

// childCgroups counts the child cgroups currently entered, to refuse nesting;
// enteredFrom is the cgroup the process was in before.
var (
	childCgroups atomic.Int32
	enteredFrom  atomic.Pointer[string]
)

// ChildCgroup creates a fresh child cgroup below the process's current cgroup v2,
// moves the whole test process (every thread) into it and returns its directory. A
// cleanup registered on tb moves the process back and removes the directory. It stops
// the test through [Require] when that is not possible.
//
// The move applies to sockets created afterwards only: a socket's cgroup is fixed when
// it is created, so sockets opened before the call stay in the old cgroup, and
// accepted sockets take their listener's cgroup. Because it moves the whole process,
// ChildCgroup must not be used by parallel tests or nested; a second call before the
// first cleanup fails the test.
func ChildCgroup(tb testing.TB) string {
	tb.Helper()
	dir, leave, err := EnterChildCgroup()
	if errors.Is(err, errEntered) {
		tb.Fatal(err)
	}
	Require(tb, "a child cgroup v2", err)
	tb.Cleanup(func() {
		if err := leave(); err != nil {
			tb.Error(err)
		}
	})
	return dir
}

// NewCgroup creates a fresh cgroup v2 below parent and returns its directory, without
// moving anything into it. An empty parent means the cgroup the test binary started
// in: not the child cgroup [EnterChildCgroup] or [ChildCgroup] moved it into, where
// its own signalling may be attached and would run on the new cgroup's sockets too.
// Start processes in it with [CgroupFD]. A cleanup kills whatever still runs in it
// (cgroup.kill) and removes it, with every cgroup created below it.
func NewCgroup(tb testing.TB, parent string) string {
	tb.Helper()
	if parent == "" {
		var err error
		parent, err = OwnCgroup()
		Require(tb, "cgroup v2", err)
		if p := enteredFrom.Load(); p != nil && childCgroups.Load() != 0 {
			parent = *p
		}
	}
	dir, err := os.MkdirTemp(parent, "smc-cg-")
	Require(tb, "a writable cgroup v2 directory", err)
	if err := os.Chmod(dir, 0o755); err != nil { // as cgroups usually are: others look in
		tb.Fatalf("smc: testenv: %v", err)
	}
	tb.Cleanup(func() {
		if err := removeCgroup(dir); err != nil {
			tb.Errorf("smc: testenv: %v", err)
		}
	})
	return dir
}

// removeCgroup kills the processes of dir and of every cgroup below it, and removes
// them, deepest first.
func removeCgroup(dir string) error {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	return removeEmptied(dir)
}

// removeEmptied removes the cgroup directory dir, whose processes were killed or
// moved out, waiting a moment for them to leave; a directory already gone is no error.
func removeEmptied(dir string) error {
	var err error
	for range 200 {
		if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("removing %s: %w", dir, err)
}

// CgroupFD opens a cgroup directory for exec.Cmd's SysProcAttr.CgroupFD (with
// UseCgroupFD), which starts a process inside it. A cleanup closes it.
func CgroupFD(tb testing.TB, dir string) int {
	tb.Helper()
	f, err := os.Open(dir)
	if err != nil {
		tb.Fatalf("smc: testenv: %v", err)
	}
	tb.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// NewNetns creates a named network namespace with loopback up (ip netns add) and
// returns its name; a cleanup deletes it. Run a process in it with
// "ip netns exec NAME" or "nsenter --net=/run/netns/NAME".
func NewNetns(tb testing.TB) string {
	tb.Helper()
	RequireRoot(tb)
	ip := RequireTool(tb, "ip")
	name := fmt.Sprintf("smc-test-%d-%d", os.Getpid(), netnsSeq.Add(1))
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		Require(tb, "a network namespace", fmt.Errorf("ip netns add: %v: %s", err, out))
	}
	tb.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("smc: testenv: ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command(ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		tb.Fatalf("smc: testenv: bringing lo up in %s: %v: %s", name, err, out)
	}
	return name
}

var netnsSeq atomic.Int32

// MemoryCgroupV1 creates a child of the process's own cgroup in the cgroup v1 memory
// hierarchy (found in /proc/self/mountinfo and /proc/self/cgroup), with its
// memory.limit_in_bytes set to limit when limit > 0, and returns its directory. Move
// a process in by writing its PID to the directory's cgroup.procs. A cleanup moves
// whatever still runs in it back to the parent and removes it. It stops the test
// through [Require] where there is no v1 memory controller.
func MemoryCgroupV1(tb testing.TB, limit int64) string {
	tb.Helper()
	RequireRoot(tb)
	mnt, err := v1Mount("memory")
	Require(tb, "a cgroup v1 memory controller", err)
	own, err := v1Own("memory")
	Require(tb, "a cgroup v1 memory controller", err)
	parent := filepath.Join(mnt, own)
	dir, err := os.MkdirTemp(parent, "smc-mem-")
	Require(tb, "a writable cgroup v1 memory directory", err)
	tb.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(pid), 0)
			}
		}
		if err := removeEmptied(dir); err != nil {
			tb.Errorf("smc: testenv: %v", err)
		}
	})
	if limit > 0 {
		if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
			tb.Fatalf("smc: testenv: limiting %s: %v", dir, err)
		}
	}
	return dir
}

// v1Mount returns where the cgroup v1 hierarchy of a controller is mounted.
func v1Mount(controller string) (string, error) {
	mnt, err := findMount(func(fstype, opts string) bool {
		return fstype == "cgroup" && slices.Contains(strings.Split(opts, ","), controller)
	})
	if err == nil && mnt == "" {
		err = fmt.Errorf("smc: testenv: no cgroup v1 %s hierarchy is mounted", controller)
	}
	return mnt, err
}

// v1Own returns the process's cgroup path in a v1 controller's hierarchy.
func v1Own(controller string) (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("smc: testenv: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return f[2], nil
			}
		}
	}
	return "", fmt.Errorf("smc: testenv: the process is in no cgroup v1 %s hierarchy", controller)
}
