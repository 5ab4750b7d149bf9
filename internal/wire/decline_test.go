package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// linuxDeclineV1 is the Decline a Linux 6.1 client without an SMC device sends as
// its first CLC message (observed from Debian's Linux 6.1, see internal/kernelvm).
const linuxDeclineV1 = `
e2d4c3d9          // eyecatcher "SMCR"
04                // type: decline
001c              // length 28
10                // version 1, typev2 0, typev1 0
0000000000000000  // sender peer ID
03030000          // peer diagnosis: NOSMCDEV
00                // OS type 0 (v1), reserved nibble
000000            // reserved
e2d4c3d9          // trailer "SMCR"
`

// linuxDeclineV2 is the Decline a Linux 6.1 server without an ISMv2 device answers
// this package's SMC-D v2 Proposal with (observed with testdata/kernelvm).
const linuxDeclineV2 = `
e2d4c3d9          // eyecatcher "SMCR"
04                // type: decline
002c              // length 44
20                // version 2
0000000000000000  // sender peer ID (no RoCE device)
03030003          // peer diagnosis: NOISM2SUPP
20                // OS type 2 (Linux)
000000            // reserved
00000000 00000000 00000000 00000000 // additional diagnosis words
e2d4c3d9          // trailer "SMCR"
`

// declineV2 is a v2 Decline as Linux sends it answering a v2 Proposal: OS type
// Linux, four zero diagnosis words.
const declineV2 = `
e2d4c3d9          // eyecatcher "SMCR"
04                // type: decline
002c              // length 44
20                // version 2, typev2 0, typev1 0
0102030405060708  // sender peer ID
03030007          // peer diagnosis: NOSMCD2DEV
20                // OS type 2 (Linux)
000000            // reserved
00000000 00000000 00000000 00000000 // additional diagnosis words
e2d4c3d9          // trailer "SMCR"
`

// declineSync is a v2 Decline with the out-of-sync bit, SMCD eyecatchers and
// nonzero extra diagnosis words.
const declineSync = `
e2d4c3c4          // eyecatcher "SMCD"
04                // type: decline
002c              // length 44
28                // version 2, typev2 0b10 (out of sync), typev1 0
0000000000000000  // sender peer ID (zero for SMC-D)
04000000          // peer diagnosis: SYNCERR
20 000000         // OS type Linux, reserved
03030008 09990000 00000001 ffffffff // additional diagnosis words
e2d4c3c4          // trailer "SMCD"
`

func TestDeclineGolden(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want Decline
	}{
		{"linux v1 NOSMCDEV", linuxDeclineV1, Decline{
			Eyecatcher: EyecatcherSMCR, Trailer: EyecatcherSMCR, Version: 1, Diagnosis: CodeNoSMCDev}},
		{"linux v2 NOISM2SUPP", linuxDeclineV2, Decline{
			Eyecatcher: EyecatcherSMCR, Trailer: EyecatcherSMCR, Version: 2, Diagnosis: CodeNoISM2Supp, OSType: OSLinux}},
		{"v2", declineV2, Decline{
			Eyecatcher: EyecatcherSMCR, Trailer: EyecatcherSMCR, Version: 2,
			PeerID: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Diagnosis: CodeNoSMCD2Dev, OSType: OSLinux}},
		{"v2 out of sync", declineSync, Decline{
			Eyecatcher: EyecatcherSMCD, Trailer: EyecatcherSMCD, Version: 2, OutOfSync: true,
			Diagnosis: CodeSyncErr, OSType: OSLinux,
			Diagnosis2: [4]Code{CodeNoUEID, CodeIntErr, 1, 0xffffffff}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.hex)
			d, err := ParseDecline(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*d, tt.want) {
				t.Fatalf("parsed\n%+v\nwant\n%+v", *d, tt.want)
			}
			if got := tt.want.Append(nil); !bytes.Equal(got, b) {
				t.Fatalf("Append\n% x\nwant\n% x", got, b)
			}
			if tt.want.Length() != len(b) {
				t.Fatalf("Length %d, want %d", tt.want.Length(), len(b))
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*Decline); !ok {
				t.Fatalf("Parse returned %T", m)
			}
		})
	}
}

// TestDeclineDefaults checks that the zero eyecatchers and version encode what
// Linux sends.
func TestDeclineDefaults(t *testing.T) {
	d := Decline{Diagnosis: CodeNoSMCDev}
	if got, want := d.Append(nil), unhex(t, linuxDeclineV1); !bytes.Equal(got, want) {
		t.Fatalf("zero-value decline\n% x\nwant\n% x", got, want)
	}
	// Appending to a non-empty slice keeps its prefix.
	if got := d.Append([]byte{0xaa}); got[0] != 0xaa || len(got) != 1+declineV1Len {
		t.Fatalf("Append to prefix: % x", got)
	}
}

func TestParseDeclineRejects(t *testing.T) {
	v1 := unhex(t, linuxDeclineV1)
	v2 := unhex(t, declineV2)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"header only", v1[:8]},
		{"truncated v1", v1[:27]},
		{"trailing byte", append(append([]byte(nil), v1...), 0)},
		{"length field too big", withLen(v1, 29)},
		{"v1 with v2 length", withLen(append(append([]byte(nil), v1[:24]...), v2[24:]...), 44)},
		{"v2 with v1 length", patch(v1, 7, 0x20)},
		{"version 0", patch(v1, 7, 0x00)},
		{"bad eyecatcher", patch(v1, 0, 0xe2, 0xd4, 0xc3, 0xc5)},
		{"bad trailer", patch(v1, 24, 'S', 'M', 'C', 'R')},
		{"wrong type", patch(v1, 4, byte(TypeAccept))},
		{"v2 truncated", v2[:40]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDecline(tt.b)
			if err == nil {
				t.Fatalf("accepted: %+v", d)
			}
			if d != nil {
				t.Fatalf("returned %+v with error", d)
			}
			code := CodeCnfErr
			if tt.name == "bad eyecatcher" {
				code = CodePeerNoSMC
				if !errors.Is(err, ErrNotCLC) {
					t.Fatalf("bad eyecatcher: %v is not ErrNotCLC", err)
				}
			}
			wantParseError(t, err, code)
		})
	}
}

// TestDeclineIgnoresReserved checks that reserved bits, which Linux ignores, are
// accepted and zeroed on re-encoding.
func TestDeclineIgnoresReserved(t *testing.T) {
	b := unhex(t, linuxDeclineV1)
	b = patch(b, 7, 0x17) // typev2 bit 0 and typev1 bits set
	b = patch(b, 20, 0x0f, 0xff, 0xff, 0xff)
	d, err := ParseDecline(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.OutOfSync || d.OSType != 0 {
		t.Fatalf("reserved bits leaked: %+v", d)
	}
	if got, want := d.Append(nil), unhex(t, linuxDeclineV1); !bytes.Equal(got, want) {
		t.Fatalf("canonical form\n% x\nwant\n% x", got, want)
	}
}

func FuzzParseDecline(f *testing.F) {
	f.Add(unhex(f, linuxDeclineV1))
	f.Add(unhex(f, declineV2))
	f.Add(unhex(f, linuxDeclineV2))
	f.Add(unhex(f, declineSync))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDecline(b)
		if err != nil {
			var pe *ParseError
			if d != nil || !errors.As(err, &pe) {
				t.Fatalf("bad failure: %v, %v", d, err)
			}
			return
		}
		checkCanonical(t, b, d, func(b []byte) (Message, error) { return ParseDecline(b) })
	})
}
