// Command grpc runs gRPC over smc: a gRPC server on an smc listener, and a client
// that dials it with an smc.Dialer. It is a module of its own, so that the smc
// library gains no gRPC dependency.
//
// It serves the standard gRPC health service on a loopback port, calls it once, and
// prints the answer and the data path of the client's connection: SMCD where the
// process can announce SMC (see smc.SignallingError), TCP otherwise.
//
//	$ go run .
//	SERVING over SMCD
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync"

	"github.com/smc-go/smc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	status, mode, err := roundTrip(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(status, "over", mode)
}

// roundTrip serves the gRPC health service on an smc listener, calls it once through
// an smc.Dialer, and returns the answer and the mode of the client's connection.
func roundTrip(ctx context.Context) (healthpb.HealthCheckResponse_ServingStatus, smc.Mode, error) {
	ln, err := smc.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()

	var d smc.Dialer
	var mu sync.Mutex
	var mode smc.Mode // of the client's last connection
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				mu.Lock()
				mode = smc.State(c).Mode
				mu.Unlock()
			}
			return c, err
		}))
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return 0, 0, fmt.Errorf("health check: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return resp.GetStatus(), mode, nil
}
