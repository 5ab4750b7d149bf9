package smc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"sync"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// The SMC-D device this package announces: a user-space shared-memory device with
// a 128-bit GID, which SMC-Dv2 carries the way it carries an Emulated-ISM device
// (two GID/CHID entries in the Proposal, the GID's second half in the extended-GID
// field of Accept and Confirm).
//
// CHID. Real ISM devices have hardware channel IDs below 0xFF00; 0xFF00-0xFFFF is
// reserved for Emulated-ISM devices, of which loopback-ism takes 0xFFFF and the
// proposed virtio-ism numbers up from 0xFF00. We take 0xFFFE: an Emulated-ISM CHID,
// so peers expect a 128-bit GID, yet neither a real ISM channel nor loopback-ism.
// A Linux kernel matches proposed CHIDs against its own devices and then asks the
// device whether it can reach the GID; no kernel device can reach ours, so a kernel
// declines, and we decline every CHID but this one.
const localCHID uint16 = 0xFFFE

// localEID is the user EID both sides must share for an SMC-Dv2 handshake (Linux
// needs an EID match for v2; non-s390 systems have no system EID).
var localEID = func() wire.EID {
	var e wire.EID
	copy(e[:], strings.Repeat(" ", len(e)))
	copy(e[:], "SMC-GO.SHM")
	return e
}()

// localGID returns this host's GID: a hash of the kernel's boot ID, so processes on
// one boot of one kernel agree on it, and distinct boots or hosts (random 128-bit
// boot IDs) never share one. The boot ID itself is not disclosed.
var localGID = sync.OnceValues(func() ([2]uint64, error) {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return [2]uint64{}, err
	}
	sum := sha256.Sum256(append([]byte("smc-go SMC-D GID\x00"), strings.TrimSpace(string(id))...))
	return [2]uint64{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])}, nil
})

// The device's shared memory: one shm.Endpoint per process and endpoint directory,
// created on first use, through which client processes set up their links to this
// one.
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

// shmReason maps a failure to set up shared memory to a decline reason: the
// process bound, or a peer buffer larger than this side maps, is MAX_DMB; a server
// endpoint not reachable from here is PEER_UNREACHABLE (sent as NOSMCDDEV); anything
// else went wrong with the link itself (its set-up, proof or bind), not with the
// device both sides have, and is LINK_SETUP (sent as INTERR).
func shmReason(err error) Reason {
	switch {
	case errors.Is(err, shm.ErrMemoryLimit), errors.Is(err, shm.ErrBadSize):
		return ReasonMaxDMB
	case errors.Is(err, shm.ErrUnreachable):
		return ReasonPeerUnreachable
	}
	return ReasonLinkSetup
}

// declineCode returns the code a Decline carries for reason: a local reason has
// none of its own on the wire.
func declineCode(reason Reason) wire.Code {
	switch reason {
	case ReasonPeerUnreachable:
		return wire.CodeNoSMCDDev
	case ReasonLinkSetup:
		return wire.CodeIntErr
	}
	return wire.Code(reason)
}

// compressedSize returns the CLC encoding of a ring size (16 KiB << c).
func compressedSize(size int) uint8 {
	c, _ := wire.CompressBufferSize(size)
	return c
}

// connectSMC binds a slot of this process's pool to the server's offered slot, over
// the link the Accept names (set up first if this process has none with that ID).
func connectSMC(ctx context.Context, cfg *Config, a *wire.AcceptConfirm) (*shm.Stream, error) {
	return shm.Connect(ctx, cfg.endpointDir(), a.LinkID, a.DMBToken, cfg.bufferSize(), wire.BufferSize(a.DMBESize), cfg.maxPeerBuffer())
}

var _ dataPath = (*shm.Stream)(nil)
