package signal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// One signalling for a cgroup hierarchy.
//
// The kernel runs every sock_ops program attached to a socket's cgroup and to its
// ancestors, nearest first. Processes share one instance of the program (its maps
// and its link) per cgroup: a process with CAP_BPF and CAP_NET_ADMIN asks the kernel
// which programs run on its cgroup's sockets (BPF_PROG_QUERY, effective), and joins
// the nearest instance of this program, by its pins when it was prepared with
// [AttachCgroup], by its IDs otherwise; only when there is none does it load the
// program and attach it to its own cgroup. An exclusive flock on the cgroup's
// directory makes the processes of one cgroup take that decision one at a time, so
// that two that start together share an instance. Every process that uses a
// self-attached instance holds a file descriptor of its link, so that the instance
// stays attached as long as any of them lives and is detached by the kernel when
// the last one exits or is killed: nothing is pinned, and nothing is stranded.
//
// Sharing is for cost, not for correctness: the program is written so that any
// number of instances on one socket agree (bpf/sockops.c), so a process that cannot
// join (no CAP_SYS_ADMIN to open another's objects by ID) attaches one more.

// errNoPrivilege means this process cannot ask which programs run on its cgroup, so
// it can only use prepared pins.
var errNoPrivilege = errors.New("no CAP_NET_ADMIN to query the cgroup's programs")

// rootCgroupID is the ID of the root of a cgroup v2 hierarchy.
const rootCgroupID = 1

// openPrivileged opens the instance of the program that runs on cg's sockets,
// attaching one to cg if there is none. It returns errNoPrivilege when the process
// may not query the cgroup's programs.
func openPrivileged(cg *cgroup) (*Signaller, error) {
	fd, err := cgroupDirFD(cg)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return nil, errNoPrivilege
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("opening cgroup %s: %w", cg.rel, err))
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(fd)
		}
	}()
	if caps, err := capEff(); err == nil && caps&(1<<unix.CAP_NET_ADMIN) == 0 {
		return nil, errNoPrivilege
	}
	if _, err := queryEffective(fd); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, ebpf.ErrNotSupported) {
			return nil, errNoPrivilege
		}
		return nil, unavailable(fmt.Errorf("querying the programs of cgroup %s: %w", cg.rel, err))
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return nil, unavailable(fmt.Errorf("locking cgroup %s: %w", cg.rel, err))
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	progs, err := queryEffective(fd)
	if err != nil {
		return nil, unavailable(fmt.Errorf("querying the programs of cgroup %s: %w", cg.rel, err))
	}
	found := classify(progs)
	if found.version != nil {
		return nil, conflict(found.version)
	}
	var s *Signaller
	if found.ours != 0 {
		s, err = join(cg, found.ours)
	}
	if s == nil {
		if cg.id == rootCgroupID {
			return nil, unavailable(errors.New("process is in the root cgroup; run smc attach or start it in a child cgroup"))
		}
		if s, err = attachOwn(fd, cg); err != nil {
			return nil, err
		}
	}
	s.watchFD, keep = fd, true
	s.seen, s.foreign = progs, found.foreign
	return s, nil
}

// queryEffective returns the IDs of the sock_ops programs that run on the sockets
// of the cgroup whose directory fd is given, in the order they run.
func queryEffective(fd int) ([]ebpf.ProgramID, error) {
	res, err := link.QueryPrograms(link.QueryOptions{
		Target: fd, Attach: ebpf.AttachCGroupSockOps, QueryFlags: unix.BPF_F_QUERY_EFFECTIVE,
	})
	if err != nil {
		return nil, err
	}
	ids := make([]ebpf.ProgramID, len(res.Programs))
	for i, p := range res.Programs {
		ids[i] = p.ID
	}
	return ids, nil
}

// What classify found among a cgroup's programs.
type programs struct {
	ours    ebpf.ProgramID // the first instance of this package's program, or 0
	version error          // another version of this package's program, if any
	foreign int            // programs that are not this package's (or that could not be read)
}

// classify tells this package's program from other versions of it (same name,
// different code) and from other programs. A program it may not read (no
// CAP_SYS_ADMIN) counts as foreign.
func classify(ids []ebpf.ProgramID) programs {
	var p programs
	spec, err := collectionSpec()
	if err != nil {
		p.version = err
		return p
	}
	for _, id := range ids {
		switch kindOf(id, spec) {
		case "ours":
			if p.ours == 0 {
				p.ours = id
			}
		case "other version":
			if p.version == nil {
				p.version = fmt.Errorf("program %d is another version of this package's signalling; upgrade every process of the cgroup together, or re-run smc attach", id)
			}
		default:
			p.foreign++
		}
	}
	return p
}

// join opens the instance of this package's program with the given ID: by the pins
// of the prepared cgroup (cg or an ancestor) it was attached for, or else by the IDs
// of its link and maps, which needs CAP_SYS_ADMIN. It returns nil, with the reason,
// when it cannot; the caller then attaches an instance of its own.
func join(cg *cgroup, id ebpf.ProgramID) (*Signaller, error) {
	if bpffs, err := mountOf("bpf"); err == nil {
		for _, anc := range cg.ancestors() {
			dir := pinDir(bpffs, anc)
			pinned, err := link.LoadPinnedLink(filepath.Join(dir, pinLink), nil)
			if err != nil {
				continue
			}
			info, err := pinned.Info()
			pinned.Close()
			if err == nil && info.Program == id {
				return openPinned(dir)
			}
		}
	}
	lnk, cgID, err := linkOf(id)
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		lnk.Close()
		return nil, err
	}
	info, err := prog.Info()
	prog.Close()
	if err != nil {
		lnk.Close()
		return nil, err
	}
	mapIDs, _ := info.MapIDs()
	fds := map[string]int{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, mid := range mapIDs {
		m, err := ebpf.NewMapFromID(mid)
		if err != nil {
			lnk.Close()
			return nil, err
		}
		mi, err := m.Info()
		if err == nil {
			if _, known := pinNames[mi.Name]; known && fds[mi.Name] == 0 {
				fds[mi.Name], err = dupCloexec(m.FD())
			}
		}
		m.Close()
		if err != nil {
			lnk.Close()
			return nil, err
		}
	}
	for name := range pinNames {
		if _, ok := fds[name]; !ok {
			lnk.Close()
			return nil, fmt.Errorf("program %d has no map %s", id, name)
		}
	}
	s := newSignaller(fds[mapMarks], fds[mapCounters], fds[mapChildren], fds[mapResults],
		"joined the signalling of cgroup "+strconv.FormatUint(cgID, 10))
	delete(fds, mapMarks)
	delete(fds, mapCounters)
	delete(fds, mapChildren)
	delete(fds, mapResults)
	s.lnk, s.progID = lnk, id
	return s, nil
}

// linkOf returns the cgroup link that attaches the program with the given ID, and
// the ID of the cgroup it is attached to.
func linkOf(id ebpf.ProgramID) (link.Link, uint64, error) {
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Program != id || info.Type != link.CgroupType {
			continue
		}
		cg := info.Cgroup()
		if cg == nil {
			continue
		}
		return it.Take(), cg.CgroupId, nil
	}
	if err := it.Err(); err != nil {
		return nil, 0, err
	}
	return nil, 0, fmt.Errorf("no link attaches program %d", id)
}

// attachOwn loads the program and attaches it to the cgroup whose directory fd is
// given, for as long as some process holds the link.
func attachOwn(fd int, cg *cgroup) (*Signaller, error) {
	coll, err := load()
	if err != nil {
		return nil, unavailable(fmt.Errorf("no signalling on cgroup %s, and loading the program failed: %w", cg.rel, err))
	}
	lnk, err := link.AttachRawLink(link.RawLinkOptions{
		Target: fd, Program: coll.Programs[progName], Attach: ebpf.AttachCGroupSockOps,
	})
	if err != nil {
		coll.Close()
		return nil, unavailable(fmt.Errorf("attaching to cgroup %s: %w", cg.rel, err))
	}
	fds := make([]int, 4)
	for i, name := range []string{mapMarks, mapCounters, mapChildren, mapResults} {
		if fds[i], err = dupCloexec(coll.Maps[name].FD()); err != nil {
			for _, fd := range fds[:i] {
				unix.Close(fd)
			}
			lnk.Close()
			coll.Close()
			return nil, unavailable(fmt.Errorf("duplicating map fds: %w", err))
		}
	}
	s := newSignaller(fds[0], fds[1], fds[2], fds[3], fmt.Sprintf("self-attached to cgroup %s (ID %d)", cg.rel, cg.id))
	s.lnk, s.coll = lnk, coll
	if info, err := coll.Programs[progName].Info(); err == nil {
		s.progID, _ = info.ID()
	}
	return s, nil
}

// openPrepared opens the pins of the nearest prepared cgroup from cg up, as far as
// the cgroup's mount shows its ancestors.
func openPrepared(cg *cgroup) (*Signaller, error) {
	dir, ok := findPins(cg)
	if !ok {
		if cg.id == rootCgroupID {
			return nil, unavailable(errors.New("process is in the root cgroup and has no CAP_BPF+CAP_NET_ADMIN; run it in a cgroup prepared with smc attach"))
		}
		return nil, unavailable(fmt.Errorf("no CAP_BPF+CAP_NET_ADMIN, and no cgroup prepared by smc attach for %s or its ancestors", cg.rel))
	}
	return openPinned(dir)
}

// pinDir returns the bpffs directory holding the pins of a prepared cgroup.
func pinDir(bpffs string, id uint64) string {
	return filepath.Join(bpffs, "smc", strconv.FormatUint(id, 10))
}

// findPins returns the pin directory of the nearest prepared cgroup from cg up.
func findPins(cg *cgroup) (string, bool) {
	bpffs, err := mountOf("bpf")
	if err != nil {
		return "", false
	}
	for _, id := range cg.ancestors() {
		dir := pinDir(bpffs, id)
		if _, err := os.Stat(filepath.Join(dir, pinNames[mapMarks])); err == nil || !errors.Is(err, os.ErrNotExist) {
			return dir, true
		}
	}
	return "", false
}

// An Instance is a sock_ops program that runs on a cgroup's sockets, as [Instances]
// reports it.
type Instance struct {
	ID ebpf.ProgramID
	// Kind is "ours" (this package's program), "other version" (this package's,
	// another version), "foreign" (another program) or "unknown" (not readable
	// without CAP_SYS_ADMIN).
	Kind string
}

// Instances lists the sock_ops programs that run on the sockets of the cgroup v2
// at dir, in the order they run. It needs CAP_NET_ADMIN, and CAP_SYS_ADMIN to tell
// them apart.
func Instances(dir string) ([]Instance, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("smc: signal: %w", err)
	}
	defer unix.Close(fd)
	ids, err := queryEffective(fd)
	if err != nil {
		return nil, fmt.Errorf("smc: signal: %w", err)
	}
	spec, err := collectionSpec()
	if err != nil {
		return nil, err
	}
	out := make([]Instance, len(ids))
	for i, id := range ids {
		out[i] = Instance{ID: id, Kind: kindOf(id, spec)}
	}
	return out, nil
}

// kindOf tells what the program with the given ID is (see Instance.Kind).
func kindOf(id ebpf.ProgramID, spec *ebpf.CollectionSpec) string {
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "unknown"
	}
	info, err := prog.Info()
	prog.Close()
	switch {
	case err != nil:
		return "unknown"
	case !strings.HasPrefix(info.Name, "smc_sockops"):
		return "foreign"
	case spec.Programs[progName].Compatible(info) != nil:
		return "other version"
	}
	return "ours"
}
