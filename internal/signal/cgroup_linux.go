package signal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A cgroup is a cgroup v2 directory as this process reaches it.
type cgroup struct {
	id    uint64 // the cgroup's ID: its directory's inode number
	rel   string // its path below the cgroup namespace's root, as /proc/self/cgroup says
	mount string // the cgroup v2 mount that dir is in (a /proc/self/fd path for a private mount)
	dir   string // mount joined with the directory's path below the mount's root
	// private is the fd of a cgroup v2 mount made for this process alone, when none
	// was in sight, or -1.
	private int
}

// release closes the private mount, if there is one.
func (cg *cgroup) release() {
	if cg.private >= 0 {
		unix.Close(cg.private)
		cg.private = -1
	}
}

// ancestors returns the IDs of cg and of each ancestor inside its mount, nearest
// first.
func (cg *cgroup) ancestors() []uint64 {
	ids := []uint64{cg.id}
	for dir := cg.dir; dir != cg.mount && len(dir) > len(cg.mount); {
		dir = filepath.Dir(dir)
		id, err := cgroupID(dir)
		if err != nil {
			break
		}
		ids = append(ids, id)
	}
	return ids
}

// A mountEntry is a line of /proc/self/mountinfo.
type mountEntry struct {
	root  string // the mount's root inside its file system (for cgroup v2: relative to our cgroup namespace)
	point string // where it is mounted
}

// mountsOf returns the mounts of a file system type ("cgroup2", "bpf") in
// /proc/self/mountinfo.
func mountsOf(fstype string) ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 1 && qf[0] == fstype {
			ms = append(ms, mountEntry{root: unescape(pf[3]), point: unescape(pf[4])})
		}
	}
	return ms, sc.Err()
}

// mountOf returns the first mount point of a file system type.
func mountOf(fstype string) (string, error) {
	ms, err := mountsOf(fstype)
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", fmt.Errorf("no %s file system is mounted", fstype)
	}
	return ms[0].point, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
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

// selfCgroupPath returns the process's cgroup v2 path from /proc/self/cgroup
// ("0::/path"), relative to its cgroup namespace's root.
func selfCgroupPath() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Clean(rel), nil
		}
	}
	return "", errors.New("the process has no cgroup v2 (no 0:: line in /proc/self/cgroup)")
}

// ownCgroup finds the process's cgroup v2 directory:
//
//   - through a visible cgroup v2 mount whose root contains the process's cgroup
//     namespace root, by path (the usual case);
//   - in a cgroup namespace whose root lies below every visible mount's root (a
//     container that sees the host's mount: mountinfo shows its root as "/.."), by
//     ID: the kernel tells the cgroup ID of a socket the process creates
//     (sock_diag), and the mount is searched for the directory with that inode;
//   - with no cgroup v2 mount in sight (`ip netns exec` mounts a fresh /sys), through
//     a private mount of cgroup v2, reachable only through a file descriptor, which
//     needs CAP_SYS_ADMIN.
func ownCgroup() (cgroup, error) {
	rel, err := selfCgroupPath()
	if err != nil {
		return cgroup{}, err
	}
	mounts, err := mountsOf("cgroup2")
	if err != nil {
		return cgroup{}, err
	}
	for _, m := range mounts {
		if dir, ok := m.below(rel); ok {
			id, err := cgroupID(dir)
			if err != nil {
				return cgroup{}, err
			}
			return cgroup{id: id, rel: rel, mount: m.point, dir: dir, private: -1}, nil
		}
	}
	if len(mounts) > 0 {
		id, err := socketCgroupID()
		if err != nil {
			return cgroup{}, fmt.Errorf("finding this process's cgroup inside its cgroup namespace: %w", err)
		}
		for _, m := range mounts {
			if dir, ok := findCgroup(m, rel, id); ok {
				return cgroup{id: id, rel: rel, mount: m.point, dir: dir, private: -1}, nil
			}
		}
		return cgroup{}, fmt.Errorf("cgroup %d (%s in this cgroup namespace) is in no cgroup v2 mount in sight", id, rel)
	}
	return privateCgroup(rel)
}

// below returns the directory of the cgroup at rel (relative to our cgroup
// namespace's root) inside the mount, if the mount's root contains it.
func (m mountEntry) below(rel string) (string, bool) {
	if m.root == "/.." || strings.HasPrefix(m.root, "/../") {
		return "", false // above our namespace's root (filepath.Clean would drop the "..")
	}
	root := filepath.Clean(m.root)
	switch {
	case root == "/":
		return filepath.Join(m.point, rel), true
	case rel == root:
		return m.point, true
	case strings.HasPrefix(rel, root+"/"):
		return filepath.Join(m.point, rel[len(root):]), true
	}
	return "", false
}

// maxCgroupWalk bounds the directories findCgroup visits.
const maxCgroupWalk = 1 << 16

// findCgroup looks for the cgroup with the given ID in a mount whose root lies above
// our cgroup namespace's root, shown in mountinfo as "/.." once per level. The
// cgroup is that many levels plus rel's depth below the mount's root, and its path
// ends with rel.
func findCgroup(m mountEntry, rel string, id uint64) (string, bool) {
	up := strings.Count(m.root, "..")
	depth := up
	if rel != "/" {
		depth += strings.Count(rel, "/")
	}
	level := []string{m.point}
	visited := 0
	for d := 0; d < depth && len(level) > 0; d++ {
		var next []string
		for _, dir := range level {
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if !e.IsDir() {
					continue
				}
				if visited++; visited > maxCgroupWalk {
					return "", false
				}
				next = append(next, filepath.Join(dir, e.Name()))
			}
		}
		level = next
	}
	for _, dir := range level {
		if rel != "/" && !strings.HasSuffix(dir, rel) {
			continue
		}
		if got, err := cgroupID(dir); err == nil && got == id {
			return dir, true
		}
	}
	return "", false
}

// cgroupByID returns the directory of the cgroup with the given ID in the cgroup v2
// mount at mnt: opened by its file handle (cgroup v2 directories have handles that
// hold the ID, which open_by_handle_at resolves with CAP_DAC_READ_SEARCH), or
// searched for.
func cgroupByID(mnt string, id uint64) (string, bool) {
	if mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], id)
		fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(fileIDKernfs, b[:]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		unix.Close(mfd)
		if err == nil {
			defer unix.Close(fd)
			if dir, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
				if got, err := cgroupID(filepath.Join(mnt, dir)); err == nil && got == id {
					return filepath.Join(mnt, dir), true
				}
			}
		} else if errors.Is(err, unix.ESTALE) {
			return "", false // no such cgroup (any more)
		}
	}
	level := []string{mnt}
	for visited := 0; len(level) > 0; {
		var next []string
		for _, dir := range level {
			if got, err := cgroupID(dir); err == nil && got == id {
				return dir, true
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if e.IsDir() {
					if visited++; visited > maxCgroupWalk {
						return "", false
					}
					next = append(next, filepath.Join(dir, e.Name()))
				}
			}
		}
		level = next
	}
	return "", false
}

// fileIDKernfs is the file handle type of kernfs (cgroup v2) directories: the
// handle is the 64-bit ID (Linux include/linux/exportfs.h FILEID_KERNFS).
const fileIDKernfs = 0xfe

// privateCgroup mounts cgroup v2 for this process alone (fsopen and fsmount: the
// mount is attached to no path and goes away with its last file descriptor). Its
// root is the root of the process's cgroup namespace, below which rel lies.
func privateCgroup(rel string) (cgroup, error) {
	fs, err := unix.Fsopen("cgroup2", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return cgroup{}, fmt.Errorf("no cgroup v2 mount in sight, and mounting one privately failed (needs CAP_SYS_ADMIN): %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigCreate(fs); err != nil {
		return cgroup{}, fmt.Errorf("mounting cgroup v2 privately: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return cgroup{}, fmt.Errorf("mounting cgroup v2 privately: %w", err)
	}
	point := "/proc/self/fd/" + strconv.Itoa(mnt)
	dir := filepath.Join(point, rel)
	id, err := cgroupID(dir)
	if err != nil {
		unix.Close(mnt)
		return cgroup{}, err
	}
	return cgroup{id: id, rel: rel, mount: point, dir: dir, private: mnt}, nil
}

// cgroupID returns the ID of the cgroup at dir: its inode number on cgroup v2.
func cgroupID(dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// socketCgroupID returns the ID of this process's cgroup: the cgroup of a socket it
// creates, as the kernel's sock_diag reports it (INET_DIAG_CGROUP_ID). It needs no
// privilege and no mount. The socket is a UDP socket bound to loopback (or to the
// wildcard address, where loopback is down) for the time of one query.
func socketCgroupID() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
			return 0, err
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	in4 := sa.(*unix.SockaddrInet4)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		return 0, err
	}
	return diagCgroupID(in4, cookie)
}

// Linux include/uapi/linux/inet_diag.h.
const (
	inetDiagCgroupID = 21 // INET_DIAG_CGROUP_ID
	nlmsgHdrLen      = 16
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
)

// diagCgroupID asks sock_diag for the UDP socket bound to addr with the given
// cookie and returns its INET_DIAG_CGROUP_ID attribute.
func diagCgroupID(addr *unix.SockaddrInet4, cookie uint64) (uint64, error) {
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, err
	}
	defer unix.Close(nl)
	req := make([]byte, nlmsgHdrLen+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	r := req[nlmsgHdrLen:]
	r[0] = unix.AF_INET
	r[1] = unix.IPPROTO_UDP
	ne.PutUint32(r[4:], ^uint32(0)) // all states
	// struct inet_diag_sockid at 8: sport, dport (network order), src, dst, if,
	// cookie. UDP looks the socket up as the receiver of a packet from src:sport to
	// dst:dport (udp_dump_one), so the socket's own address is dst:dport.
	binary.BigEndian.PutUint16(r[10:], uint16(addr.Port))
	copy(r[28:32], addr.Addr[:])
	ne.PutUint32(r[48:], uint32(cookie))
	ne.PutUint32(r[52:], uint32(cookie>>32))
	if err := unix.Sendto(nl, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(nl, buf, 0)
	if err != nil {
		return 0, err
	}
	return parseDiagCgroupID(buf[:n])
}

// parseDiagCgroupID returns the INET_DIAG_CGROUP_ID attribute of the one
// inet_diag_msg in a netlink reply.
func parseDiagCgroupID(b []byte) (uint64, error) {
	ne := binary.NativeEndian
	if len(b) < nlmsgHdrLen {
		return 0, errors.New("sock_diag: short reply")
	}
	msgLen, typ := int(ne.Uint32(b)), ne.Uint16(b[4:])
	if msgLen < nlmsgHdrLen || msgLen > len(b) {
		return 0, errors.New("sock_diag: bad reply length")
	}
	if typ == unix.NLMSG_ERROR {
		if msgLen >= nlmsgHdrLen+4 {
			if errno := int32(ne.Uint32(b[nlmsgHdrLen:])); errno < 0 {
				return 0, fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
			}
		}
		return 0, errors.New("sock_diag: error reply")
	}
	if typ != unix.SOCK_DIAG_BY_FAMILY || msgLen < nlmsgHdrLen+inetDiagMsgLen {
		return 0, fmt.Errorf("sock_diag: unexpected reply type %d", typ)
	}
	attrs := b[nlmsgHdrLen+inetDiagMsgLen : msgLen]
	for len(attrs) >= 4 {
		alen, atype := int(ne.Uint16(attrs)), ne.Uint16(attrs[2:])&0x3fff
		if alen < 4 || alen > len(attrs) {
			break
		}
		if atype == inetDiagCgroupID && alen >= 12 {
			return ne.Uint64(attrs[4:12]), nil
		}
		next := (alen + 3) &^ 3
		if next > len(attrs) {
			break
		}
		attrs = attrs[next:]
	}
	return 0, errors.New("sock_diag: the kernel reported no cgroup ID (CONFIG_SOCK_CGROUP_DATA)")
}

// cgroupDirFD opens the cgroup's directory for BPF_PROG_QUERY, BPF_LINK_CREATE and
// flock.
func cgroupDirFD(cg *cgroup) (int, error) {
	return unix.Open(cg.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// CgroupMount returns where cgroup v2 is mounted, from /proc/self/mountinfo
// (/sys/fs/cgroup on pure-v2 systems, /sys/fs/cgroup/unified in hybrid mode).
func CgroupMount() (string, error) { return mountOf("cgroup2") }

// BPFFSMount returns where a bpf file system is mounted, from /proc/self/mountinfo.
func BPFFSMount() (string, error) { return mountOf("bpf") }

// OwnCgroup returns the directory of this process's cgroup v2 as [Open] finds it
// (by ID inside a cgroup namespace), and reports whether it is the root of the
// hierarchy. It fails where no cgroup v2 mount is in sight.
func OwnCgroup() (dir string, root bool, err error) {
	cg, err := ownCgroup()
	if err != nil {
		return "", false, fmt.Errorf("smc: signal: %w", err)
	}
	defer cg.release()
	if cg.private >= 0 {
		return "", false, errors.New("smc: signal: no cgroup v2 mount in sight")
	}
	return cg.dir, cg.id == rootCgroupID, nil
}
