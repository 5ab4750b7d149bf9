package smc

import (
	"context"
	"fmt"
	"testing"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// TestShmReason: a failure to set up shared memory is reported as what it was. Only a
// peer buffer or memory bound is MAX_DMB and only an endpoint out of reach is
// PEER_UNREACHABLE; a link that could not be set up or bound (an endpoint that did not
// prove itself, a set-up that outlasted the handshake) is LINK_SETUP, never NOSMCDDEV,
// which would say this host has no SMC-D device.
func TestShmReason(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason Reason
		code   wire.Code
	}{
		{fmt.Errorf("x: %w", shm.ErrMemoryLimit), ReasonMaxDMB, wire.CodeMaxDMB},
		{fmt.Errorf("x: %w", shm.ErrBadSize), ReasonMaxDMB, wire.CodeMaxDMB},
		{fmt.Errorf("x: %w", shm.ErrUnreachable), ReasonPeerUnreachable, wire.CodeNoSMCDDev},
		{fmt.Errorf("x: %w", shm.ErrNotProven), ReasonLinkSetup, wire.CodeIntErr},
		{fmt.Errorf("x: %w", shm.ErrOfferClosed), ReasonLinkSetup, wire.CodeIntErr},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), ReasonLinkSetup, wire.CodeIntErr},
	} {
		r := shmReason(tc.err)
		if r != tc.reason || declineCode(r) != tc.code {
			t.Errorf("%v: reason %v sent as %v, want %v sent as %v", tc.err, r, declineCode(r), tc.reason, tc.code)
		}
	}
}
