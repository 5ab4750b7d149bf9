package smc

import (
	"context"
	"errors"
	"sync"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// The shared-memory device: one shm.Endpoint per process and endpoint directory,
// created on first use, through which clients attach to this process's DMBs.
var endpoints struct {
	mu sync.Mutex
	m  map[string]*shm.Endpoint // guarded by mu: Config.EndpointDir → endpoint
}

// endpoint returns the process's endpoint for dir, creating it on first use.
func endpoint(dir string) (*shm.Endpoint, error) {
	endpoints.mu.Lock()
	defer endpoints.mu.Unlock()
	if ep := endpoints.m[dir]; ep != nil {
		return ep, nil
	}
	ep, err := shm.Listen(shm.Config{Dir: dir})
	if err != nil {
		return nil, err
	}
	if endpoints.m == nil {
		endpoints.m = make(map[string]*shm.Endpoint)
	}
	endpoints.m[dir] = ep
	return ep, nil
}

// shmReason maps a failure to set up shared memory to a decline reason.
func shmReason(err error) Reason {
	if errors.Is(err, shm.ErrMemoryLimit) {
		return ReasonMaxDMB
	}
	return ReasonNoSMCDDev
}

// compressedSize returns the CLC encoding of a ring size (16 KiB << c).
func compressedSize(size int) uint8 {
	c, _ := wire.CompressBufferSize(size)
	return c
}

// connectSMC attaches to the server's offered DMB.
func connectSMC(ctx context.Context, cfg *Config, a *wire.AcceptConfirm) (*shm.Stream, error) {
	return shm.Connect(ctx, shm.Addr(cfg.endpointDir(), a.LinkID), a.DMBToken, cfg.bufferSize(), wire.BufferSize(a.DMBESize))
}

var _ dataPath = (*shm.Stream)(nil)
