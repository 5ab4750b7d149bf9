package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Scan returns the processes whose registry this process may read: every process
// for root, this user's for others. errs lists the registries that were found but
// could not be read or failed validation; processes that may not be looked at are
// skipped silently. Close each Process when done.
func Scan() (procs []*Process, errs []error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, []error{fmt.Errorf("smc: registry: %w", err)}
	}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid <= 0 {
			continue
		}
		ps, err := open(pid)
		if err != nil {
			errs = append(errs, err)
		}
		procs = append(procs, ps...)
	}
	return procs, errs
}

// open reads the registry of process pid: none with no error when it has none or
// may not be looked at. A process has one registry, unless it holds several
// copies of the library (tests do).
func open(pid int) ([]*Process, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil // gone, or not ours to read
	}
	var regPaths []string
	sockets := make(map[uint64]bool)
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue
		}
		if link == "/memfd:"+fileName+" (deleted)" {
			regPaths = append(regPaths, filepath.Join(dir, fd.Name()))
		} else if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				sockets[ino] = true
			}
		}
	}
	if len(regPaths) == 0 {
		return nil, nil
	}
	var name string
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		name = printable([]byte(strings.TrimSpace(string(b))))
	}
	var netns uint64
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil {
		if s, ok := strings.CutPrefix(link, "net:["); ok {
			netns, _ = strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
		}
	}
	var procs []*Process
	var errs []error
	for _, path := range regPaths {
		mem, err := mapFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("smc: registry: pid %d: %w", pid, err))
			continue
		}
		p := &Process{PID: pid, Name: name, Sockets: sockets, NetNS: netns}
		if err := p.parse(mem); err != nil {
			unix.Munmap(mem)
			errs = append(errs, fmt.Errorf("smc: registry: pid %d: %w", pid, err))
			continue
		}
		procs = append(procs, p)
	}
	return procs, errors.Join(errs...)
}

// mapFile maps a registry read-only after checking that no access to the mapping can
// fault: a regular file on tmpfs, sealed against shrinking. The seal is checked before
// the size is read: from then on the file never gets smaller than that size. (A size
// read first may be the one before a shrink that the seal followed.)
func mapFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return nil, err
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, errors.New("not a regular file")
	case fs.Type != unix.TMPFS_MAGIC:
		return nil, errors.New("not on tmpfs")
	case seals&unix.F_SEAL_SHRINK == 0:
		return nil, errors.New("not sealed against shrinking")
	case st.Size < HeaderSize || st.Size > HeaderSize+MaxRecords*RecordSize:
		return nil, fmt.Errorf("size %d out of range", st.Size)
	}
	return unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
}

// Close unmaps the process's registry; its entries' counts can no longer be read.
func (p *Process) Close() error {
	if p.mem == nil {
		return nil
	}
	err := unix.Munmap(p.mem)
	p.mem = nil
	return err
}

// readWords reads four 64-bit words at the given addresses of process pid.
func readWords(pid int, addrs [4]uint64) ([4]uint64, error) {
	var w [4]uint64
	local := []unix.Iovec{{Base: (*byte)(unsafe.Pointer(&w[0]))}}
	local[0].SetLen(len(w) * 8)
	remote := make([]unix.RemoteIovec, len(addrs))
	for i, a := range addrs {
		if a == 0 || a%8 != 0 {
			return w, errors.New("bad cursor address")
		}
		remote[i] = unix.RemoteIovec{Base: uintptr(a), Len: 8}
	}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return w, err
	}
	if n != len(w)*8 {
		return w, errors.New("short read")
	}
	return w, nil
}
