package signal

import (
	"errors"
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
func Probe() (r Report) {
	var f probeFacts
	defer func() { r.Advice = f.advice(r.Err) }()
	add := func(name string, ok bool, format string, a ...any) {
		r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	}
	if err := mapCreateProbe(); err != nil {
		add("bpf syscall", false, "creating a map: %v (loading needs CAP_BPF; pinned maps need none)", err)
	} else {
		add("bpf syscall", true, "can create maps")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		f.noBTF = true
		add("kernel BTF", false, "%v", err)
	} else {
		add("kernel BTF", true, "/sys/kernel/btf/vmlinux")
	}
	cg, err := ownCgroup()
	if err != nil {
		f.noCgroup = true
		add("cgroup v2", false, "%v", err)
	} else {
		defer cg.release()
		how := "mounted at " + cg.mount
		if cg.private >= 0 {
			how = "no mount in sight (ip netns exec?): mounted privately"
			f.private = true
		}
		add("cgroup v2", true, "%s", how)
		f.mount = cg.mount
		detail := fmt.Sprintf("%s (ID %d)", cg.dir, cg.id)
		if cg.private >= 0 {
			detail = fmt.Sprintf("%s (ID %d), through the private mount", cg.rel, cg.id)
		}
		if rel := strings.TrimPrefix(cg.dir, cg.mount); filepath.Clean("/"+rel) != cg.rel {
			detail += fmt.Sprintf("; %s inside this cgroup namespace", cg.rel)
		}
		if cg.id == rootCgroupID {
			detail += " (root cgroup: self-attach refused)"
			f.rootCgroup = true
		}
		add("own cgroup", cg.id != rootCgroupID, "%s", detail)
	}
	if mnt, err := mountOf("bpf"); err != nil {
		f.noBPFFS = true
		add("bpffs", false, "not mounted here (smc attach mounts it; ip netns exec hides it, and then only privileged processes use prepared cgroups: prefer nsenter --net)")
	} else {
		add("bpffs", true, "mounted at %s", mnt)
	}
	if err == nil {
		if dir, ok := findPins(&cg); ok {
			fd, gerr := objGet(filepath.Join(dir, pinNames[mapMarks]), 0)
			if gerr != nil {
				f.pinsRefused = dir
				add("prepared cgroup", false, "%s: %v", dir, gerr)
			} else {
				unix.Close(fd)
				f.prepared = true
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
		f.privileged = true
		add("privileges", true, "CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN: can attach, and join the signalling other processes of the cgroup attached")
	case caps&(1<<unix.CAP_BPF) != 0 && caps&(1<<unix.CAP_NET_ADMIN) != 0:
		f.privileged = true
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

// probeFacts are what Probe found that decides its advice.
type probeFacts struct {
	noBTF, noCgroup, noBPFFS bool
	private                  bool   // no cgroup v2 mount in sight (ip netns exec)
	rootCgroup               bool   // the process is in the root cgroup
	prepared                 bool   // a prepared cgroup's pins are usable
	pinsRefused              string // a prepared cgroup whose pins this user may not open
	privileged               bool   // CAP_BPF and CAP_NET_ADMIN
	mount                    string // where cgroup v2 is mounted
}

// advice says what to do, given what Probe found and how Open ended.
func (f probeFacts) advice(openErr error) []string {
	var a []string
	mnt := f.mount
	if mnt == "" || f.private {
		mnt = "/sys/fs/cgroup"
	}
	after := "Then run both ends of a connection with this library on this host: `smc ss` lists their connections " +
		"and why each is in TCP mode, `smc stats` counts what they negotiated."
	switch {
	case openErr == nil:
		return []string{"This process can announce SMC, and so can programs started the same way (same user, same cgroup). " +
			"R" + strings.TrimPrefix(after, "Then r")}
	case errors.Is(openErr, ErrConflict):
		a = append(a, "Another program on this cgroup's sockets writes the SMC option, or another version of this "+
			"library's program is attached: announcing SMC could put CLC messages into applications' streams, so it is off. "+
			"Find the program with `bpftool cgroup tree`; detach an old version's prepared cgroup with `smc attach --list` "+
			"and `smc attach --detach ID`, then attach again.")
	case f.noCgroup:
		a = append(a, "No cgroup v2 is mounted: mount it (`mount -t cgroup2 none /sys/fs/cgroup`) or boot with "+
			"systemd.unified_cgroup_hierarchy=1.")
	case !f.privileged && !f.prepared:
		if f.pinsRefused != "" {
			a = append(a, fmt.Sprintf("The cgroup prepared at %s is not open to this user: ask root to add the user to the group given "+
				"to smc attach (`ls -l %s` shows it), or to prepare it again with --group.", f.pinsRefused, f.pinsRefused))
		} else {
			a = append(a, "This user may not load eBPF programs and no prepared cgroup serves this process: ask root to run "+
				"`smc attach --group=GROUP CGROUP` once (GROUP: a group of this user), then start the program with "+
				"`smc run --cgroup=CGROUP -- PROGRAM`, or as a systemd service in that cgroup.")
		}
	case f.rootCgroup:
		a = append(a, "This process runs in the root cgroup, where the library does not attach (its program would run on "+
			"every TCP socket of the host). Start the program with `smc run -- PROGRAM` (as root: it makes a child cgroup "+
			"for it), or in any non-root cgroup: a systemd service, a container, or `mkdir "+mnt+"/NAME; echo $$ > "+
			mnt+"/NAME/cgroup.procs` before starting it.")
	case f.noBTF:
		a = append(a, "The kernel has no BTF (/sys/kernel/btf/vmlinux): use a kernel built with CONFIG_DEBUG_INFO_BTF.")
	default:
		a = append(a, "See the error above; `smc probe` as root shows what a privileged process could do.")
	}
	if f.private {
		a = append(a, "No cgroup v2 or bpffs mount is in sight, as after `ip netns exec`: prefer `nsenter --net=/run/netns/NAME`, "+
			"which keeps /sys.")
	}
	if f.noBPFFS && !f.privileged {
		a = append(a, "bpffs is not mounted here, so prepared cgroups cannot be found: `mount -t bpf bpf /sys/fs/bpf` "+
			"(smc attach mounts it).")
	}
	return append(a, "Until then every connection is plain TCP (reason SIGNALLING_UNAVAILABLE): nothing breaks. "+after)
}
