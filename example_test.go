package smc_test

import (
	"bufio"
	"context"
	"expvar"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/smc-go/smc"
)

// Dial and Listen are net.Dial and net.Listen that use SMC when both ends can.
// Both ends here are this package's, so on a host where the process can announce
// SMC the line goes through shared memory; elsewhere it goes over TCP. The program
// is the same either way.
func ExampleDial() {
	ln, err := smc.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() { // an echo server
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // an *smc.Conn runs its SMC handshake on its first Read or Write
	}()

	c, err := smc.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(c, "hello")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(line)
	c.Close()
	<-done
	// Output: hello
}

// State reports a connection's data path and, when it is TCP, why. A peer that
// does not speak SMC gets the kernel connection itself: smc.Dial returns a plain
// *net.TCPConn, and State still knows why it fell back.
func ExampleState() {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a plain TCP server
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()

	c, err := smc.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, plain := c.(*net.TCPConn)
	st := smc.State(c)
	fmt.Println("plain *net.TCPConn:", plain)
	fmt.Println("mode:", st.Mode)
	// The reason is PEERNOSMC where this process can announce SMC, and
	// SIGNALLING_UNAVAILABLE where it cannot (smc.SignallingError says why).
	fmt.Println("fell back:", st.Fallback == smc.ReasonPeerNoSMC || st.Fallback == smc.ReasonSignallingUnavailable)
	// Output:
	// plain *net.TCPConn: true
	// mode: TCP
	// fell back: true
}

// A ListenConfig's Policy decides per listening address whether the listener offers
// SMC. A listener that does not is the standard library's own *net.TCPListener, and
// nothing of this package runs on its connections.
func ExampleListenConfig() {
	policy := smc.NewPolicy(smc.Rules{Listen: []smc.Rule{
		{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Offer: false},
	}})
	lc := smc.ListenConfig{Config: &smc.Config{Policy: policy}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	_, std := ln.(*net.TCPListener)
	fmt.Println("standard library listener:", std)
	// Output: standard library listener: true
}

// A Policy decides per destination whether a Dialer offers SMC; the first rule that
// matches wins, and without one only destinations on this host are offered SMC.
// Here a Redis port on a container network is offered, and SSH never is.
func ExamplePolicy() {
	policy := smc.NewPolicy(smc.Rules{Dial: []smc.Rule{
		{Prefix: netip.MustParsePrefix("10.88.0.0/16"), Port: 6379, Offer: true},
		{Port: 22, Offer: false},
	}})
	d := &smc.Dialer{Config: &smc.Config{Policy: policy}}
	_ = d // d.Dial consults the policy for every address it connects to

	for _, dst := range []string{"10.88.0.5:6379", "10.88.0.5:80", "127.0.0.1:22", "127.0.0.1:8080"} {
		fmt.Println(dst, policy.OfferDial(netip.MustParseAddrPort(dst)))
	}
	// Output:
	// 10.88.0.5:6379 true
	// 10.88.0.5:80 false
	// 127.0.0.1:22 false
	// 127.0.0.1:8080 true
}

// Policy.Set changes the rules at run time: later dials and listeners follow the
// new rules, connections already made are not affected.
func ExamplePolicy_Set() {
	var policy smc.Policy // the zero Policy has no rules: the defaults
	dst := netip.MustParseAddrPort("127.0.0.1:8080")
	fmt.Println("before:", policy.OfferDial(dst))
	policy.Set(smc.Rules{Dial: []smc.Rule{{Offer: false}}}) // offer SMC to nobody
	fmt.Println("after:", policy.OfferDial(dst))
	// Output:
	// before: true
	// after: false
}

// An http.Server serves on an smc listener and an http.Transport dials with an
// smc.Dialer; nothing else changes. Requests between two such programs on one host
// go through shared memory where the processes can announce SMC, and over TCP
// otherwise; each side also talks plain HTTP/TCP with every other peer.
func Example_http() {
	ln, err := smc.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	var d smc.Dialer
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Get("http://" + ln.Addr().String() + "/hello")
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(body))
	// Output: GET /hello
}

// Stats and Conn.Info return plain structs, so exporting them takes a few lines.
// Here expvar publishes the process's statistics as JSON at /debug/vars (reasons
// by name), and writeMetrics writes them in Prometheus's text format; it is shown
// with the statistics of a process that dialed three connections: one to a plain
// server, one in SMC-D, and one the server declined for lack of memory.
func ExampleStats() {
	if expvar.Get("smc") == nil {
		expvar.Publish("smc", expvar.Func(func() any { return smc.Stats() }))
	}
	// A metrics handler would call writeMetrics(w, smc.Stats()).
	writeMetrics(os.Stdout, smc.Statistics{Client: smc.SideStatistics{
		Offered: 3, PeerNoSMC: 1, Negotiated: 2, SMCD: 1,
		Fallbacks:    map[smc.Reason]uint64{smc.ReasonPeerDecl: 1},
		PeerDeclines: map[smc.Reason]uint64{smc.ReasonMaxDMB: 1},
	}, OpenSMCD: 1, Links: 1, MemoryInUse: 8 << 20, MemoryLimit: 1 << 30})
	// Output:
	// smc_offered_total{side="client"} 3
	// smc_peer_no_smc_total{side="client"} 1
	// smc_negotiated_total{side="client"} 2
	// smc_smcd_total{side="client"} 1
	// smc_fallbacks_total{side="client",reason="PEERDECL"} 1
	// smc_peer_declines_total{side="client",reason="MAX_DMB"} 1
	// smc_offered_total{side="server"} 0
	// smc_peer_no_smc_total{side="server"} 0
	// smc_negotiated_total{side="server"} 0
	// smc_smcd_total{side="server"} 0
	// smc_handshakes_in_flight 0
	// smc_connections_open{mode="SMCD"} 1
	// smc_connections_open{mode="TCP"} 0
	// smc_shared_memory_bytes 8388608
	// smc_shared_memory_limit_bytes 1073741824
}

// writeMetrics writes s in Prometheus's text exposition format.
func writeMetrics(w io.Writer, s smc.Statistics) {
	reasons := func(name, side string, m map[smc.Reason]uint64) {
		for _, r := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(w, "smc_%s_total{side=%q,reason=%q} %d\n", name, side, r, m[r])
		}
	}
	for _, side := range []struct {
		name string
		s    smc.SideStatistics
	}{{"client", s.Client}, {"server", s.Server}} {
		fmt.Fprintf(w, "smc_offered_total{side=%q} %d\n", side.name, side.s.Offered)
		fmt.Fprintf(w, "smc_peer_no_smc_total{side=%q} %d\n", side.name, side.s.PeerNoSMC)
		fmt.Fprintf(w, "smc_negotiated_total{side=%q} %d\n", side.name, side.s.Negotiated)
		fmt.Fprintf(w, "smc_smcd_total{side=%q} %d\n", side.name, side.s.SMCD)
		reasons("fallbacks", side.name, side.s.Fallbacks)
		reasons("local_declines", side.name, side.s.LocalDeclines)
		reasons("peer_declines", side.name, side.s.PeerDeclines)
	}
	fmt.Fprintf(w, "smc_handshakes_in_flight %d\n", s.HandshakesInFlight)
	fmt.Fprintf(w, "smc_connections_open{mode=\"SMCD\"} %d\n", s.OpenSMCD)
	fmt.Fprintf(w, "smc_connections_open{mode=\"TCP\"} %d\n", s.OpenTCP)
	fmt.Fprintf(w, "smc_shared_memory_bytes %d\n", s.MemoryInUse)
	fmt.Fprintf(w, "smc_shared_memory_limit_bytes %d\n", s.MemoryLimit)
}

// Info tells what a connection negotiated and what it carried, in either mode. (A
// plain *net.TCPConn has no Info: smc.State still tells its mode and reason.)
func ExampleConn_Info() {
	ln, err := smc.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := smc.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	bufio.NewReader(c).ReadString('\n')
	if sc, ok := c.(*smc.Conn); ok { // both ends announced SMC
		i := sc.Info()
		fmt.Printf("%v since %v: %d bytes sent, %d received, rings %d/%d\n", i.State.Mode,
			i.Start.Format(time.TimeOnly), i.BytesSent, i.BytesReceived, i.ReceiveRing, i.SendRing)
	}
}
