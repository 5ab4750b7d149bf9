package signal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conflicts.
//
// The SMC option in a handshake means "I speak CLC". If something other than this
// package's program writes it (another program, or an older version of this one
// that does not agree with ours on every socket), a peer may see it on a
// connection whose application does not expect CLC and start a CLC handshake in
// that application's stream. Whatever cannot be made exact is detected, and the
// process then offers SMC on no connection (ErrConflict):
//
//   - Open, with privilege, reads every program that runs on the cgroup's sockets:
//     another version of this package's program (same name, other code) is a
//     conflict;
//   - when other programs run there too (or when the process may not look, using
//     prepared pins), Open makes two loopback connections to a listener it did not
//     mark: a SYN-ACK that carries the option, or a SYN this process did not mark
//     that carries it, is a conflict;
//   - a privileged process queries the cgroup's programs again every watchInterval
//     and repeats those checks when they changed;
//   - a client SYN that already carried the option when the program went to write it
//     (Result.Conflict) is a conflict from then on.

// conflict wraps err as a conflict.
func conflict(err error) error {
	return fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrConflict, err)
}

// Err returns nil while the Signaller may announce SMC, and an error wrapping
// [ErrConflict] once it found a situation it cannot make exact.
func (s *Signaller) Err() error {
	if !s.conflict.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conflictErr
}

// NoteConflict makes the Signaller report a conflict from now on; the caller found
// one on a connection (Result.Conflict).
func (s *Signaller) NoteConflict(err error) {
	s.setConflict(conflict(err))
}

func (s *Signaller) setConflict(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conflictErr == nil {
		s.conflictErr = err
		s.conflict.Store(true)
	}
}

// checkConflict runs the loopback probe when programs other than this package's may
// run on the process's sockets, and records what it found.
func (s *Signaller) checkConflict() error {
	if s.watchFD >= 0 && s.foreign == 0 {
		s.setProbeNote("not needed: no other sock_ops program runs on this cgroup's sockets")
		return nil
	}
	note, err := s.probe()
	s.setProbeNote(note)
	return err
}

func (s *Signaller) setProbeNote(note string) {
	s.mu.Lock()
	s.probeNote = note
	s.mu.Unlock()
}

// ProbeNote says what the last conflict check found, or why it could not run.
func (s *Signaller) ProbeNote() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probeNote
}

// probeTimeout bounds each loopback connection of the probe.
const probeTimeout = 2 * time.Second

// probe makes two loopback connections to a listener this process did not mark,
// which saves its clients' SYNs: one from a marked client, whose SYN-ACK must not
// carry the option, and whose SYN must carry ours (else the program does not run on
// this process's sockets); one from a client that is not marked, whose SYN must not
// carry it.
func (s *Signaller) probe() (string, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_SAVE_SYN, 1) })
		return err
	}}
	lc.SetMultipathTCP(false)
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	ln, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Sprintf("not checked: no loopback listener (%v)", err), nil
	}
	defer ln.Close()
	marked := func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = s.Mark(int(fd)) })
		return err
	}
	r, _, err := probeConn(ctx, ln, marked, func(fd int) (Result, error) { return s.Result(fd) })
	if err != nil {
		return fmt.Sprintf("not checked: loopback connection failed (%v)", err), nil
	}
	switch {
	case r.Conflict:
		return "conflict", conflict(errors.New("another program writes the SMC option into this process's SYNs"))
	case !r.Sent:
		return "the program does not run", unavailable(errors.New("the signalling program does not run on this process's sockets (was the process moved to another cgroup after it started?)"))
	case r.Received:
		return "conflict", conflict(errors.New("a listener this process did not mark answered with the SMC option: another program writes it"))
	}
	_, syn, err := probeConn(ctx, ln, nil, nil)
	if err != nil {
		return fmt.Sprintf("not checked: loopback connection failed (%v)", err), nil
	}
	if hasOption(syn) {
		return "conflict", conflict(errors.New("SYNs this process did not mark carry the SMC option: another program writes it"))
	}
	return "no other program writes the SMC option", nil
}

// probeConn dials ln with the given Control hook and returns what result reads of
// the client socket, and the SYN the accepted socket saved.
func probeConn(ctx context.Context, ln net.Listener, control func(string, string, syscall.RawConn) error,
	result func(int) (Result, error)) (Result, []byte, error) {
	d := net.Dialer{Control: control}
	d.SetMultipathTCP(false)
	c, err := d.DialContext(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		return Result{}, nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		ln.(*net.TCPListener).SetDeadline(dl)
	}
	sc, err := ln.Accept()
	if err != nil {
		return Result{}, nil, err
	}
	defer sc.Close()
	var r Result
	var syn []byte
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return Result{}, nil, err
	}
	if result != nil {
		rc.Control(func(fd uintptr) { r, err = result(int(fd)) })
		if err != nil {
			return Result{}, nil, err
		}
	}
	src, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		return Result{}, nil, err
	}
	src.Control(func(fd uintptr) {
		buf := make([]byte, 512)
		n, gerr := getsockoptBytes(int(fd), unix.IPPROTO_TCP, unix.TCP_SAVED_SYN, buf)
		if gerr == nil {
			syn = buf[:n]
		}
	})
	return r, syn, nil
}

// getsockoptBytes reads a socket option into buf and returns its length.
func getsockoptBytes(fd, level, opt int, buf []byte) (int, error) {
	n := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// hasOption reports whether the saved SYN (IPv4 and TCP headers) carries the SMC
// option.
func hasOption(syn []byte) bool {
	if len(syn) < 20 || syn[0]>>4 != 4 {
		return false
	}
	ihl := int(syn[0]&0x0f) * 4
	if len(syn) < ihl+20 {
		return false
	}
	tcp := syn[ihl:]
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return false
	}
	opts := tcp[20:off]
	for len(opts) > 0 {
		switch opts[0] {
		case 0: // end of options
			return false
		case 1: // no-op
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return false
		}
		if opts[0] == 254 && opts[1] == 6 && opts[2] == 0xE2 && opts[3] == 0xD4 && opts[4] == 0xC3 && opts[5] == 0xD9 {
			return true
		}
		opts = opts[opts[1]:]
	}
	return false
}

// watchInterval is how often a privileged process asks which programs run on its
// cgroup's sockets.
const watchInterval = 5 * time.Second

// startWatcher watches the programs on the cgroup of s.watchFD, if any, starting
// from the list Open saw. From then on the watcher owns s.seen and s.foreign.
func (s *Signaller) startWatcher() {
	if s.watchFD < 0 {
		return
	}
	seen := s.seen
	s.stopWatch = make(chan struct{})
	s.watchDone = make(chan struct{})
	go func() {
		defer close(s.watchDone)
		t := time.NewTicker(watchInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stopWatch:
				return
			case <-t.C:
			}
			progs, err := queryEffective(s.watchFD)
			if err != nil || slices.Equal(progs, seen) {
				continue
			}
			seen = progs
			found := classify(progs)
			if found.version != nil {
				s.setConflict(conflict(found.version))
				continue
			}
			if found.foreign > s.foreign {
				s.foreign = found.foreign
				note, err := s.probe()
				s.setProbeNote(note)
				if errors.Is(err, ErrConflict) {
					s.setConflict(err)
				}
			}
		}
	}()
}

// stopWatcher stops the watcher, if any, and closes the cgroup directory.
func (s *Signaller) stopWatcher() {
	if s.stopWatch != nil {
		close(s.stopWatch)
		<-s.watchDone
	}
	if s.watchFD >= 0 {
		unix.Close(s.watchFD)
		s.watchFD = -1
	}
}
