package signal

import (
	"encoding/binary"
	"errors"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Records of SYN-ACK decisions are deleted by the program when the connection is
// established. A request that never completes (the client went away, a flood of SYNs
// announcing SMC) leaves its record behind; a full table makes marked listeners stop
// echoing (counted as err_record), which is exact but turns SMC off. The sweeper
// deletes records older than recordMaxAge, far beyond the life of a request (with
// the default net.ipv4.tcp_synack_retries=5 a request expires after about a
// minute), so that no record a pending request still needs is ever deleted.
const (
	recordMaxAge  = 10 * time.Minute
	sweepInterval = time.Minute
)

// startSweeper runs sweepRecords on the records map fd every sweepInterval until
// Close. The Signaller owns fd. Maps pinned by an older smc attach key their records
// by the SYN's headers (56 bytes) instead of a cookie; their values are the same, so
// they are swept too. A map whose shape the sweeper does not know is closed and left
// alone.
func (s *Signaller) startSweeper(fd int) {
	if !sweepable(fd) {
		unix.Close(fd)
		return
	}
	s.records = fd
	s.stopSweep = make(chan struct{})
	s.sweepDone = make(chan struct{})
	go func() {
		defer close(s.sweepDone)
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stopSweep:
				return
			case <-t.C:
				if now, err := monotonicNow(); err == nil {
					sweepRecords(fd, now, recordMaxAge)
				}
			}
		}
	}()
}

// stopSweeper stops the sweeper, if any, and closes the records map.
func (s *Signaller) stopSweeper() {
	if s.stopSweep == nil {
		return
	}
	close(s.stopSweep)
	<-s.sweepDone
	unix.Close(s.records)
}

// monotonicNow returns bpf_ktime_get_ns's clock: CLOCK_MONOTONIC in nanoseconds.
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return uint64(ts.Nano()), nil
}

// sweepRecords deletes the records of the map fd whose first SYN-ACK is older than
// maxAge at the monotonic time now, and returns how many it deleted. Before the
// clock has reached maxAge (a machine booted less than maxAge ago) no record can
// be that old: nothing is deleted, rather than everything.
func sweepRecords(fd int, now uint64, maxAge time.Duration) (int, error) {
	if now < uint64(maxAge) {
		return 0, nil
	}
	cutoff := now - uint64(maxAge)
	// One heap buffer holds the keys and the value (see elemBuf); the kernel writes
	// the map's key size, at most maxSweepKey (sweepable).
	buf := new(struct {
		key, next [maxSweepKey]byte
		value     [recordSize]byte
	})
	var victims [][maxSweepKey]byte
	first := true
	for {
		var err error
		if first {
			err = mapNextKey(fd, nil, unsafe.Pointer(&buf.next))
			first = false
		} else {
			err = mapNextKey(fd, unsafe.Pointer(&buf.key), unsafe.Pointer(&buf.next))
		}
		if errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return 0, err
		}
		buf.key = buf.next
		if mapLookup(fd, unsafe.Pointer(&buf.key), unsafe.Pointer(&buf.value)) != nil {
			continue // deleted meanwhile
		}
		if binary.NativeEndian.Uint64(buf.value[:8]) < cutoff {
			victims = append(victims, buf.key)
		}
	}
	n := 0
	for i := range victims {
		buf.key = victims[i]
		if mapDelete(fd, unsafe.Pointer(&buf.key)) == nil {
			n++
		}
	}
	return n, nil
}

func mapNextKey(mapFD int, key, next unsafe.Pointer) error {
	attr := &elemAttr{mapFD: uint32(mapFD), key: uint64(uintptr(key)), value: uint64(uintptr(next))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_GET_NEXT_KEY, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	if errno != 0 {
		return errno
	}
	return nil
}

func mapDelete(mapFD int, key unsafe.Pointer) error {
	attr := &elemAttr{mapFD: uint32(mapFD), key: uint64(uintptr(key))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_DELETE_ELEM, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	if errno != 0 {
		return errno
	}
	return nil
}

// maxSweepKey bounds the key size of a records map the sweeper accepts: today's
// keys are recordKeySize bytes, those of maps pinned by older versions 56.
const maxSweepKey = 64

// sweepable reports whether the map fd is a records map the sweeper's buffers fit:
// keys of at most maxSweepKey bytes, values of recordSize.
func sweepable(fd int) bool {
	k, v, err := mapSizes(fd)
	return err == nil && k > 0 && k <= maxSweepKey && v == recordSize
}

// mapSizes returns the key and value sizes of the map fd. It runs once per
// Signaller, off any connection's path, so cilium/ebpf's map information will do; it
// is given a duplicate, since it takes ownership of the fd.
func mapSizes(fd int) (key, value uint32, err error) {
	dup, err := dupCloexec(fd)
	if err != nil {
		return 0, 0, err
	}
	m, err := ebpf.NewMapFromFD(dup)
	if err != nil {
		unix.Close(dup)
		return 0, 0, err
	}
	defer m.Close()
	return m.KeySize(), m.ValueSize(), nil
}
