package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/testenv"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestMain runs the tests in a child cgroup of their own when it can (as root), so
// that the smc package attaches its eBPF program there and nowhere else.
func TestMain(m *testing.M) {
	var why error
	code := testenv.RunInChildCgroup(m, &why)
	if why != nil {
		fmt.Fprintln(os.Stderr, "not in a child cgroup:", why)
	}
	os.Exit(code)
}

// TestRoundTrip: a gRPC call goes through an smc listener and dialer, over shared
// memory where the process can announce SMC.
func TestRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, mode, err := roundTrip(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health status %v, want SERVING", status)
	}
	testenv.Require(t, "eBPF signalling, to check the data path", smc.SignallingError())
	if mode != smc.ModeSMCD {
		t.Fatalf("the call went over %v, want SMCD", mode)
	}
}
