package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// acceptFirstContact is an SMC-D v2 Accept as a Linux loopback-ism server sends it
// on first contact, release 1: the v2.1 first-contact extension (52 bytes).
const acceptFirstContact = `
e2d4c3c4          // [0] eyecatcher "SMCD"
02                // [4] type: accept
0082              // [5] length 130 = 78 + 52
29                // [7] version 2, typev2 0b10 (first contact), typev1 D (01)
1122334455667788  // [8] sender ISM GID
0badc0ffee000001  // [16] DMB token
00                // [24] DMBE index
20                // [25] DMBE size 2 (64 KiB) in the high nibble
0000              // [26] reserved
00000101          // [28] link ID
ffff              // [32] CHID (loopback-ism)
534d432d474f2d54455354 20*21 // [34] negotiated EID "SMC-GO-TEST"
99aabbccddeeff00  // [66] extended GID
// first-contact extension
00                // [74] v2_direct 0, reserved
21                // [75] OS type 2 (Linux), release 1
0000              // [76] reserved
74657374686f7374 20*24 // [78] hostname "testhost", blank-padded
00                // [110] max_conns (reserved for SMC-D)
00                // [111] max_links (reserved for SMC-D)
0001              // [112] feature mask: Emulated-ISM
00000000          // [114] vendor options
0000000000000000  // [118] reserved
e2d4c3c4          // [126] trailer "SMCD"
`

// confirmPlain is an SMC-D v2 Confirm without first contact (78 bytes).
const confirmPlain = `
e2d4c3c4          // [0] eyecatcher "SMCD"
03                // [4] type: confirm
004e              // [5] length 78
21                // [7] version 2, no first contact, typev1 D
99aabbccddeeff01  // [8] sender ISM GID
00000000deadbeef  // [16] DMB token
00                // [24] DMBE index
60                // [25] DMBE size 6 (1 MiB)
0000              // [26] reserved
00000101          // [28] link ID
ffff              // [32] CHID
534d432d474f2d54455354 20*21 // [34] negotiated EID
0102030405060708  // [66] extended GID
e2d4c3c4          // [74] trailer "SMCD"
`

// confirmFCEBase is an SMC-D v2 Confirm on first contact with release 0: the base
// 36-byte first-contact extension, v2_direct set, SMCR trailer.
const confirmFCEBase = `
e2d4c3c4          // [0] eyecatcher "SMCD"
03                // [4] type: confirm
0072              // [5] length 114 = 78 + 36
29                // [7] version 2, first contact, typev1 D
0000000000000001  // [8] sender ISM GID
0000000000000002  // [16] DMB token
00 10 0000        // [24] DMBE index 0, size 1, reserved
00000003          // [28] link ID
ff00              // [32] CHID
00*32             // [34] negotiated EID
0000000000000004  // [66] extended GID
80                // [74] v2_direct
20                // [75] OS Linux, release 0
0000              // [76] reserved
68 20*31          // [78] hostname "h"
e2d4c3d9          // [110] trailer "SMCR"
`

// acceptSMCRv2 is an SMC-R v2 Accept without first contact (108 bytes): valid for
// Linux, unsupported here.
const acceptSMCRv2 = `
e2d4c3d9 02 006c 20 // header: length 108, version 2, typev1 R
8c35020000000001  // [8] sender peer ID
fe800000000000000200000000000001 // [16] RoCE GID
020000000001      // [32] MAC
000102            // [38] QP number
00001234          // [41] RMB rkey
01                // [45] RMBE index
00000007          // [46] RMBE alert token
53                // [50] RMBE size 5, QP MTU 3
00                // [51] reserved
0000000012340000  // [52] RMB virtual address
00 000001         // [60] reserved, PSN
534d432d474f2d54455354 20*21 // [64] negotiated EID
00*8              // [96] reserved
e2d4c3d9          // [104] trailer
`

// acceptSMCRv1 is an SMC-R v1 Accept (68 bytes).
const acceptSMCRv1 = `
e2d4c3d9 02 0044 18 // header: length 68, version 1, first contact, typev1 R
8c35020000000001 fe800000000000000200000000000001 020000000001 // local area
000102 00001234 01 00000007 53 00 0000000012340000 00 000001 // QP .. PSN
e2d4c3d9          // [64] trailer
`

// acceptSMCDv1 is an SMC-D v1 Accept (48 bytes).
const acceptSMCDv1 = `
e2d4c3c4 02 0030 19 // header: length 48, version 1, first contact, typev1 D
0102030405060708 00000000deadbeef 00 10 0000 00000101 // GID, token, index, size, link ID
00*12             // [32] reserved in v1
e2d4c3c4          // [44] trailer
`

func goldenAccepts(tb testing.TB) map[string]struct {
	b    []byte
	want AcceptConfirm
} {
	hostname := func(s string) (h [HostnameLen]byte) {
		copy(h[:], s+string(bytes.Repeat([]byte{' '}, HostnameLen)))
		return h
	}
	return map[string]struct {
		b    []byte
		want AcceptConfirm
	}{
		"accept first contact": {unhex(tb, acceptFirstContact), AcceptConfirm{
			Type: TypeAccept, Eyecatcher: EyecatcherSMCD, Trailer: EyecatcherSMCD, Version: 2,
			GID: 0x1122334455667788, DMBToken: 0x0badc0ffee000001, DMBESize: 2, LinkID: 0x101,
			CHID: 0xffff, EID: eid("SMC-GO-TEST"), GIDExt: 0x99aabbccddeeff00,
			FCE: &FirstContactExt{OSType: OSLinux, Release: 1, Hostname: hostname("testhost"),
				V2x: true, FeatureMask: 1},
		}},
		"confirm": {unhex(tb, confirmPlain), AcceptConfirm{
			Type: TypeConfirm, Eyecatcher: EyecatcherSMCD, Trailer: EyecatcherSMCD, Version: 2,
			GID: 0x99aabbccddeeff01, DMBToken: 0xdeadbeef, DMBESize: 6, LinkID: 0x101,
			CHID: 0xffff, EID: eid("SMC-GO-TEST"), GIDExt: 0x0102030405060708,
		}},
		"confirm base FCE": {unhex(tb, confirmFCEBase), AcceptConfirm{
			Type: TypeConfirm, Eyecatcher: EyecatcherSMCD, Trailer: EyecatcherSMCR, Version: 2,
			GID: 1, DMBToken: 2, DMBESize: 1, LinkID: 3, CHID: 0xff00, GIDExt: 4,
			FCE: &FirstContactExt{V2Direct: true, OSType: OSLinux, Hostname: hostname("h")},
		}},
	}
}

func TestAcceptConfirmGolden(t *testing.T) {
	for name, tt := range goldenAccepts(t) {
		t.Run(name, func(t *testing.T) {
			m, err := ParseAcceptConfirm(tt.b, tt.want.Type)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*m, tt.want) {
				t.Fatalf("parsed\n%+v\nwant\n%+v", *m, tt.want)
			}
			if got := tt.want.Append(nil); !bytes.Equal(got, tt.b) {
				t.Fatalf("Append\n% x\nwant\n% x", got, tt.b)
			}
			checkCanonical(t, tt.b, m, func(b []byte) (Message, error) { return ParseAcceptConfirm(b, tt.want.Type) })
			// The typed entry points check the type.
			parse, other := ParseAccept, ParseConfirm
			if tt.want.Type == TypeConfirm {
				parse, other = ParseConfirm, ParseAccept
			}
			if _, err := parse(tt.b); err != nil {
				t.Fatal(err)
			}
			if _, err := other(tt.b); err == nil {
				t.Fatal("parsed as the other type")
			}
		})
	}
}

// TestAcceptDefaults checks the zero eyecatchers and version.
func TestAcceptDefaults(t *testing.T) {
	m := AcceptConfirm{Type: TypeConfirm, GID: 0x99aabbccddeeff01, DMBToken: 0xdeadbeef, DMBESize: 6,
		LinkID: 0x101, CHID: 0xffff, EID: eid("SMC-GO-TEST"), GIDExt: 0x0102030405060708}
	if got, want := m.Append(nil), unhex(t, confirmPlain); !bytes.Equal(got, want) {
		t.Fatalf("got\n% x\nwant\n% x", got, want)
	}
}

func TestAcceptUnsupported(t *testing.T) {
	for name, s := range map[string]string{"SMC-R v2": acceptSMCRv2, "SMC-R v1": acceptSMCRv1, "SMC-D v1": acceptSMCDv1} {
		t.Run(name, func(t *testing.T) {
			b := unhex(t, s)
			_, err := ParseAccept(b)
			wantParseError(t, err, CodeModeUnsupp)
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%v is not ErrUnsupported", err)
			}
			if _, err := Parse(b); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Parse: %v is not ErrUnsupported", err)
			}
			// The same with a broken length is malformed, not unsupported.
			b2 := append(append([]byte(nil), b[:len(b)-4]...), 0, b[len(b)-4], b[len(b)-3], b[len(b)-2], b[len(b)-1])
			b2 = withLen(b2, len(b2))
			_, err = ParseAccept(b2)
			if name == "SMC-R v2" { // v2 SMC-R only needs a minimum length
				wantParseError(t, err, CodeModeUnsupp)
				return
			}
			wantParseError(t, err, CodeCnfErr)
			if errors.Is(err, ErrUnsupported) {
				t.Fatalf("%v: malformed reported as unsupported", err)
			}
		})
	}
}

func TestParseAcceptRejects(t *testing.T) {
	fc := unhex(t, acceptFirstContact)
	plain := unhex(t, confirmPlain)
	base := unhex(t, confirmFCEBase)
	tests := []struct {
		name string
		t    Type
		b    []byte
	}{
		{"empty", TypeAccept, nil},
		{"bad type argument", TypeDecline, fc},
		{"proposal type argument", TypeProposal, fc},
		{"truncated", TypeAccept, fc[:len(fc)-1]},
		{"trailing", TypeAccept, append(append([]byte(nil), fc...), 0)},
		{"length field", TypeAccept, withLen(fc, 129)},
		{"bad eyecatcher", TypeAccept, patch(fc, 0, 0xe2, 0xd4, 0xc3, 0xd8)},
		{"bad trailer", TypeAccept, patch(fc, len(fc)-4, 0, 0, 0, 0)},
		{"typev1 N", TypeAccept, patch(fc, 7, 0x2a)},
		{"typev1 B", TypeAccept, patch(fc, 7, 0x2b)},
		{"version 0", TypeAccept, patch(fc, 7, 0x09)},
		{"first contact without FCE", TypeConfirm, patch(plain, 7, 0x29)},
		{"FCE without first contact", TypeAccept, patch(fc, 7, 0x21)},
		{"base FCE without first contact", TypeConfirm, patch(base, 7, 0x21)},
		{"SMC-R v2 too short", TypeAccept, withLen(unhex(t, acceptSMCRv2)[:104], 104)},
		{"SMC-D v2 with v1 length", TypeAccept, patch(unhex(t, acceptSMCDv1), 7, 0x29)},
		{"header only", TypeAccept, fc[:8]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseAcceptConfirm(tt.b, tt.t)
			if err == nil || m != nil {
				t.Fatalf("accepted: %+v, %v", m, err)
			}
			code := CodeCnfErr
			if tt.name == "bad eyecatcher" {
				code = CodePeerNoSMC
			}
			wantParseError(t, err, code)
			if errors.Is(err, ErrUnsupported) {
				t.Fatalf("%v: malformed reported as unsupported", err)
			}
		})
	}
}

func FuzzParseAccept(f *testing.F) {
	for _, g := range goldenAccepts(f) {
		f.Add(g.b)
	}
	for _, s := range []string{acceptSMCRv2, acceptSMCRv1, acceptSMCDv1} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, typ := range []Type{TypeAccept, TypeConfirm} {
			m, err := ParseAcceptConfirm(b, typ)
			if err != nil {
				var pe *ParseError
				if m != nil || !errors.As(err, &pe) {
					t.Fatalf("bad failure: %v, %v", m, err)
				}
				continue
			}
			if m.Type != typ || (m.FCE != nil) != (b[7]&0x08 != 0) {
				t.Fatalf("type or first contact wrong: %+v", m)
			}
			checkCanonical(t, b, m, func(b []byte) (Message, error) { return ParseAcceptConfirm(b, typ) })
		}
	})
}
