package smc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"

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
