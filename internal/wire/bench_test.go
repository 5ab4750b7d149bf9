package wire

import (
	"bytes"
	"testing"
)

// The handshake encodes and decodes one Proposal, Accept and Confirm per
// connection; these measure what that costs.

func BenchmarkProposalAppend(b *testing.B) {
	p := goldenProposals(b)["loopback"].want
	buf := make([]byte, 0, MaxMessageLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = p.Append(buf[:0])
	}
}

func BenchmarkParseProposal(b *testing.B) {
	msg := unhex(b, proposalLoopback)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProposal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAccept(b *testing.B) {
	msg := unhex(b, acceptFirstContact)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAccept(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadMessage(b *testing.B) {
	msg := unhex(b, proposalLoopback)
	r := bytes.NewReader(msg)
	buf := make([]byte, 0, MaxMessageLen)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(msg)
		if _, err := ReadMessage(r, buf); err != nil {
			b.Fatal(err)
		}
	}
}
