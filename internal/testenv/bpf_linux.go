package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities needed to load and attach cgroup eBPF programs.
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capBPF      = 39
)

// RequireBPF requires what loading and attaching a cgroup sock_ops program needs:
// CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN, as root has), kernel BTF at
// /sys/kernel/btf/vmlinux (socket-storage maps need it), and a bpf system call that
// creates maps.
func RequireBPF(tb testing.TB) {
	tb.Helper()
	Require(tb, "eBPF", bpfUsable())
}

func bpfUsable() error {
	caps, err := effectiveCaps()
	if err != nil {
		return err
	}
	has := func(c uint) bool { return caps&(1<<c) != 0 }
	if !(has(capSysAdmin) || has(capBPF) && has(capNetAdmin)) {
		return fmt.Errorf("smc: testenv: missing CAP_BPF and CAP_NET_ADMIN (effective capabilities %#x)", caps)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("smc: testenv: kernel BTF: %w", err)
	}
	// struct bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
	attr := [4]uint32{unix.BPF_MAP_TYPE_ARRAY, 4, 4, 1}
	var pad [64]byte // the rest of the attribute, zero
	buf := append(unsafe.Slice((*byte)(unsafe.Pointer(&attr[0])), 16), pad[:]...)
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return fmt.Errorf("smc: testenv: bpf(BPF_MAP_CREATE): %w", errno)
	}
	unix.Close(int(fd))
	return nil
}

// effectiveCaps returns the CapEff mask of /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("smc: testenv: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("smc: testenv: parsing CapEff: %w", err)
			}
			return n, nil
		}
	}
	return 0, errors.New("smc: testenv: no CapEff line in /proc/self/status")
}
