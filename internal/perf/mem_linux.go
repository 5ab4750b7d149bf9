package perf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Memory is what a process holds, from /proc/<pid>/smaps_rollup: its resident
// set, and its proportional set, where a page shared by n processes counts 1/n
// (so the PSS of a client and a server that share a ring add up to the ring once).
type Memory struct {
	RSS int64 `json:"rss"` // bytes
	PSS int64 `json:"pss"` // bytes
	// PTE is the memory of the process's page tables (VmPTE of
	// /proc/<pid>/status): kernel memory, in neither RSS nor PSS, that grows with
	// every mapping touched.
	PTE int64 `json:"pte"`
}

// SelfMemory collects garbage, returns free memory to the system, and reads the
// memory of this process: what it holds for live objects and mappings, not what
// the garbage collector has yet to free.
func SelfMemory() (Memory, error) {
	runtime.GC()
	debug.FreeOSMemory()
	return PidMemory(os.Getpid())
}

// PidMemory reads the RSS and PSS of the process pid.
func PidMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("smc: perf: %w", err)
	}
	var m Memory
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.RSS, found = kb<<10, found+1
		case "Pss:":
			m.PSS, found = kb<<10, found+1
		}
	}
	if found != 2 {
		return Memory{}, fmt.Errorf("smc: perf: no Rss and Pss in /proc/%d/smaps_rollup", pid)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("smc: perf: %w", err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmPTE:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					m.PTE = kb << 10
					return m, nil
				}
			}
		}
	}
	return Memory{}, fmt.Errorf("smc: perf: no VmPTE in /proc/%d/status", pid)
}

// A MemCgroup is a child memory cgroup (cgroup v1's memory controller) that the
// process moved into, so that the charge of what it and the server it starts
// allocate can be read apart from the rest of the machine. TCP socket memory is
// accounted there too: cgroup v1 charges it only to a cgroup with a TCP limit,
// which it gets (unlimited), as cgroup v2 always charges it. A nil *MemCgroup
// reads no charge; its methods do nothing.
type MemCgroup struct {
	parent, dir string
}

// EnterMemCgroup moves the process into a fresh child of its memory cgroup, when
// it runs as root on a machine whose memory controller is mounted as cgroup v1,
// and says in a note what it did. Its children (the server) start there too.
func EnterMemCgroup() (*MemCgroup, string, error) {
	if os.Geteuid() != 0 {
		return nil, "not root: no memory cgroup of its own", nil
	}
	parent, err := ownMemCgroup()
	if err != nil {
		return nil, "no cgroup v1 memory controller in sight (" + err.Error() + ")", nil
	}
	removeStaleCgroups(parent)
	dir := filepath.Join(parent, fmt.Sprintf("smc-perf-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("smc: perf: creating a memory cgroup: %w", err)
	}
	cg := &MemCgroup{parent: parent, dir: dir}
	tcp := "TCP memory accounted"
	if err := os.WriteFile(filepath.Join(dir, "memory.kmem.tcp.limit_in_bytes"), []byte("-1"), 0); err != nil {
		tcp = "TCP memory not accounted (" + err.Error() + ")"
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		os.Remove(dir)
		return nil, "", fmt.Errorf("smc: perf: moving into the memory cgroup %s: %w", dir, err)
	}
	return cg, "client and server in " + dir + " (" + tcp + "; removed on exit)", nil
}

// ownMemCgroup returns the directory of this process's cgroup v1 memory cgroup.
func ownMemCgroup() (string, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	var mnt, root string
	for _, line := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(g[2], ",") {
			if opt == "memory" {
				root, mnt = f[3], f[4]
			}
		}
	}
	if mnt == "" {
		return "", errors.New("no cgroup v1 mount with the memory controller")
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(cg), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				rel, err := filepath.Rel(root, f[2])
				if err != nil || strings.HasPrefix(rel, "..") {
					return "", fmt.Errorf("memory cgroup %s outside the mount's root %s", f[2], root)
				}
				return filepath.Join(mnt, rel), nil
			}
		}
	}
	return "", errors.New("no memory line in /proc/self/cgroup")
}

// Charge returns the memory cgroup's charge in bytes: its memory usage (user
// pages, shared memory, kernel objects) plus its TCP socket memory. It reports
// false without a cgroup.
func (cg *MemCgroup) Charge() (int64, bool) {
	if cg == nil {
		return 0, false
	}
	var total int64
	for _, f := range []string{"memory.usage_in_bytes", "memory.kmem.tcp.usage_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(cg.dir, f))
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, false
		}
		total += n
	}
	return total, true
}

// Leave moves the process back to the memory cgroup it came from and removes the
// child, whose remaining charges the kernel hands to the parent. The server must
// have exited first.
func (cg *MemCgroup) Leave() error {
	if cg == nil {
		return nil
	}
	return leaveChild(cg.parent, cg.dir, "memory cgroup")
}
