package perf

import (
	"context"
	"io"
	"testing"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/testenv"
)

// TestBufferSizeRings dials the smc transport of a client and server given
// BufferSize and checks the SMC-D connection's rings are that size both ways:
// the option reaches the Config of the dialer and of the listener.
func TestBufferSizeRings(t *testing.T) {
	testenv.Require(t, "a child cgroup for the test binary", cgroupErr)
	testenv.Require(t, "eBPF signalling", smc.SignallingError())
	const size = 256 << 10
	s, err := newServer(ServerOptions{Control: "127.0.0.1:0", Host: "127.0.0.1", BufferSize: size}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx := context.Background()
	c, err := NewClient(ctx, s.control.Addr().String(), Options{Transports: []string{"smc"}, BufferSize: size, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Transports()[0].dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info := conn.(*smc.Conn).Info()
	if info.State.Mode != smc.ModeSMCD || info.ReceiveRing != size || info.SendRing != size {
		t.Errorf("mode %v, rings %d received into, %d sent into; want SMCD, %d both", info.State.Mode, info.ReceiveRing, info.SendRing, size)
	}
}
