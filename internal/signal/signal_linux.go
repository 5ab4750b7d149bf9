package signal

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Signaller marks sockets so that their handshake announces SMC, and reads back what
// each handshake carried. Its methods are safe for concurrent use, except that Close
// must not run concurrently with any other method (it unmaps the results cache).
type Signaller struct {
	marks    int // the socket-storage map, keyed by socket fd; owned
	counters int // the counters map, or -1; owned
	children int // the children map (server children's words by socket cookie), or -1; owned
	mode     string

	slots     []byte        // the results cache, mapped read-only; nil if unavailable
	netns     uint64        // cookie of the network namespace Open ran in
	cacheHits atomic.Uint64 // ResultAddr answers taken from slots, if countCacheHits
	cacheErr  error         // why slots is nil

	// The program instance this process uses stays attached while any process
	// holds its link (see join_linux.go); nil when a pin holds it.
	lnk    link.Link
	coll   *ebpf.Collection // objects this process loaded, or nil
	progID ebpf.ProgramID   // the program's ID, 0 if not known (no privilege to ask)

	// conflict is set, for good, once this process found a situation it cannot
	// make exact (see conflict_linux.go); conflictErr says which, guarded by mu.
	conflict    atomic.Bool
	mu          sync.Mutex
	conflictErr error
	probeNote   string // what the conflict probe found or why it could not run

	// The conflict watcher (privileged processes only): the cgroup directory it
	// queries, and its stop channel.
	watchFD   int
	seen      []ebpf.ProgramID // the programs the cgroup's sockets ran, as last seen
	foreign   int              // how many of them are not this package's
	stopWatch chan struct{}
	watchDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open returns a Signaller for this process; callers open once per process. It finds
// the process's cgroup v2 (by ID inside a cgroup namespace, through a private mount
// where none is in sight) and then:
//
//   - with CAP_BPF and CAP_NET_ADMIN, it joins the instance of the program that
//     runs on the cgroup's sockets, if there is one (another process of the
//     cgroup's, an ancestor's, or one prepared with [AttachCgroup]), or else loads
//     the program and attaches it to the cgroup; the instance stays attached while
//     any process using it lives;
//   - without, it opens the maps that [AttachCgroup] pinned for the process's cgroup
//     or its nearest prepared ancestor, which needs only the pinned files' modes.
//
// A process in the root cgroup is refused. An older version of this program on the
// cgroup's sockets, or another program writing the SMC option on sockets this
// process did not mark, makes Open fail with an error wrapping [ErrConflict]. Every
// failure wraps [ErrUnavailable] and names the reason.
func Open() (*Signaller, error) {
	cg, err := ownCgroup()
	if err != nil {
		return nil, unavailable(err)
	}
	defer cg.release()
	s, err := openPrivileged(&cg)
	if err != nil && !errors.Is(err, ErrConflict) {
		// Without privilege, or if attaching failed, a prepared cgroup may serve.
		ps, perr := openPrepared(&cg)
		switch {
		case perr == nil:
			s, err = ps, nil
		case errors.Is(err, errNoPrivilege):
			err = perr
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.checkConflict(); err != nil {
		s.Close()
		return nil, err
	}
	s.startWatcher()
	return s, nil
}

// newSignaller returns a Signaller for the maps of an instance, whose fds it takes.
func newSignaller(marks, counters, children, results int, mode string) *Signaller {
	s := &Signaller{marks: marks, counters: counters, children: children, mode: mode, watchFD: -1}
	if results >= 0 {
		s.openCache(results)
		unix.Close(results) // the mapping keeps the map
	} else {
		s.cacheErr = errors.New("the results cache is not accessible")
	}
	return s
}

// openCache maps the results cache of the map fd; without it, ResultAddr asks the
// kernel every time.
func (s *Signaller) openCache(fd int) {
	netns, err := netnsCookie()
	if err != nil {
		s.cacheErr = fmt.Errorf("reading the network namespace cookie: %w", err)
		return
	}
	slots, err := mapSlots(fd)
	if err != nil {
		s.cacheErr = err
		return
	}
	s.slots, s.netns = slots, netns
}

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// dupCloexec duplicates fd with close-on-exec set.
func dupCloexec(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}

// load loads the maps and the program into the kernel.
func load() (*ebpf.Collection, error) {
	spec, err := collectionSpec()
	if err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("needs CAP_BPF and CAP_NET_ADMIN: %w", err)
		}
		return nil, err
	}
	if err := stampLayout(coll.Maps[mapResults].FD()); err != nil {
		coll.Close()
		return nil, fmt.Errorf("initialising the results cache: %w", err)
	}
	return coll, nil
}

// openPinned opens the maps pinned in dir.
func openPinned(dir string) (*Signaller, error) {
	marks, err := objGet(filepath.Join(dir, pinNames[mapMarks]), 0)
	if err != nil {
		return nil, unavailable(fmt.Errorf("opening %s (is this user in the group given to smc attach?): %w", filepath.Join(dir, pinNames[mapMarks]), err))
	}
	counters, err := objGet(filepath.Join(dir, pinNames[mapCounters]), bpfFRdonly)
	if err != nil {
		counters = -1 // counters are for statistics only
	}
	children, err := objGet(filepath.Join(dir, pinNames[mapChildren]), bpfFRdonly)
	if err != nil {
		unix.Close(marks)
		if counters >= 0 {
			unix.Close(counters)
		}
		return nil, unavailable(fmt.Errorf("opening %s: %w", filepath.Join(dir, pinNames[mapChildren]), err))
	}
	// A shared mapping of a map needs a read-write fd (mmap drops VM_SHARED for
	// read-only files, and the kernel refuses such a mapping); the mapping itself is
	// read-only.
	results, err := objGet(filepath.Join(dir, pinNames[mapResults]), 0)
	if err != nil {
		results = -1
	}
	return newSignaller(marks, counters, children, results, "pinned at "+dir), nil
}

// Mode describes how the Signaller was opened: pinned objects or self-attached.
func (s *Signaller) Mode() string { return s.mode }

// Mark marks the socket fd so that its handshake announces SMC: the SYN of a client
// socket (call before connect, as from net.Dialer.Control) or the SYN-ACKs of a
// listener, to clients whose SYN announced it (call before listen, as from
// net.ListenConfig.Control; the listener must not be MPTCP, whose TCP subflows the
// program never sees). Connections accepted from a marked listener inherit the mark.
func (s *Signaller) Mark(fd int) error {
	b := elemBufs.Get().(*elemBuf)
	b.key, b.value = int32(fd), markMarked
	err := b.do(unix.BPF_MAP_UPDATE_ELEM, s.marks)
	elemBufs.Put(b)
	if err != nil {
		return fmt.Errorf("smc: signal: marking socket: %w", err)
	}
	return nil
}

// Result reports what the handshake of the connected socket fd carried; call it once
// connect or accept has returned (for an accepted socket: see
// [Signaller.AcceptedResult] for the lock this relies on). A socket that was not
// marked reports the zero Result. It costs one bpf(2) system call for a socket with
// storage (a marked client), and also getsockopt(SO_COOKIE) and a second bpf(2) for
// an accepted socket, whose word is in the children map; an accepted socket with no
// record is a plain client of a marked listener (Marked, neither sent nor received)
// when it inherited TCP_SAVE_SYN, which marked listeners set as a tag (one more
// getsockopt), and a socket never marked otherwise. A marked socket whose handshake
// the program did not see (the mark was set too late, or the socket is MPTCP) reports
// Marked with Sent and Received false, never a "yes" the wire did not carry.
func (s *Signaller) Result(fd int) (Result, error) {
	b := elemBufs.Get().(*elemBuf)
	b.key, b.value = int32(fd), 0
	err := b.do(unix.BPF_MAP_LOOKUP_ELEM, s.marks)
	v := b.value
	elemBufs.Put(b)
	if err == unix.ENOENT {
		return s.childResult(fd)
	}
	if err != nil {
		return Result{}, fmt.Errorf("smc: signal: reading result: %w", err)
	}
	return decode(v), nil
}

// childResult reads the result of a socket without storage: a child of a marked
// listener, whose word is in the children map under its socket cookie, or a socket
// never marked.
func (s *Signaller) childResult(fd int) (Result, error) {
	if s.children < 0 {
		return Result{}, nil
	}
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		return Result{}, fmt.Errorf("smc: signal: reading socket cookie: %w", err)
	}
	kv := new(struct {
		cookie uint64
		word   uint32
	})
	kv.cookie = cookie
	err = mapLookup(s.children, unsafe.Pointer(&kv.cookie), unsafe.Pointer(&kv.word))
	if err == unix.ENOENT {
		// The program records no plain client of a marked listener. Such a child
		// inherited its listener's TCP_SAVE_SYN tag; a listener this process did not
		// mark has it only if someone set it by hand.
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_SAVE_SYN); err == nil && v != 0 {
			return plainChild, nil
		}
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("smc: signal: reading result: %w", err)
	}
	return decode(kv.word), nil
}

// decode turns a socket's mark word into a Result.
func decode(v uint32) Result {
	if v&markMarked == 0 {
		return Result{}
	}
	if v&resultDone == 0 {
		return Result{Marked: true}
	}
	return Result{
		Marked:      true,
		Sent:        v&resultSent != 0,
		Received:    v&resultReceived != 0,
		PeerUnknown: v&resultUnknown != 0,
		Conflict:    v&resultConflict != 0,
	}
}

// Stats returns the program's event and error counters by name (err_reserve counts
// -ENOSPC from bpf_reserve_hdr_opt, for instance).
func (s *Signaller) Stats() (map[string]uint64, error) {
	if s.counters < 0 {
		return nil, errors.New("smc: signal: counters map not accessible")
	}
	return readCounters(s.counters)
}

func readCounters(fd int) (map[string]uint64, error) {
	m := make(map[string]uint64, numCounters)
	for i := range int32(numCounters) {
		var v uint64
		err := mapLookup(fd, unsafe.Pointer(&i), unsafe.Pointer(&v))
		if err == unix.ENOENT {
			continue // a counter newer than the pinned program
		}
		if err != nil {
			return nil, fmt.Errorf("smc: signal: reading counter %s: %w", counterNames[i], err)
		}
		m[counterNames[i]] = v
	}
	return m, nil
}

// Close releases the maps and this process's hold on the program instance: the
// last process holding a self-attached instance detaches it.
func (s *Signaller) Close() error {
	s.closeOnce.Do(func() {
		s.stopWatcher()
		if s.marks >= 0 {
			unix.Close(s.marks)
		}
		if s.counters >= 0 {
			unix.Close(s.counters)
		}
		if s.children >= 0 {
			unix.Close(s.children)
		}
		if s.slots != nil {
			unix.Munmap(s.slots)
		}
		if s.lnk != nil {
			s.closeErr = s.lnk.Close()
		}
		if s.coll != nil {
			s.coll.Close()
		}
	})
	return s.closeErr
}

// bpf(2) access, without cilium/ebpf's generic marshalling on the per-connection path.

const (
	bpfFRdonly = 1 << 3 // BPF_F_RDONLY
)

// elemAttr is union bpf_attr for the BPF_MAP_*_ELEM commands.
type elemAttr struct {
	mapFD uint32
	_     uint32
	key   uint64
	value uint64
	flags uint64
}

// elemBuf keeps the attribute and the key and value it points to in one heap object,
// so that the addresses written into the attribute stay valid (heap objects do not
// move; stack ones may).
type elemBuf struct {
	attr  elemAttr
	key   int32
	value uint32
}

var elemBufs = sync.Pool{New: func() any { return new(elemBuf) }}

func (b *elemBuf) do(cmd int, mapFD int) error {
	b.attr = elemAttr{
		mapFD: uint32(mapFD),
		key:   uint64(uintptr(unsafe.Pointer(&b.key))),
		value: uint64(uintptr(unsafe.Pointer(&b.value))),
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(unsafe.Pointer(&b.attr)), unsafe.Sizeof(b.attr))
	if errno != 0 {
		return errno
	}
	return nil
}

// mapLookup looks key up in a map; key and value must point to heap memory or be
// kept alive and unmoved by the caller (as escaping locals are).
func mapLookup(mapFD int, key, value unsafe.Pointer) error {
	attr := &elemAttr{mapFD: uint32(mapFD), key: uint64(uintptr(key)), value: uint64(uintptr(value))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_LOOKUP_ELEM, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	if errno != 0 {
		return errno
	}
	return nil
}

// mapUpdate sets key to value in a map; key and value must stay valid and unmoved.
func mapUpdate(mapFD int, key, value unsafe.Pointer) error {
	attr := &elemAttr{mapFD: uint32(mapFD), key: uint64(uintptr(key)), value: uint64(uintptr(value))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_UPDATE_ELEM, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	if errno != 0 {
		return errno
	}
	return nil
}

// objGet opens a pinned object: BPF_OBJ_GET, which needs no capability, only the
// file's permissions.
func objGet(path string, flags uint32) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	attr := &struct {
		pathname uint64
		bpfFD    uint32
		flags    uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(p))), flags: flags}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	runtime.KeepAlive(p)
	if errno != 0 {
		return -1, errno
	}
	unix.CloseOnExec(int(fd))
	return int(fd), nil
}
