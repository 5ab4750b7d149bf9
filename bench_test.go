package smc

import (
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// BenchmarkShortConn measures one short connection per op (connect, 1 KiB request,
// 1 KiB response, close) in one process, for plain net, for smc with SMC-D, and for
// each side of smc falling back to a plain peer.
func BenchmarkShortConn(b *testing.B) {
	for _, tc := range []struct {
		name   string
		listen listenFunc
		dial   dialFunc
	}{
		{"net", listenNet, dialNet},
		{"smc", listenSMC, dialSMC},
		{"smc-fallback-server", listenSMC, dialNet},
		{"smc-fallback-client", listenNet, dialSMC},
	} {
		b.Run(tc.name, func(b *testing.B) { benchShort(b, tc.listen, tc.dial) })
	}
}

// benchShort runs one short connection per op against a listener from listen whose
// server reads a 1 KiB request and answers it.
func benchShort(b *testing.B, listen listenFunc, dial dialFunc) {
	ln, err := listen()
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go serveEach(ln, func(c net.Conn) {
		go func() {
			defer c.Close()
			buf := make([]byte, 1024)
			if _, err := io.ReadFull(c, buf); err == nil {
				c.Write(buf)
			}
		}()
	})
	buf := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		c, err := dial(ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkDialCost measures what smc.Dialer costs a client of a plain server once
// the negative cache knows it (the fallback case of the nginx-client benchmark):
// every op dials the same plain listener with a net.Dialer and with an smc.Dialer,
// both with a Timeout, and with a second net.Dialer (the A/A control), in rotating
// order, and closes each connection. It reports each dialer's median wall time per
// dial and its median paired difference to the first net.Dialer.
func BenchmarkDialCost(b *testing.B) {
	ln, err := listenNet()
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go serveEach(ln, func(c net.Conn) { c.Close() })
	addr := ln.Addr().String()
	nd := net.Dialer{Timeout: 10 * time.Second}
	sd := Dialer{Timeout: 10 * time.Second}
	if c, err := sd.Dial("tcp", addr); err == nil { // teach the negative cache
		c.Close()
	}
	// A second net.Dialer is the A/A control: its difference to the first is the
	// noise floor.
	nd2 := nd
	names := []string{"net", "smc", "net-control"}
	dials := []func(string, string) (net.Conn, error){nd.Dial, sd.Dial, nd2.Dial}
	samples := make([][]time.Duration, len(dials))
	n := 0
	for b.Loop() {
		for j := range dials {
			i := (j + n) % len(dials)
			t0 := time.Now()
			c, err := dials[i]("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			samples[i] = append(samples[i], time.Since(t0))
			c.Close()
		}
		n++
	}
	if st := State(mustDial(b, sd, addr)); st.Fallback != ReasonNotOffered && SignallingError() == nil {
		b.Fatalf("smc.Dialer still offers SMC to a known plain server: %+v", st)
	}
	reportPaired(b, names, samples)
}

// BenchmarkAcceptCost measures what a marked smc.Listen listener costs a plain
// client: every op connects a net.Dialer to a plain-TCP net listener, to an
// smc.Listen listener, to the same kind of smc listener accepted with its
// *net.TCPListener directly (smc-kernel-only: the signalling program's share,
// without the Go side's read of the result), and to a second net listener (the
// A/A control), in a balanced order, and accepts and closes each connection. It
// reports each arm's median wall time from dial to Accept's return and each
// other arm's median paired difference to it.
func BenchmarkAcceptCost(b *testing.B) {
	mk := func(l net.Listener, err error) net.Listener {
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		return l
	}
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	plain := mk(lc.Listen(b.Context(), "tcp", "127.0.0.1:0"))
	ctl := mk(lc.Listen(b.Context(), "tcp", "127.0.0.1:0"))
	sm := mk(Listen("tcp", "127.0.0.1:0"))
	raw := mk(Listen("tcp", "127.0.0.1:0"))
	_, ok1 := sm.(*listener)
	_, ok2 := raw.(*listener)
	if !ok1 || !ok2 {
		b.Fatalf("smc listener not marked (signalling: %v)", SignallingError())
	}
	type arm struct {
		name   string
		addr   string
		accept func() (net.Conn, error)
	}
	arms := []arm{
		{"net", plain.Addr().String(), plain.Accept},
		{"smc", sm.Addr().String(), sm.Accept},
		{"smc-kernel-only", raw.Addr().String(), func() (net.Conn, error) { return raw.(*listener).tl.AcceptTCP() }},
		{"net-control", ctl.Addr().String(), ctl.Accept},
	}
	samples := make([][]time.Duration, len(arms))
	n := 0
	var d net.Dialer
	for b.Loop() {
		for j := range arms {
			i := (j + n) % len(arms)
			if (n/len(arms))%2 == 1 {
				i = (len(arms) - 1 - j + n) % len(arms)
			}
			t0 := time.Now()
			c, err := d.Dial("tcp", arms[i].addr)
			if err != nil {
				b.Fatal(err)
			}
			s, err := arms[i].accept()
			if err != nil {
				b.Fatal(err)
			}
			samples[i] = append(samples[i], time.Since(t0))
			s.Close()
			c.Close()
		}
		n++
	}
	names := make([]string, len(arms))
	for i, a := range arms {
		names[i] = a.name
	}
	reportPaired(b, names, samples)
}

// reportPaired reports each arm's median wall time per op (name-ns) and, for all
// but the first, the median of its paired differences to the first
// (name-diff-ns); samples[i][j] is arm i's time in rotation j.
func reportPaired(b *testing.B, names []string, samples [][]time.Duration) {
	med := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[len(d)/2])
	}
	for i, name := range names {
		diff := make([]time.Duration, len(samples[i]))
		for j := range diff {
			diff[j] = samples[i][j] - samples[0][j]
		}
		b.ReportMetric(med(samples[i]), name+"-ns")
		if i > 0 {
			b.ReportMetric(med(diff), name+"-diff-ns")
		}
	}
}

func mustDial(b *testing.B, d Dialer, addr string) net.Conn {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// serveEach hands every connection ln accepts to handle, until ln is closed.
func serveEach(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		handle(c)
	}
}
