//go:build !linux

package perf

import (
	"errors"
	"syscall"
	"time"
)

// A Cgroup stands for the child cgroup the process uses on Linux; elsewhere there is none.
type Cgroup struct{}

// EnterCgroup does nothing but say so: there is no cgroup v2 to enter.
func EnterCgroup() (*Cgroup, string, error) { return nil, "not Linux: no cgroup v2", nil }

// Leave does nothing.
func (cg *Cgroup) Leave() error { return nil }

// PlainPeerAttr starts peers with default attributes.
func (cg *Cgroup) PlainPeerAttr(bool) (*syscall.SysProcAttr, func()) { return nil, func() {} }

// PlainPeerNote says where PlainPeerAttr starts plain peers.
func (cg *Cgroup) PlainPeerNote() string { return "in this process's cgroup" }

// PidCPU fails: there is no /proc.
func PidCPU(pid int) (time.Duration, error) { return 0, errors.New("smc: perf: no /proc") }
