package signal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Probe reports what signalling needs and what this process has: the bpf system
// call, kernel BTF, the cgroup v2 mount and the process's cgroup, bpffs and a
// prepared cgroup, privileges, the MPTCP sysctl; then it tries [Open] (which may
// attach to the process's cgroup for a moment) and reports the outcome and the
// program's counters.
func Probe() Report {
	var r Report
	add := func(name string, ok bool, format string, a ...any) {
		r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	if err := mapCreateProbe(); err != nil {
		add("bpf syscall", false, "creating a map: %v (loading needs CAP_BPF; pinned maps need none)", err)
	} else {
		add("bpf syscall", true, "can create maps")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		add("kernel BTF", false, "%v", err)
	} else {
		add("kernel BTF", true, "/sys/kernel/btf/vmlinux")
	}
	cg, err := ownCgroup()
	if err != nil {
		add("cgroup v2", false, "%v", err)
	} else {
		defer cg.release()
		how := "mounted at " + cg.mount
		if cg.private >= 0 {
			how = "no mount in sight (ip netns exec?): mounted privately"
		}
		add("cgroup v2", true, "%s", how)
		detail := fmt.Sprintf("%s (ID %d)", cg.dir, cg.id)
		if cg.private >= 0 {
			detail = fmt.Sprintf("%s (ID %d), through the private mount", cg.rel, cg.id)
		}
		if rel := strings.TrimPrefix(cg.dir, cg.mount); filepath.Clean("/"+rel) != cg.rel {
			detail += fmt.Sprintf("; %s inside this cgroup namespace", cg.rel)
		}
		if cg.id == rootCgroupID {
			detail += " (root cgroup: self-attach refused)"
		}
		add("own cgroup", cg.id != rootCgroupID, "%s", detail)
	}
	if mnt, err := mountOf("bpf"); err != nil {
		add("bpffs", false, "not mounted here (smc attach mounts it; ip netns exec hides it, and then only privileged processes use prepared cgroups: prefer nsenter --net)")
	} else {
		add("bpffs", true, "mounted at %s", mnt)
	}
	if err == nil {
		if dir, ok := findPins(&cg); ok {
			fd, gerr := objGet(filepath.Join(dir, pinNames[mapMarks]), 0)
			if gerr != nil {
				add("prepared cgroup", false, "%s: %v", dir, gerr)
			} else {
				unix.Close(fd)
				add("prepared cgroup", true, "%s, usable by this user", dir)
			}
		} else {
			add("prepared cgroup", false, "none for %s or its ancestors (smc attach)", cg.rel)
		}
		if fd, err := cgroupDirFD(&cg); err == nil {
			if progs, err := queryEffective(fd); err == nil {
				found := classify(progs)
				switch {
				case found.version != nil:
					add("programs", false, "%v", found.version)
				default:
					add("programs", true, "%d sock_ops programs run on this cgroup's sockets: %s, %d others",
						len(progs), map[bool]string{true: "one of them this package's", false: "none of them this package's"}[found.ours != 0], found.foreign)
				}
			} else {
				add("programs", false, "cannot list this cgroup's sock_ops programs: %v", err)
			}
			unix.Close(fd)
		}
	}
	caps, err := capEff()
	switch {
	case err != nil:
		add("privileges", false, "%v", err)
	case caps&(1<<unix.CAP_BPF) != 0 && caps&(1<<unix.CAP_NET_ADMIN) != 0 && caps&(1<<unix.CAP_SYS_ADMIN) != 0:
		add("privileges", true, "CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN: can attach, and join the signalling other processes of the cgroup attached")
	case caps&(1<<unix.CAP_BPF) != 0 && caps&(1<<unix.CAP_NET_ADMIN) != 0:
		add("privileges", true, "CAP_BPF and CAP_NET_ADMIN: can attach; without CAP_SYS_ADMIN cannot join another process's signalling, and attaches a second instance")
	default:
		add("privileges", false, "no CAP_BPF+CAP_NET_ADMIN: needs a prepared cgroup")
	}
	if b, err := os.ReadFile("/proc/sys/net/mptcp/enabled"); err == nil && strings.TrimSpace(string(b)) == "1" {
		add("mptcp", true, "net.mptcp.enabled=1: Go listeners default to MPTCP; marked listeners need SetMultipathTCP(false)")
	} else {
		add("mptcp", true, "not enabled")
	}
	s, err := Open()
	if err != nil {
		r.Err = err
		return r
	}
	defer s.Close()
	if s.slots != nil {
		add("results cache", true, "mapped: ResultAddr needs no system call")
	} else {
		add("results cache", false, "%v: every result costs a bpf system call", s.cacheErr)
	}
	r.Mode = s.Mode()
	add("conflicts", true, "%s", s.ProbeNote())
	if c, err := s.Stats(); err == nil {
		r.Counters = c
	}
	return r
}

// mapCreateProbe creates and closes a one-element array map.
func mapCreateProbe() error {
	attr := struct {
		mapType, keySize, valueSize, maxEntries uint32
		_                                       [64]byte
	}{mapType: unix.BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 4, maxEntries: 1}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return errno
	}
	return unix.Close(int(fd))
}

// capEff returns the effective capability mask from /proc/self/status.
func capEff() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var n uint64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}
