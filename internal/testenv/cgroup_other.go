//go:build !linux

package testenv

import (
	"errors"
	"testing"
)

var errNotLinux = errors.New("smc: testenv: cgroups and eBPF need Linux")

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted; only on Linux.
func Cgroup2Mount() (string, error) { return "", errNotLinux }

// OwnCgroup returns the directory of the process's cgroup v2; only on Linux.
func OwnCgroup() (string, error) { return "", errNotLinux }

// ChildCgroup stops the test: cgroups exist only on Linux.
func ChildCgroup(tb testing.TB) string { Require(tb, "cgroup v2", errNotLinux); return "" }

// RequireBPF stops the test: eBPF exists only on Linux.
func RequireBPF(tb testing.TB) { Require(tb, "eBPF", errNotLinux) }

// BPFFSMount returns where a bpf file system is mounted; only on Linux.
func BPFFSMount() (string, error) { return "", errNotLinux }
