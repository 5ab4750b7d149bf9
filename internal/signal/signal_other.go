//go:build !linux

package signal

import (
	"fmt"
	"net/netip"
)

var errOther = fmt.Errorf("%w: %w", ErrUnavailable, ErrNotSupported)

// Signaller marks sockets and reads handshake results; only on Linux.
type Signaller struct{}

// Open reports that signalling needs Linux.
func Open() (*Signaller, error) { return nil, errOther }

// Mark reports that signalling needs Linux.
func (s *Signaller) Mark(fd int) error { return errOther }

// Result reports that signalling needs Linux.
func (s *Signaller) Result(fd int) (Result, error) { return Result{}, errOther }

// Stats reports that signalling needs Linux.
func (s *Signaller) Stats() (map[string]uint64, error) { return nil, errOther }

// Mode describes how the signaller was opened.
func (s *Signaller) Mode() string { return "" }

// Close does nothing.
func (s *Signaller) Close() error { return nil }

// AttachCgroup reports that signalling needs Linux.
func AttachCgroup(path string, opts AttachOptions) (string, error) { return "", errOther }

// DetachCgroup reports that signalling needs Linux.
func DetachCgroup(path string) error { return errOther }

// Probe reports that signalling needs Linux.
func Probe() Report { return Report{Err: errOther} }

// ResultAddr reports that signalling needs Linux.
func (s *Signaller) ResultAddr(fd int, local, remote netip.AddrPort) (Result, error) {
	return Result{}, errOther
}

// AcceptedResult reports that signalling needs Linux.
func (s *Signaller) AcceptedResult(fd int, local, remote netip.AddrPort) (Result, error) {
	return Result{}, errOther
}

// CachedResult reports that nothing is cached on other operating systems.
func (s *Signaller) CachedResult(local, remote netip.AddrPort, accepted bool) (Result, bool) {
	return Result{}, false
}

// Err reports that signalling needs Linux.
func (s *Signaller) Err() error { return errOther }

// NoteConflict does nothing.
func (s *Signaller) NoteConflict(err error) {}

// ProbeNote says that nothing was checked.
func (s *Signaller) ProbeNote() string { return "" }

// Prepared is a prepared cgroup; there are none on other operating systems.
type Prepared struct {
	ID     uint64
	Path   string
	PinDir string
	State  string
}

// ListPrepared reports that signalling needs Linux.
func ListPrepared() ([]Prepared, error) { return nil, errOther }

// An Instance is a sock_ops program on a cgroup; there are none on other operating
// systems.
type Instance struct {
	ID   uint32
	Kind string
}

// Instances reports that signalling needs Linux.
func Instances(dir string) ([]Instance, error) { return nil, errOther }

// CgroupMount reports that cgroups need Linux.
func CgroupMount() (string, error) { return "", errOther }

// BPFFSMount reports that bpffs needs Linux.
func BPFFSMount() (string, error) { return "", errOther }

// OwnCgroup reports that cgroups need Linux.
func OwnCgroup() (string, bool, error) { return "", false, errOther }

// MarksMapID returns 0 outside Linux.
func (s *Signaller) MarksMapID() uint32 { return 0 }

// TCPSockets fails outside Linux.
func TCPSockets(markMaps []uint32) ([]Socket, error, error) { return nil, nil, errOther }
