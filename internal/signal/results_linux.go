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

// The results cache: the program publishes each marked socket's final mark word in a
// BPF_F_MMAPABLE array slot chosen by hashing its 4-tuple, under a sequence lock,
// and empties the slot when the socket closes. ResultAddr reads it from shared memory
// and trusts it only when the sequence was stable and even, the slot names exactly
// this socket's ports, addresses and network namespace, and the cache is not
// poisoned; anything else is answered by the kernel (Result). A slot that matches is
// this socket's own: a 4-tuple belongs to one socket of a namespace at a time, a
// closed socket's slot is emptied before its 4-tuple can be reused (or the cache is
// poisoned), and the program writes the slot before connect or accept returns.

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

// cached returns the cached Result of the socket with these addresses, and whether
// the cache could answer.
func (s *Signaller) cached(local, remote netip.AddrPort) (Result, bool) {
	if s.slots == nil || s.word(slotFlags) != 0 { // no cache, or poisoned
		return Result{}, false
	}
	ports := uint32(local.Port())<<16 | uint32(remote.Port())
	ra, la := remote.Addr().As16(), local.Addr().As16()
	base := slotIndex(ports, &ra, &la) * slotSize
	seq := s.word(base + slotSeq)
	if seq&1 != 0 {
		return Result{}, false
	}
	flags := s.word(base + slotFlags)
	netns := atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.slots[base+slotNetns])))
	ok := s.word(base+slotPorts) == ports && netns == s.netns
	for i := 0; i < 16; i += 4 {
		ok = ok && s.word(base+slotRemote+i) == binary.NativeEndian.Uint32(ra[i:]) &&
			s.word(base+slotLocal+i) == binary.NativeEndian.Uint32(la[i:])
	}
	if !ok || s.word(base+slotSeq) != seq {
		return Result{}, false
	}
	return decode(flags), true
}

// ResultAddr is [Signaller.Result] for a connected socket whose local and remote
// addresses the caller knows (as net.Conn's LocalAddr and RemoteAddr): it answers
// from memory shared with the program, without a system call, whenever that answer is
// provably this socket's, and asks the kernel otherwise. It reports the same Result
// as Result(fd).
func (s *Signaller) ResultAddr(fd int, local, remote netip.AddrPort) (Result, error) {
	if r, ok := s.cached(local, remote); ok {
		s.cacheHits.Add(1)
		return r, nil
	}
	return s.Result(fd)
}

// poison marks the results cache of the map fd unusable (the program is going away
// while sockets it published may stay open).
func poison(fd int) error {
	b := make([]byte, slotSize)
	binary.NativeEndian.PutUint32(b[slotFlags:], 1)
	var key uint32
	return mapUpdate(fd, unsafe.Pointer(&key), unsafe.Pointer(&b[0]))
}
