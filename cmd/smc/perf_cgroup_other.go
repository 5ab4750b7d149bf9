//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

// perfCgroup stands for the child cgroup smc perf uses on Linux; elsewhere there is none.
type perfCgroup struct{}

func enterPerfCgroup() (*perfCgroup, string, error) { return nil, "not Linux: no cgroup v2", nil }

func (cg *perfCgroup) leave() error { return nil }

func (cg *perfCgroup) plainPeerAttr(bool) (*syscall.SysProcAttr, func()) { return nil, func() {} }

func (cg *perfCgroup) plainPeerNote() string { return "in this process's cgroup" }

func pidCPU(pid int) (time.Duration, error) { return 0, errors.New("smc: perf: no /proc") }
