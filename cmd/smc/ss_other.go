//go:build !linux

package main

import (
	"github.com/smc-go/smc/internal/registry"
	"github.com/smc-go/smc/internal/signal"
)

// sockets knows no sockets outside Linux.
func sockets(procs []*registry.Process) (map[uint64][]signal.Socket, []string) { return nil, nil }
