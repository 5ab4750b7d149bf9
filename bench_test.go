package smc

import (
	"io"
	"testing"
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
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write(buf)
				}
			}()
		}
	}()
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
