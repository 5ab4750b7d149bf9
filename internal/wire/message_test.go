package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseDispatch(t *testing.T) {
	tests := []struct {
		hex  string
		want reflect.Type
	}{
		{proposalLoopback, reflect.TypeOf(&Proposal{})},
		{acceptFirstContact, reflect.TypeOf(&AcceptConfirm{})},
		{confirmPlain, reflect.TypeOf(&AcceptConfirm{})},
		{linuxDeclineV1, reflect.TypeOf(&Decline{})},
	}
	for _, tt := range tests {
		b := unhex(t, tt.hex)
		m, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(m) != tt.want {
			t.Fatalf("Parse returned %T, want %v", m, tt.want)
		}
		if !bytes.Equal(m.Append(nil), b) {
			t.Fatalf("%T does not round-trip", m)
		}
	}
	for _, b := range [][]byte{nil, []byte("GET / HTTP/1.1\r\n\r\n"), unhex(t, "e2d4c3d9 05 001c 10")} {
		if _, err := Parse(b); err == nil {
			t.Fatalf("Parse(% x) succeeded", b)
		}
	}
}

// splitReaders return a reader of b that returns everything at once, one byte at a
// time, or half of what is asked.
var splitReaders = map[string]func(b []byte) io.Reader{
	"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
	"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
	"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
}

// TestReadMessage reads a message followed by other bytes, through readers that
// return one byte at a time or everything at once, and checks that exactly the
// message is consumed.
func TestReadMessage(t *testing.T) {
	decl := unhex(t, linuxDeclineV1)
	prop := unhex(t, proposalLoopback)
	after := []byte("application data")
	for rname, mk := range splitReaders {
		for _, msg := range [][]byte{decl, prop} {
			r := mk(append(append([]byte(nil), msg...), after...))
			buf := make([]byte, 0, MaxMessageLen)
			got, err := ReadMessage(r, buf)
			if err != nil {
				t.Fatalf("%s: %v", rname, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("%s: read\n% x\nwant\n% x", rname, got, msg)
			}
			if &got[0] != &buf[:1][0] {
				t.Fatalf("%s: did not use buf", rname)
			}
			if rest, _ := io.ReadAll(r); !bytes.Equal(rest, after) {
				t.Fatalf("%s: left %q, want %q", rname, rest, after)
			}
		}
	}
}

// TestReadMessageAhead reads a message followed by other bytes: what the reads
// returned beyond the message comes back as rest, nothing is lost, and a message that
// arrived whole takes one read.
func TestReadMessageAhead(t *testing.T) {
	decl := unhex(t, linuxDeclineV1)
	prop := unhex(t, proposalLoopback)
	after := []byte("application data")
	for rname, mk := range splitReaders {
		for _, msg := range [][]byte{decl, prop} {
			cr := &countingReader{r: mk(append(append([]byte(nil), msg...), after...))}
			buf := make([]byte, 0, MaxMessageLen)
			got, rest, err := ReadMessageAhead(cr, buf)
			if err != nil {
				t.Fatalf("%s: %v", rname, err)
			}
			if !bytes.Equal(got, msg) || cap(got) != len(msg) {
				t.Fatalf("%s: read\n% x (cap %d)\nwant\n% x", rname, got, cap(got), msg)
			}
			if &got[0] != &buf[:1][0] {
				t.Fatalf("%s: did not use buf", rname)
			}
			left, _ := io.ReadAll(cr.r)
			if all := append(append([]byte(nil), rest...), left...); !bytes.Equal(all, after) {
				t.Fatalf("%s: rest %q and left %q, want %q", rname, rest, left, after)
			}
			if rname == "whole" && (cr.n != 1 || !bytes.Equal(rest, after)) {
				t.Fatalf("whole: %d reads, rest %q", cr.n, rest)
			}
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	c.n++
	return c.r.Read(b)
}

func TestReadMessageSmallBuffer(t *testing.T) {
	prop := unhex(t, proposalLoopback)
	for _, buf := range [][]byte{nil, make([]byte, 3), make([]byte, 100)} {
		got, err := ReadMessage(bytes.NewReader(prop), buf)
		if err != nil || !bytes.Equal(got, prop) {
			t.Fatalf("cap %d: % x, %v", cap(buf), got, err)
		}
	}
}

func TestReadMessageNotCLC(t *testing.T) {
	tests := []struct {
		name    string
		stream  []byte
		oneByte []byte // consumed by a one-byte reader
	}{
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), []byte("G")},
		{"tls", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, []byte{0x16}},
		{"eyecatcher then bad type", unhex(t, "e2d4c3d9 09 001c 10 00"), unhex(t, "e2d4c3d9 09")},
		{"bad length", unhex(t, "e2d4c3d9 04 0100 10"), unhex(t, "e2d4c3d9 04 01")},
		{"version 0", unhex(t, "e2d4c3d9 04 001c 00 ffff"), unhex(t, "e2d4c3d9 04 001c 00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadMessage(iotest.OneByteReader(bytes.NewReader(tt.stream)), nil)
			if !errors.Is(err, ErrNotCLC) {
				t.Fatalf("one byte: err %v, want ErrNotCLC", err)
			}
			wantParseError(t, err, CodePeerNoSMC)
			if !bytes.Equal(got, tt.oneByte) {
				t.Fatalf("one byte: consumed % x, want % x", got, tt.oneByte)
			}
			// A reader returning more at once: the consumed bytes are the stream's
			// prefix, at most a header long, and all returned.
			r := bytes.NewReader(tt.stream)
			got, err = ReadMessage(r, nil)
			if !errors.Is(err, ErrNotCLC) {
				t.Fatalf("whole: err %v", err)
			}
			if len(got) > HeaderLen || len(got)+r.Len() != len(tt.stream) || !bytes.HasPrefix(tt.stream, got) {
				t.Fatalf("whole: consumed % x of % x, %d left", got, tt.stream, r.Len())
			}
		})
	}
}

func TestReadMessageEOF(t *testing.T) {
	decl := unhex(t, linuxDeclineV1)
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty", nil, io.EOF},
		{"in header", decl[:3], io.ErrUnexpectedEOF},
		{"after header", decl[:8], io.ErrUnexpectedEOF},
		{"in body", decl[:27], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadMessage(iotest.OneByteReader(bytes.NewReader(tt.stream)), nil)
			if !errors.Is(err, tt.want) || (tt.want == io.EOF && errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if !bytes.Equal(got, tt.stream) {
				t.Fatalf("consumed % x, want % x", got, tt.stream)
			}
		})
	}
	// Another read error is wrapped and the bytes before it returned.
	boom := errors.New("boom")
	got, err := ReadMessage(io.MultiReader(bytes.NewReader(decl[:10]), iotest.ErrReader(boom)), nil)
	if !errors.Is(err, boom) || !bytes.Equal(got, decl[:10]) {
		t.Fatalf("got % x, %v", got, err)
	}
}

// TestReadMessageTCP runs ReadMessage on a real loopback TCP connection: a CLC
// message followed by data in the same segment leaves the data in the socket, and
// a peer sending non-CLC bytes is recognised without waiting for 8 bytes.
func TestReadMessageTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		if err := s.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		return c, s
	}

	t.Run("message then data", func(t *testing.T) {
		c, s := dial()
		prop := unhex(t, proposalLoopback)
		if _, err := c.Write(append(append([]byte(nil), prop...), "hello"...)); err != nil {
			t.Fatal(err)
		}
		got, err := ReadMessage(s, make([]byte, 0, MaxMessageLen))
		if err != nil || !bytes.Equal(got, prop) {
			t.Fatalf("% x, %v", got, err)
		}
		rest := make([]byte, 5)
		if _, err := io.ReadFull(s, rest); err != nil || string(rest) != "hello" {
			t.Fatalf("left %q, %v", rest, err)
		}
	})

	t.Run("short non-CLC greeting", func(t *testing.T) {
		c, s := dial()
		// Three bytes and then silence: a reader waiting for a full header would
		// block until the deadline.
		if _, err := c.Write([]byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := ReadMessage(s, nil)
		if !errors.Is(err, ErrNotCLC) {
			t.Fatalf("err %v, want ErrNotCLC", err)
		}
		if time.Since(start) > 5*time.Second || string(got) != "hi\n"[:len(got)] || len(got) == 0 {
			t.Fatalf("consumed %q after %v", got, time.Since(start))
		}
		// The rest, if any, is still in the socket.
		rest := make([]byte, 3-len(got))
		if _, err := io.ReadFull(s, rest); err != nil || string(got)+string(rest) != "hi\n" {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		c, s := dial()
		if _, err := c.Write(unhex(t, "e2d4c3d9 04")); err != nil {
			t.Fatal(err)
		}
		if err := s.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		got, err := ReadMessage(s, nil)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err %v, want deadline exceeded", err)
		}
		if !bytes.Equal(got, unhex(t, "e2d4c3d9 04")) {
			t.Fatalf("consumed % x", got)
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	for _, s := range []string{linuxDeclineV1, declineV2, proposalLoopback, proposalMixed, acceptFirstContact, confirmPlain} {
		f.Add(append(unhex(f, s), "trailing data"...))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add(unhex(f, "e2d4c3d9 04 001c 10"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		for _, oneByte := range []bool{false, true} {
			br := bytes.NewReader(stream)
			var r io.Reader = br
			if oneByte {
				r = iotest.OneByteReader(br)
			}
			msg, err := ReadMessage(r, nil)
			if consumed := len(stream) - br.Len(); consumed != len(msg) || !bytes.Equal(msg, stream[:consumed]) {
				t.Fatalf("returned % x, consumed % x", msg, stream[:consumed])
			}
			// Reading ahead gives the same message or error, and every byte it
			// consumed back, as the message or as rest.
			ar := bytes.NewReader(stream)
			r = ar
			if oneByte {
				r = iotest.OneByteReader(ar)
			}
			raw, rest, aerr := ReadMessageAhead(r, nil)
			if consumed := len(stream) - ar.Len(); consumed != len(raw)+len(rest) || !bytes.Equal(append(raw[:len(raw):len(raw)], rest...), stream[:consumed]) {
				t.Fatalf("ahead: returned % x and % x, consumed % x", raw, rest, stream[:consumed])
			}
			if (err == nil) != (aerr == nil) || errors.Is(err, ErrNotCLC) != errors.Is(aerr, ErrNotCLC) || err == nil && !bytes.Equal(raw, msg) {
				t.Fatalf("ahead: % x, %v; exact: % x, %v", raw, aerr, msg, err)
			}
			if aerr != nil && len(rest) > 0 || oneByte && len(rest) > 0 {
				t.Fatalf("ahead: rest % x with error %v", rest, aerr)
			}
			switch {
			case err == nil:
				h, herr := ParseHeader(msg)
				if herr != nil || int(h.Length) != len(msg) || len(msg) > MaxMessageLen {
					t.Fatalf("read % x: header %+v, %v", msg, h, herr)
				}
				if _, perr := Parse(msg); perr != nil {
					var pe *ParseError
					if !errors.As(perr, &pe) {
						t.Fatalf("Parse error %v is not a *ParseError", perr)
					}
				}
			case errors.Is(err, ErrNotCLC):
				if IsHeaderPrefix(msg) || len(msg) > HeaderLen {
					t.Fatalf("ErrNotCLC for % x", msg)
				}
				if oneByte && !IsHeaderPrefix(msg[:len(msg)-1]) {
					t.Fatalf("one-byte reader read past the first bad byte: % x", msg)
				}
			default:
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				if len(msg) != len(stream) {
					t.Fatalf("EOF with %d of %d bytes consumed", len(msg), len(stream))
				}
			}
		}
	})
}
