package smc

import (
	"errors"
	"net/netip"

	"github.com/smc-go/smc/internal/signal"
)

// ebpfSignaller is the sock_ops program of internal/signal.
type ebpfSignaller struct{ s *signal.Signaller }

// openSignaller opens the eBPF signalling: objects pinned for this process's cgroup
// by `smc attach`, or, with CAP_BPF and CAP_NET_ADMIN, the program attached to the
// process's own (non-root) cgroup for the life of the process.
func openSignaller() (signaller, error) {
	s, err := signal.Open()
	if err != nil {
		return nil, err
	}
	return ebpfSignaller{s}, nil
}

func (e ebpfSignaller) mark(fd int) error { return e.s.Mark(fd) }

func (e ebpfSignaller) result(fd int, local, remote netip.AddrPort) (sigResult, error) {
	r, err := e.s.ResultAddr(fd, local, remote)
	return sigResult{Marked: r.Marked, Sent: r.Sent, Received: r.Received, Conflict: r.Conflict}, err
}

func (e ebpfSignaller) accepted(fd int, local, remote netip.AddrPort) (sigResult, error) {
	r, err := e.s.AcceptedResult(fd, local, remote)
	return sigResult{Marked: r.Marked, Sent: r.Sent, Received: r.Received}, err
}

func (e ebpfSignaller) cached(local, remote netip.AddrPort, accepted bool) (sigResult, bool) {
	r, ok := e.s.CachedResult(local, remote, accepted)
	return sigResult{Marked: r.Marked, Sent: r.Sent, Received: r.Received, Conflict: r.Conflict}, ok
}

func (e ebpfSignaller) err() error { return e.s.Err() }

func (e ebpfSignaller) noteConflict() {
	e.s.NoteConflict(errors.New("a connection's SYN carried the SMC option before this package's program wrote it"))
}

func (e ebpfSignaller) close() error { return e.s.Close() }
