package smc

import (
	"io"
	"net"
	"testing"
)

// BenchmarkShortConn measures one short connection per op (connect, 1 KiB request,
// 1 KiB response, close) in one process, for plain net, and for smc with SMC-D.
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
		b.Run(tc.name, func(b *testing.B) {
			ln, err := tc.listen()
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				buf := make([]byte, 1024)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						if _, err := io.ReadFull(c, buf); err == nil {
							c.Write(buf)
						}
					}()
				}
			}()
			buf := make([]byte, 1024)
			b.ReportAllocs()
			for b.Loop() {
				c, err := tc.dial(ln.Addr().String())
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
		})
	}
}

var _ net.Conn
