package wire

import (
	"errors"
	"testing"
)

func TestIsHeaderPrefix(t *testing.T) {
	decl := unhex(t, linuxDeclineV1)
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, true},
		{"first byte", []byte{0xe2}, true},
		{"plain text", []byte("GET / HTTP/1.1\r\n"), false},
		{"first byte wrong", []byte{0x16}, false}, // a TLS ClientHello
		{"SMCR", unhex(t, "e2d4c3d9"), true},
		{"SMCD", unhex(t, "e2d4c3c4"), true},
		{"SMCX", unhex(t, "e2d4c3c5"), false},
		{"type 0", unhex(t, "e2d4c3d9 00"), false},
		{"type 5", unhex(t, "e2d4c3d9 05"), false},
		{"decline length high byte", unhex(t, "e2d4c3d9 04 00"), true},
		{"decline length high byte too big", unhex(t, "e2d4c3d9 04 01"), false},
		{"proposal length high byte 2", unhex(t, "e2d4c3d9 01 02"), true},
		{"proposal length high byte 3", unhex(t, "e2d4c3d9 01 03"), false},
		{"decline length 27", unhex(t, "e2d4c3d9 04 001b"), false},
		{"decline length 45", unhex(t, "e2d4c3d9 04 002d"), false},
		{"proposal max length", unhex(t, "e2d4c3d9 01 028c"), true},
		{"proposal too long", unhex(t, "e2d4c3d9 01 028d"), false},
		{"proposal too short", unhex(t, "e2d4c3d9 01 0033"), false},
		{"accept shortest", unhex(t, "e2d4c3c4 02 0030"), true},
		{"accept too short", unhex(t, "e2d4c3c4 02 002f"), false},
		{"version 0", unhex(t, "e2d4c3d9 04 001c 00"), false},
		{"linux decline", decl, true},
		{"linux decline header", decl[:8], true},
		{"version 15", unhex(t, "e2d4c3d9 04 002c f0"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsHeaderPrefix(tt.b); got != tt.want {
				t.Fatalf("IsHeaderPrefix(% x) = %v, want %v", tt.b, got, tt.want)
			}
			// Every prefix of a valid prefix is a valid prefix.
			if tt.want {
				for i := range tt.b {
					if !IsHeaderPrefix(tt.b[:i]) {
						t.Fatalf("prefix % x rejected", tt.b[:i])
					}
				}
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	h, err := ParseHeader(unhex(t, linuxDeclineV1))
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Eyecatcher: EyecatcherSMCR, Type: TypeDecline, Length: 28, Version: 1}
	if h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
	if got := string(h.Append(nil)); got != string(unhex(t, linuxDeclineV1)[:8]) {
		t.Fatalf("Append: % x", got)
	}
	h = Header{Eyecatcher: EyecatcherSMCD, Type: TypeAccept, Length: 130, Version: 2, TypeV2: 2, TypeV1: 1}
	if got, want := h.Append(nil), unhex(t, "e2d4c3c4 02 0082 29"); string(got) != string(want) {
		t.Fatalf("Append % x, want % x", got, want)
	}

	_, err = ParseHeader(unhex(t, "e2d4c3d9 04 001c"))
	wantParseError(t, err, CodeCnfErr)
	for _, b := range [][]byte{[]byte("GET / HTTP/1.1"), []byte("GET"), unhex(t, "e2d4c3d9 04 0100")} {
		_, err = ParseHeader(b)
		wantParseError(t, err, CodePeerNoSMC)
		if !errors.Is(err, ErrNotCLC) {
			t.Fatalf("%v is not ErrNotCLC", err)
		}
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		s    interface{ String() string }
		want string
	}{
		{EyecatcherSMCR, "SMCR"},
		{EyecatcherSMCD, "SMCD"},
		{Eyecatcher(0x01020304), "0x01020304"},
		{TypeProposal, "proposal"},
		{TypeAccept, "accept"},
		{TypeConfirm, "confirm"},
		{TypeDecline, "decline"},
		{Type(9), "type 9"},
		{SMCTypeR, "SMC-R"},
		{SMCTypeD, "SMC-D"},
		{SMCTypeN, "none"},
		{SMCTypeB, "both"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
	if !SMCTypeB.HasR() || !SMCTypeB.HasD() || SMCTypeN.HasR() || SMCTypeN.HasD() || SMCTypeR.HasD() || SMCTypeD.HasR() {
		t.Error("HasR/HasD wrong")
	}
}
