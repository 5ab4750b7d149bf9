package signal

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The results cache: the program publishes each recorded socket's final mark word in
// a BPF_F_MMAPABLE array slot chosen by hashing its 4-tuple, under a sequence lock,
// counts it in the slot's live count, and, when the socket closes, uncounts it and
// empties the slot if it still names the socket. ResultAddr reads it from shared
// memory and trusts it only when the sequence was stable and even, the slot names
// exactly this socket's ports, addresses and network namespace, and the cache is not
// poisoned; anything else is answered by the kernel (Result). A slot that matches is
// this socket's own: a 4-tuple belongs to one socket of a namespace at a time, a
// closed socket's slot is emptied before its 4-tuple can be reused (or the cache is
// poisoned), and the program writes the slot before connect or accept returns.
//
// Plain clients of a marked listener are not recorded at all (that is what keeps
// them as cheap as clients of any listener). AcceptedResult therefore also trusts
// an absence: a slot that names another socket and counts no live one proves that
// no recorded socket hashes there, so this one was not recorded, provided its
// PASSIVE_ESTABLISHED callback has run. It has by the time anyone reads: the kernel
// queues a child for accept while holding its socket spinlock and runs that
// callback before releasing it, and the net package's accept sets TCP_NODELAY on
// every accepted socket (net.newTCPConn), a setsockopt that takes the socket lock
// (net/ipv4/tcp.c, do_tcp_setsockopt) and so waits for the callback to finish.
// A publication that could not claim its slot poisons the cache, so a lost write
// can never read as an absence.

// mapSlots maps the results array read-only.
func mapSlots(fd int) ([]byte, error) {
	size := (slotCount + 1) * slotSize
	page := os.Getpagesize()
	size = (size + page - 1) / page * page
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping the results cache: %w", err)
	}
	return b, nil
}

// netnsCookie returns the cookie of the calling thread's network namespace.
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
}

func (s *Signaller) word(off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.slots[off])))
}

// slotIndex is the program's hash of a 4-tuple (slotLookup in program_linux.go).
func slotIndex(ports uint32, remote, local *[16]byte) int {
	h := ports ^ binary.NativeEndian.Uint32(remote[12:]) ^ binary.NativeEndian.Uint32(local[12:])
	return int((h*slotHash)>>(32-slotBits)) + 1
}

// What the results cache knows of a socket.
type cacheAnswer int

const (
	cacheUnknown cacheAnswer = iota // ask the kernel
	cacheHit                        // the slot holds the socket's word
	cacheAbsent                     // no live recorded socket hashes to the slot
)

// cached returns the cached Result of the socket with these addresses, and what the
// cache could answer.
func (s *Signaller) cached(local, remote netip.AddrPort) (Result, cacheAnswer) {
	if s.slots == nil || s.word(slotFlags) != 0 { // no cache, or poisoned
		return Result{}, cacheUnknown
	}
	if s.word(slotHdrLive) == 0 && s.word(slotHdrVersion) == cacheLayout {
		// No recorded socket is live anywhere, so this one is not recorded: the
		// answer for every plain client of a marked listener while no SMC client is
		// connected, from the header's line alone (a slot is another cache line and
		// often a TLB miss; see BENCHMARKS.md in this directory).
		return Result{}, cacheAbsent
	}
	ports := uint32(local.Port())<<16 | uint32(remote.Port())
	ra, la := remote.Addr().As16(), local.Addr().As16()
	base := slotIndex(ports, &ra, &la) * slotSize
	seq := s.word(base + slotSeq)
	if seq&1 != 0 {
		return Result{}, cacheUnknown
	}
	flags := s.word(base + slotFlags)
	live := s.word(base + slotLive)
	netns := atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.slots[base+slotNetns])))
	ok := s.word(base+slotPorts) == ports && netns == s.netns
	for i := 0; i < 16; i += 4 {
		ok = ok && s.word(base+slotRemote+i) == binary.NativeEndian.Uint32(ra[i:]) &&
			s.word(base+slotLocal+i) == binary.NativeEndian.Uint32(la[i:])
	}
	if s.word(base+slotSeq) != seq {
		return Result{}, cacheUnknown
	}
	switch {
	case ok:
		return decode(flags), cacheHit
	case live == 0 && s.word(slotHdrVersion) >= layoutSlotLive:
		return Result{}, cacheAbsent
	}
	return Result{}, cacheUnknown
}

// ResultAddr is [Signaller.Result] for a connected socket whose local and remote
// addresses the caller knows (as net.Conn's LocalAddr and RemoteAddr): it answers
// from memory shared with the program, without a system call, whenever that answer is
// provably this socket's, and asks the kernel otherwise. It reports the same Result
// as Result(fd).
func (s *Signaller) ResultAddr(fd int, local, remote netip.AddrPort) (Result, error) {
	if r, ok := s.CachedResult(local, remote, false); ok {
		return r, nil
	}
	return s.Result(fd)
}

// CachedResult is the part of [Signaller.ResultAddr] (accepted false) or
// [Signaller.AcceptedResult] (accepted true) that needs no file descriptor: the
// Result the results cache proves for the socket with these addresses, and whether
// it could. When it cannot, ask ResultAddr or AcceptedResult.
func (s *Signaller) CachedResult(local, remote netip.AddrPort, accepted bool) (Result, bool) {
	r, a := s.cached(local, remote)
	switch {
	case a == cacheHit:
	case a == cacheAbsent && accepted:
		r = plainChild
	default:
		return Result{}, false
	}
	if countCacheHits {
		s.cacheHits.Add(1)
	}
	return r, true
}

// countCacheHits makes CachedResult count its answers in cacheHits. Tests set it
// before any Signaller is used; it is off otherwise, so that an answer from the
// cache writes no shared memory.
var countCacheHits bool

// plainChild is the Result of a marked listener's child that the program did not
// record: its client's SYN did not carry the option.
var plainChild = Result{Marked: true}

// AcceptedResult is [Signaller.ResultAddr] for a socket accepted, by the net
// package, from a listener this process marked: a plain client, which the program
// does not record, reports Marked with Sent and Received false. It needs no system
// call when the results cache holds the socket's word or proves it holds none,
// which is nearly always. It relies on net's accept having taken the socket's lock
// (see the results cache above); a socket accepted by other means must have been
// through a setsockopt first.
func (s *Signaller) AcceptedResult(fd int, local, remote netip.AddrPort) (Result, error) {
	if r, ok := s.CachedResult(local, remote, true); ok {
		return r, nil
	}
	r, err := s.Result(fd)
	if err == nil && !r.Marked {
		r = plainChild
	}
	return r, err
}

// cacheLayout is written into the results cache's header when the maps are created,
// before any program runs. From version 2 slots count their live sockets; from
// version 3 the header counts them all (slotHdrLive). A cache without counts (maps
// pinned by an older smc attach, whose program keeps none) answers only hits,
// never an absence.
const (
	cacheLayout    = 3
	layoutSlotLive = 2 // the first layout whose slots count their live sockets
	slotHdrVersion = 8 // header slot: offset of the layout version
)

// stampLayout writes cacheLayout into the header of the results map fd.
func stampLayout(fd int) error {
	b := make([]byte, slotSize)
	binary.NativeEndian.PutUint32(b[slotHdrVersion:], cacheLayout)
	var key uint32
	return mapUpdate(fd, unsafe.Pointer(&key), unsafe.Pointer(&b[0]))
}

// poison marks the results cache of the map fd unusable (the program is going away
// while sockets it published may stay open).
func poison(fd int) error {
	b := make([]byte, slotSize)
	binary.NativeEndian.PutUint32(b[slotFlags:], 1)
	var key uint32
	return mapUpdate(fd, unsafe.Pointer(&key), unsafe.Pointer(&b[0]))
}
