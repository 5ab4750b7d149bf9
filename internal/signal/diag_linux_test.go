package signal

import (
	"io"
	"testing"
)

// TestTCPSockets: the sock_diag dump finds a connection's two sockets with their
// addresses, inodes and byte counts, and, asked for the marks map, reads the marked
// client's word: it sent the option and the plain server did not answer it, while
// the server's socket, never marked, has none.
func TestTCPSockets(t *testing.T) {
	s := selfAttach(t)
	ln := listen(t, s, "tcp4", "127.0.0.1:0", false, false)
	c := dial(t, s, "tcp4", ln.Addr().String(), true, nil)
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := c.Write(make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(sc, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	id := s.MarksMapID()
	if id == 0 {
		t.Fatal("MarksMapID: 0")
	}
	socks, marksErr, err := TCPSockets([]uint32{id})
	if err != nil || marksErr != nil {
		t.Fatalf("TCPSockets: %v, marks: %v", err, marksErr)
	}
	var client, server *Socket
	for i := range socks {
		switch {
		case socks[i].Local == addrPort(c.LocalAddr()) && socks[i].Remote == addrPort(c.RemoteAddr()):
			client = &socks[i]
		case socks[i].Local == addrPort(sc.LocalAddr()) && socks[i].Remote == addrPort(sc.RemoteAddr()):
			server = &socks[i]
		}
	}
	if client == nil || server == nil {
		t.Fatalf("dump of %d sockets lacks the client (%v) or the server (%v)", len(socks), client, server)
	}
	if client.State != 1 || client.Inode == 0 || client.BytesAcked != 5001 || server.BytesReceived != 5000 {
		t.Errorf("client %+v, server %+v: want ESTABLISHED, an inode, 5000 bytes each way (and the SYN acked)", *client, *server)
	}
	if want := (Result{Marked: true, Sent: true}); !client.HasMark || client.Mark != want {
		t.Errorf("client mark %+v (has %v), want %+v", client.Mark, client.HasMark, want)
	}
	if server.HasMark {
		t.Errorf("server socket has a mark: %+v", server.Mark)
	}
}

// FuzzParseDiagDump: the dump parser takes hostile input without panicking.
func FuzzParseDiagDump(f *testing.F) {
	f.Add(make([]byte, nlmsgHdrLen+inetDiagMsgLen+8))
	f.Fuzz(func(t *testing.T, b []byte) { parseDiagDump(b) })
}
