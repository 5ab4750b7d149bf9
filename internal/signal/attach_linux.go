package signal

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Where AttachCgroup mounts bpffs when none is mounted.
const defaultBPFFS = "/sys/fs/bpf"

// Modes of the pinned objects. The link is root's alone; members of
// AttachOptions.Group may mark and read (marks), read counters, map the results cache
// (which needs a read-write open) and sweep stale SYN-ACK records. A member could
// therefore write false results or records affecting the other members' sockets: the
// group must be one trust domain.
const (
	modeDirGroup      = 0o750
	modeDirPrivate    = 0o700
	modeMarksGroup    = 0o660
	modeCountersGroup = 0o640
	modePrivate       = 0o600
)

// resolveCgroup returns the cgroup v2 directory that path names: a directory inside
// the cgroup v2 mount, or a cgroup path relative to the mount ("/system.slice/x").
func resolveCgroup(path string) (cg cgroup, err error) {
	mnt, err := mountOf("cgroup2")
	if err != nil {
		return cgroup{}, err
	}
	abs := filepath.Clean(path)
	if rel, err := filepath.Rel(mnt, abs); err != nil || strings.HasPrefix(rel, "..") || !filepath.IsAbs(path) {
		abs = filepath.Join(mnt, path)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(abs, &sfs); err != nil {
		return cgroup{}, err
	}
	if sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		return cgroup{}, fmt.Errorf("%s is not in a cgroup v2 hierarchy", abs)
	}
	id, err := cgroupID(abs)
	if err != nil {
		return cgroup{}, err
	}
	rel, _ := filepath.Rel(mnt, abs)
	return cgroup{id: id, mount: mnt, rel: filepath.Clean("/" + rel), dir: abs, private: -1}, nil
}

// AttachCgroup prepares the cgroup v2 at path for signalling: it loads the program,
// attaches it with a bpf_link, and pins the link and the maps in a directory of bpffs
// named after the cgroup's ID (bpffs is mounted at /sys/fs/bpf if none is). Processes
// in that cgroup or below then [Open] the pinned maps with no privilege, if the
// files' modes let them: root only, or also AttachOptions.Group. It returns the pin
// directory. The root cgroup is refused unless opts.ForceRoot is set. It needs
// CAP_BPF, CAP_NET_ADMIN and, to mount bpffs, CAP_SYS_ADMIN.
func AttachCgroup(path string, opts AttachOptions) (string, error) {
	cg, err := resolveCgroup(path)
	if err != nil {
		return "", fmt.Errorf("smc: signal: attach: %w", err)
	}
	if cg.id == rootCgroupID && !opts.ForceRoot {
		return "", fmt.Errorf("smc: signal: attach: refusing the root cgroup %s, which would put the program on every TCP socket of the host (force it with --force-root)", cg.dir)
	}
	gid := -1
	if opts.Group != "" {
		if gid, err = lookupGroup(opts.Group); err != nil {
			return "", fmt.Errorf("smc: signal: attach: %w", err)
		}
	}
	bpffs, err := ensureBPFFS()
	if err != nil {
		return "", fmt.Errorf("smc: signal: attach: %w", err)
	}
	dir := pinDir(bpffs, cg.id)
	if _, err := os.Stat(dir); err == nil {
		return "", fmt.Errorf("smc: signal: attach: cgroup %s is already prepared (%s); detach it first: %w", cg.rel, dir, os.ErrExist)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("smc: signal: attach: %w", err)
	}
	if err := prepare(cg, dir, gid); err != nil {
		removePins(dir)
		return "", fmt.Errorf("smc: signal: attach: %w", err)
	}
	return dir, nil
}

func prepare(cg cgroup, dir string, gid int) error {
	dirMode, marksMode, countersMode := os.FileMode(modeDirPrivate), os.FileMode(modePrivate), os.FileMode(modePrivate)
	if gid >= 0 {
		dirMode, marksMode, countersMode = modeDirGroup, modeMarksGroup, modeCountersGroup
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		return err
	}
	coll, err := load()
	if err != nil {
		return err
	}
	defer coll.Close()
	lnk, err := link.AttachCgroup(link.CgroupOptions{
		Path: cg.dir, Attach: ebpf.AttachCGroupSockOps, Program: coll.Programs[progName],
	})
	if err != nil {
		return fmt.Errorf("attaching to %s: %w", cg.dir, err)
	}
	defer lnk.Close()
	type pin struct {
		name string
		pin  func(string) error
		mode os.FileMode
	}
	var pins []pin
	for _, m := range []string{mapMarks, mapCounters, mapNoEcho, mapResults, mapChildren} {
		mode := marksMode // members mark, and map the results cache (which needs write access)
		if m == mapCounters || m == mapChildren || m == mapNoEcho {
			mode = countersMode
		}
		pins = append(pins, pin{pinNames[m], coll.Maps[m].Pin, mode})
	}
	pins = append(pins, pin{pinLink, lnk.Pin, modePrivate}) // last: its presence means "prepared"
	for _, p := range pins {
		file := filepath.Join(dir, p.name)
		if err := p.pin(file); err != nil {
			return fmt.Errorf("pinning %s: %w", p.name, err)
		}
		if err := os.Chmod(file, p.mode); err != nil {
			return err
		}
		if gid >= 0 {
			if err := os.Chown(file, 0, gid); err != nil {
				return err
			}
		}
	}
	if gid >= 0 {
		return os.Chown(dir, 0, gid)
	}
	return nil
}

// DetachCgroup undoes [AttachCgroup] for the cgroup at path: it removes the pins,
// which detaches the program. Processes that still hold the maps keep them, but their
// sockets are no longer signalled. A prepared cgroup that was removed can be named
// by its ID (as [ListPrepared] shows it) instead of a path.
func DetachCgroup(path string) error {
	bpffs, err := mountOf("bpf")
	if err != nil {
		return fmt.Errorf("smc: signal: detach: %w", err)
	}
	var id uint64
	if n, perr := strconv.ParseUint(path, 10, 64); perr == nil {
		id = n
	} else {
		cg, err := resolveCgroup(path)
		if err != nil {
			return fmt.Errorf("smc: signal: detach: %w", err)
		}
		id = cg.id
	}
	dir := pinDir(bpffs, id)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("smc: signal: detach: cgroup %s is not prepared: %w", path, err)
	}
	// Processes keep the mapped results cache after the program is gone, while the
	// sockets it published close unseen: poison it so that they ask the kernel.
	if fd, err := objGet(filepath.Join(dir, pinNames[mapResults]), 0); err == nil {
		err = poison(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("smc: signal: detach: poisoning the results cache: %w", err)
		}
	}
	if err := removePins(dir); err != nil {
		return fmt.Errorf("smc: signal: detach: %w", err)
	}
	return nil
}

// removePins removes a pin directory, the link first so that the program is
// detached before its maps go. Pins of older versions ("synacks") go too.
func removePins(dir string) error {
	names := []string{pinLink, "synacks"}
	for _, n := range pinNames {
		names = append(names, n)
	}
	var errs []error
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Prepared is a cgroup prepared with [AttachCgroup], as [ListPrepared] finds it.
type Prepared struct {
	ID     uint64 // the cgroup's ID
	Path   string // its directory, or "" when the cgroup no longer exists
	PinDir string
	// State is "attached", "cgroup removed" (detach it by ID to remove the pins),
	// "other version" (prepared by another version of this package: detach and
	// attach again) or "broken: ..." (pins incomplete or unreadable).
	State string
}

// ListPrepared lists the cgroups prepared with [AttachCgroup] on this host. It needs
// root to read the links.
func ListPrepared() ([]Prepared, error) {
	bpffs, err := mountOf("bpf")
	if err != nil {
		return nil, nil // nothing can be prepared without bpffs
	}
	ents, err := os.ReadDir(filepath.Join(bpffs, "smc"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("smc: signal: %w", err)
	}
	spec, err := collectionSpec()
	if err != nil {
		return nil, err
	}
	mnt, _ := mountOf("cgroup2")
	var out []Prepared
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			continue
		}
		p := Prepared{ID: id, PinDir: filepath.Join(bpffs, "smc", e.Name())}
		if mnt != "" {
			p.Path, _ = cgroupByID(mnt, id)
		}
		p.State = preparedState(p, spec)
		out = append(out, p)
	}
	return out, nil
}

// preparedState reads a pin directory's link.
func preparedState(p Prepared, spec *ebpf.CollectionSpec) string {
	l, err := link.LoadPinnedLink(filepath.Join(p.PinDir, pinLink), nil)
	if err != nil {
		return "broken: " + err.Error()
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return "broken: " + err.Error()
	}
	if cg := info.Cgroup(); p.Path == "" || cg == nil || cg.CgroupId != p.ID {
		return "cgroup removed"
	}
	prog, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return "broken: " + err.Error()
	}
	defer prog.Close()
	pi, err := prog.Info()
	if err != nil {
		return "broken: " + err.Error()
	}
	if spec.Programs[progName].Compatible(pi) != nil {
		return "other version"
	}
	return "attached"
}

// ensureBPFFS returns where bpffs is mounted, mounting it at /sys/fs/bpf if needed.
// An exclusive lock on the parent directory keeps two processes from stacking two
// mounts (the second would hide the first one's pins).
func ensureBPFFS() (string, error) {
	if mnt, err := mountOf("bpf"); err == nil {
		return mnt, nil
	}
	if err := os.MkdirAll(defaultBPFFS, 0o755); err != nil {
		return "", err
	}
	lock, err := os.Open(filepath.Dir(defaultBPFFS))
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	if mnt, err := mountOf("bpf"); err == nil { // mounted while we waited
		return mnt, nil
	}
	if err := unix.Mount("bpf", defaultBPFFS, "bpf", 0, "mode=0755"); err != nil {
		return "", fmt.Errorf("mounting bpffs at %s: %w", defaultBPFFS, err)
	}
	return defaultBPFFS, nil
}

// lookupGroup resolves a group name or numeric ID.
func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}
