package wire

import (
	"errors"
	"fmt"
	"io"
)

// Message is a decoded CLC message: a *Proposal, an *AcceptConfirm or a *Decline.
type Message interface {
	// Append appends the encoding of the message to b.
	Append(b []byte) []byte
	// Length returns the encoded length, len(Append(nil)).
	Length() int
}

// Parse decodes b, which must hold exactly one CLC message of any type, such as
// one returned by [ReadMessage]. The dynamic type of the result tells which
// message arrived, so a caller expecting a Proposal, Accept or Confirm handles a
// Decline in the same type switch.
func Parse(b []byte) (Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	switch h.Type {
	case TypeProposal:
		return ParseProposal(b)
	case TypeAccept, TypeConfirm:
		return ParseAcceptConfirm(b, h.Type)
	default: // ParseHeader admits only the four types
		return ParseDecline(b)
	}
}

// ReadMessage reads one whole CLC message from r and returns it: first the 8-byte
// header, then exactly the rest of the length the header announces. It never reads
// past the end of the message, so bytes that follow it (the next message, or
// application data after a Decline) stay in r.
//
// The header is checked with [IsHeaderPrefix] after every read: as soon
// as the bytes cannot start a CLC message, ReadMessage stops and returns an error
// wrapping ErrNotCLC without waiting for more. A header read asks r for at most the
// bytes still missing from the header, so an r that returns early (a net.Conn)
// gives the earliest verdict.
//
// ReadMessage always returns every byte it consumed from r, also with an error:
// after ErrNotCLC they are application data the caller must replay. Read errors
// are wrapped; an end of stream inside a message is io.ErrUnexpectedEOF, and
// io.EOF is returned only when r ends before the first byte.
//
// The message is read into buf when its capacity suffices (MaxMessageLen always
// does); otherwise a new slice is allocated. ReadMessage checks only the header;
// decode the body with [Parse] or the parser of the expected type.
func ReadMessage(r io.Reader, buf []byte) ([]byte, error) {
	m, _, err := readMessage(r, buf, false)
	return m, err
}

// ReadMessageAhead is [ReadMessage] for a reader that may be read past the message:
// each read asks r for as much as buf holds (at least MaxMessageLen), so that a
// message that arrived whole takes one read, not a read for the header and one for
// the body. rest is what those reads returned beyond the message, and the caller
// owns it (after a Decline it is the peer's application data). On error, raw is
// every byte consumed and rest is empty. buf's capacity is used if it is at least
// MaxMessageLen.
func ReadMessageAhead(r io.Reader, buf []byte) (raw, rest []byte, err error) {
	return readMessage(r, buf, true)
}

// readMessage reads one message from r into buf, asking each read for the bytes
// still missing (exact) or for all buf can hold (ahead).
func readMessage(r io.Reader, buf []byte, ahead bool) (raw, rest []byte, err error) {
	buf = buf[:0]
	if cap(buf) < HeaderLen || ahead && cap(buf) < MaxMessageLen {
		buf = make([]byte, 0, MaxMessageLen)
	}
	want := HeaderLen // until the header is known, then the whole message's length
	for len(buf) < want {
		end := want
		if ahead {
			end = cap(buf)
		}
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if !IsHeaderPrefix(buf) {
			return buf, nil, &ParseError{Code: CodePeerNoSMC, Msg: fmt.Sprintf("stream starts % x", buf[:min(len(buf), HeaderLen)]), Err: ErrNotCLC}
		}
		if want == HeaderLen && len(buf) >= HeaderLen {
			want = int(decodeHeader(buf).Length) // at most MaxMessageLen: IsHeaderPrefix checked it
			if cap(buf) < want {
				buf = append(make([]byte, 0, want), buf...)
			}
		}
		if err != nil && len(buf) < want {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			if len(buf) < HeaderLen {
				return buf, nil, fmt.Errorf("smc: wire: reading CLC header: %w", err)
			}
			return buf, nil, fmt.Errorf("smc: wire: reading CLC %v: %w", Type(buf[4]), err)
		}
	}
	return buf[:want:want], buf[want:], nil
}
