//go:build !linux

package perf

import "errors"

// Memory is what a process holds; it is read from /proc on Linux only.
type Memory struct {
	RSS int64 `json:"rss"`
	PSS int64 `json:"pss"`
	PTE int64 `json:"pte"`
}

// SelfMemory fails: there is no /proc.
func SelfMemory() (Memory, error) { return Memory{}, errors.New("smc: perf: no /proc") }

// PidMemory fails: there is no /proc.
func PidMemory(int) (Memory, error) { return Memory{}, errors.New("smc: perf: no /proc") }

// A MemCgroup stands for the memory cgroup the process uses on Linux.
type MemCgroup struct{}

// EnterMemCgroup does nothing but say so.
func EnterMemCgroup() (*MemCgroup, string, error) { return nil, "not Linux: no memory cgroup", nil }

// Charge reports no charge.
func (cg *MemCgroup) Charge() (int64, bool) { return 0, false }

// Leave does nothing.
func (cg *MemCgroup) Leave() error { return nil }
