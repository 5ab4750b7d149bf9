package testenv

import (
	"net"
	"strconv"
	"testing"
)

func TestCapture(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := StartCapture(t, "lo", "tcp port "+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	cc, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cc.Close()
	sc.Close()
	var syn, synack int
	for _, p := range c.Stop() {
		switch {
		case p.Is(FlagSYN) && p.Dst.String() == ln.Addr().String():
			syn++
		case p.Is(FlagSYN|FlagACK) && p.Src.String() == ln.Addr().String():
			synack++
		}
	}
	if syn != 1 || synack != 1 {
		t.Errorf("captured %d SYN and %d SYN-ACK, want 1 and 1", syn, synack)
	}
}
