package wire

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// proposalLoopback is a Proposal as a Linux client with only loopback-ism sends it:
// version 2 offering SMC-D v2 alone (typev1 N, typev2 D), no IP prefix area,
// iparea_offset 0, one UEID, no SEID (x86), release 1 with the Emulated-ISM feature
// bit, and the loopback-ism device as two GID/CHID entries (GID, then extended
// GID, both CHID 0xFFFF). This is also what this package's clients send. A Linux 6.1
// kernel server accepts it as valid and answers with a v2 Decline
// (testdata/kernelvm).
const proposalLoopback = `
e2d4c3d9          // [0] eyecatcher "SMCR"
01                // [4] type: proposal
00e0              // [5] length 224
26                // [7] version 2, typev2 D (01), typev1 N (10)
0000000000000000  // [8] sender peer ID (SMC-R v1 not offered)
00*16             // [16] RoCE GID
00*6              // [32] RoCE MAC
0000              // [38] iparea_offset 0: no v1 offer, no IP area
// SMC-D area
0000000000000000  // [40] ISM v1 GID (SMC-D v1 not offered)
0000              // [48] ISM v1 CHID
001c              // [50] v2_ext_offset 28: from byte 52 to byte 80
000000            // [52] vendor OUI
0000000000        // [55] vendor options
00*20             // [60] reserved
// v2 extension
01                // [80] eid_cnt 1
02                // [81] ism_gid_cnt 2
00                // [82] reserved
10                // [83] release 1, seid 0
0000              // [84] reserved
0040              // [86] smcd_v2_ext_offset 64: from byte 88 past the fixed part and one UEID
00*16             // [88] RoCEv2 GID
00                // [104] max_conns (SMC-R only)
00                // [105] max_links (SMC-R only)
0001              // [106] feature mask: Emulated-ISM
00*12             // [108] reserved
534d432d474f2d54455354 20*21 // [120] UEID "SMC-GO-TEST", blank-padded
// SMC-Dv2 extension
00*32             // [152] system EID (SEID not offered)
00*16             // [184] reserved
1122334455667788 ffff // [200] loopback-ism GID, CHID 0xFFFF
99aabbccddeeff00 ffff // [210] loopback-ism extended GID, same CHID
e2d4c3d9          // [220] trailer "SMCR"
`

// proposalMixed is a Proposal as a Linux client with a RoCE device and a native ISM
// device sends it: it offers SMC-R and SMC-D for v1 (typev1 B) and for v2 (typev2
// B), with an IPv4 prefix, one UEID, a system EID and one native ISM v2 device.
// Its parts are all where Linux puts them, so it must parse; a server offering
// only SMC-D v2 over loopback then declines it.
const proposalMixed = `
e2d4c3d9          // [0] eyecatcher "SMCR"
01                // [4] type: proposal
00de              // [5] length 222
2f                // [7] version 2, typev2 B (11), typev1 B (11)
8c35020000000001  // [8] sender peer ID
fe800000000000000200000000000001 // [16] RoCE GID
020000000001      // [32] RoCE MAC
0028              // [38] iparea_offset 40: IP area after the SMC-D area
// SMC-D area
0102030405060708  // [40] ISM v1 GID
0123              // [48] ISM v1 CHID
0024              // [50] v2_ext_offset 36: 28 + 8-byte IP area
00*28             // [52] vendor OUI, vendor options, reserved
// IP area
c0a80100          // [80] IPv4 subnet 192.168.1.0
18                // [84] prefix length 24
0000              // [85] reserved
00                // [87] 0 IPv6 prefixes
// v2 extension
01                // [88] eid_cnt 1
01                // [89] ism_gid_cnt 1
00                // [90] reserved
11                // [91] release 1, seid 1
0000              // [92] reserved
0040              // [94] smcd_v2_ext_offset 64
00000000000000000000ffffc0a80105 // [96] RoCEv2 GID ::ffff:192.168.1.5
ff                // [112] max_conns 255
02                // [113] max_links 2
0001              // [114] feature mask
00*12             // [116] reserved
534d432d474f2d54455354 20*21 // [128] UEID "SMC-GO-TEST"
// SMC-Dv2 extension
49424d2d53595345 49442d3030303030 3030303030303030 3030303030303030 // [160] system EID "IBM-SYSEID-0000..."
00*16             // [192] reserved
0a0b0c0d0e0f1011 0124 // [208] native ISM v2 GID, CHID 0x0124
e2d4c3d9          // [218] trailer "SMCR"
`

// proposalV1R is a version 1 Proposal as a pre-5.11 kernel with only a RoCE device
// sends it: SMC-R, no SMC-D area, one IPv6 prefix.
const proposalV1R = `
e2d4c3d9          // [0] eyecatcher "SMCR"
01                // [4] type: proposal
0045              // [5] length 69
10                // [7] version 1, typev1 R (00)
8c35020000000001  // [8] sender peer ID
fe800000000000000200000000000001 // [16] RoCE GID
020000000001      // [32] RoCE MAC
0000              // [38] iparea_offset 0: no optional area
// IP area
00000000          // [40] IPv4 subnet (IPv6 connection)
00                // [44] prefix length
0000              // [45] reserved
01                // [47] 1 IPv6 prefix
20010db8000000010000000000000000 40 // [48] 2001:db8:0:1::/64
e2d4c3d9          // [65] trailer "SMCR"
`

// proposalV1D is a version 1 Proposal offering SMC-D v1 only, with the SMC-D area.
const proposalV1D = `
e2d4c3d9 01 005c 11 // header: length 92, version 1, typev1 D
00*8 00*16 00*6   // [8] local area (no SMC-R)
0028              // [38] iparea_offset 40
0102030405060708 0123 // [40] ISM GID, CHID
0000 00*28        // [50] v2_ext_offset, vendor fields, reserved
0a000000 08 0000 00 // [80] IPv4 10.0.0.0/8, no IPv6 prefix
e2d4c3d9          // [88] trailer
`

func goldenProposals(tb testing.TB) map[string]struct {
	b    []byte
	want Proposal
} {
	return map[string]struct {
		b    []byte
		want Proposal
	}{
		"loopback": {unhex(tb, proposalLoopback), Proposal{
			Eyecatcher: EyecatcherSMCR, Trailer: EyecatcherSMCR, Version: 2,
			TypeV1: SMCTypeN, TypeV2: SMCTypeD,
			Release: 1, FeatureMask: 1, UEIDs: []EID{eid("SMC-GO-TEST")},
			GIDs: []GIDCHID{{0x1122334455667788, 0xffff}, {0x99aabbccddeeff00, 0xffff}},
		}},
		"mixed": {unhex(tb, proposalMixed), Proposal{
			Eyecatcher: EyecatcherSMCR, Trailer: EyecatcherSMCR, Version: 2,
			TypeV1: SMCTypeB, TypeV2: SMCTypeB,
			PeerID:     [8]byte{0x8c, 0x35, 2, 0, 0, 0, 0, 1},
			RoCEGID:    [16]byte{0xfe, 0x80, 8: 2, 15: 1},
			RoCEMAC:    [6]byte{2, 0, 0, 0, 0, 1},
			ISMGID:     0x0102030405060708,
			ISMCHID:    0x0123,
			IPv4Subnet: [4]byte{192, 168, 1, 0}, IPv4PrefixLen: 24,
			Release: 1, SEID: true, UEIDs: []EID{eid("SMC-GO-TEST")},
			RoCEv2GID: [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 168, 14: 1, 15: 5},
			MaxConns:  255, MaxLinks: 2, FeatureMask: 1,
			SystemEID: EID([]byte("IBM-SYSEID-000000000000000000000")),
			GIDs:      []GIDCHID{{0x0a0b0c0d0e0f1011, 0x0124}},
		}},
		"v1 SMC-R": {unhex(tb, proposalV1R), Proposal{
			Eyecatcher: EyecatcherSMCR, Trailer: EyecatcherSMCR, Version: 1,
			TypeV1: SMCTypeR, TypeV2: SMCTypeN,
			PeerID:       [8]byte{0x8c, 0x35, 2, 0, 0, 0, 0, 1},
			RoCEGID:      [16]byte{0xfe, 0x80, 8: 2, 15: 1},
			RoCEMAC:      [6]byte{2, 0, 0, 0, 0, 1},
			IPv6Prefixes: []IPv6Prefix{{[16]byte{0x20, 0x01, 0x0d, 0xb8, 7: 1}, 64}},
		}},
		"v1 SMC-D": {unhex(tb, proposalV1D), Proposal{
			Eyecatcher: EyecatcherSMCR, Trailer: EyecatcherSMCR, Version: 1,
			TypeV1: SMCTypeD, TypeV2: SMCTypeN,
			ISMGID: 0x0102030405060708, ISMCHID: 0x0123,
			IPv4Subnet: [4]byte{10, 0, 0, 0}, IPv4PrefixLen: 8,
		}},
	}
}

func TestProposalGolden(t *testing.T) {
	for name, tt := range goldenProposals(t) {
		t.Run(name, func(t *testing.T) {
			p, err := ParseProposal(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*p, tt.want) {
				t.Fatalf("parsed\n%+v\nwant\n%+v", *p, tt.want)
			}
			if got := tt.want.Append(nil); !bytes.Equal(got, tt.b) {
				t.Fatalf("Append\n% x\nwant\n% x", got, tt.b)
			}
			if tt.want.Length() != len(tt.b) {
				t.Fatalf("Length %d, want %d", tt.want.Length(), len(tt.b))
			}
			checkCanonical(t, tt.b, p, func(b []byte) (Message, error) { return ParseProposal(b) })
		})
	}
}

// TestProposalDefaults checks the zero eyecatchers and version: what this package's
// client sends.
func TestProposalDefaults(t *testing.T) {
	p := Proposal{TypeV1: SMCTypeN, TypeV2: SMCTypeD, Release: 1, FeatureMask: 1,
		UEIDs: []EID{eid("SMC-GO-TEST")},
		GIDs:  []GIDCHID{{0x1122334455667788, 0xffff}, {0x99aabbccddeeff00, 0xffff}}}
	if got, want := p.Append(nil), unhex(t, proposalLoopback); !bytes.Equal(got, want) {
		t.Fatalf("got\n% x\nwant\n% x", got, want)
	}
}

// TestProposalMaximum builds the largest Proposal Linux accepts and checks it is
// MaxMessageLen bytes and parses.
func TestProposalMaximum(t *testing.T) {
	p := Proposal{Version: 2, TypeV1: SMCTypeB, TypeV2: SMCTypeB,
		IPv6Prefixes: make([]IPv6Prefix, MaxIPv6Prefixes),
		UEIDs:        make([]EID, MaxUEIDs),
		GIDs:         make([]GIDCHID, MaxGIDEntries)}
	b := p.Append(nil)
	if len(b) != MaxMessageLen || p.Length() != MaxMessageLen {
		t.Fatalf("maximal proposal is %d bytes (Length %d), want %d", len(b), p.Length(), MaxMessageLen)
	}
	if !IsHeaderPrefix(b) {
		t.Fatal("maximal proposal header rejected")
	}
	if _, err := ParseProposal(b); err != nil {
		t.Fatal(err)
	}
	// One more of anything is over Linux's limits.
	for name, q := range map[string]Proposal{
		"prefix": {Version: 2, TypeV1: SMCTypeR, TypeV2: SMCTypeN, IPv6Prefixes: make([]IPv6Prefix, MaxIPv6Prefixes+1)},
		"ueid":   {Version: 2, TypeV1: SMCTypeN, TypeV2: SMCTypeR, UEIDs: make([]EID, MaxUEIDs+1)},
		"gid":    {Version: 2, TypeV1: SMCTypeN, TypeV2: SMCTypeD, GIDs: make([]GIDCHID, MaxGIDEntries+1)},
	} {
		if _, err := ParseProposal(q.Append(nil)); err == nil {
			t.Errorf("%s: one over the limit accepted", name)
		}
	}
}

// TestProposalIgnoredFields checks fields Linux ignores: reserved and vendor bytes,
// and the iparea_offset of a proposal without v1 offer. They parse and are zeroed.
func TestProposalIgnoredFields(t *testing.T) {
	canon := unhex(t, proposalLoopback)
	b := patch(canon, 38, 0x00, 0x28) // iparea_offset 40 with typev1 N
	b = patch(b, 52, 0xaa, 0xbb, 0xcc, 1, 2, 3, 4, 5, 0xff)
	b = patch(b, 82, 0xff)       // reserved
	b = patch(b, 83, 0x1e)       // release 1, reserved flag bits
	b = patch(b, 84, 0xff, 0xff) // reserved
	b = patch(b, 108, 0xff)      // reserved
	b = patch(b, 184, 0xff)      // SMC-Dv2 extension reserved
	p, err := ParseProposal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Append(nil); !bytes.Equal(got, canon) {
		t.Fatalf("canonical form\n% x\nwant\n% x", got, canon)
	}
}

func TestParseProposalRejects(t *testing.T) {
	lo := unhex(t, proposalLoopback)
	mixed := unhex(t, proposalMixed)
	v1 := unhex(t, proposalV1R)
	v1d := unhex(t, proposalV1D)
	tests := []struct {
		name string
		b    []byte
		code Code
	}{
		{"empty", nil, CodeCnfErr},
		{"truncated", lo[:len(lo)-1], CodeCnfErr},
		{"trailing byte", append(append([]byte(nil), lo...), 0), CodeCnfErr},
		{"length field short", withLen(lo, len(lo)-1), CodeCnfErr},
		{"bad eyecatcher", patch(lo, 0, 0, 0, 0, 0), CodePeerNoSMC},
		{"bad trailer", patch(lo, len(lo)-4, 0xe2, 0xd4, 0xc3, 0x00), CodeCnfErr},
		{"wrong type", patch(lo, 4, byte(TypeConfirm)), CodeCnfErr},
		{"version 0", patch(lo, 7, 0x06), CodeCnfErr},
		{"iparea_offset 41", patch(lo, 38, 0x00, 0x29), CodeCnfErr},
		{"v2 offer without extension", patch(lo, 7, 0x2a), CodeCnfErr}, // typev2 N: 144 bytes too many
		{"no offer at all, long", patch(lo, 7, 0x2a), CodeCnfErr},
		{"v2_ext_offset 0", patch(lo, 50, 0, 0), CodeCnfErr},
		{"v2_ext_offset off by one", patch(lo, 50, 0, 29), CodeCnfErr},
		{"eid_cnt 9", patch(lo, 80, 9), CodeCnfErr},
		{"eid_cnt 2", patch(lo, 80, 2), CodeCnfErr},
		{"eid_cnt 0", patch(lo, 80, 0), CodeCnfErr},
		{"ism_gid_cnt 9", patch(lo, 81, 9), CodeCnfErr},
		{"ism_gid_cnt 3", patch(lo, 81, 3), CodeCnfErr},
		{"ism_gid_cnt 1", patch(lo, 81, 1), CodeCnfErr},
		{"smcd_v2_ext_offset wrong", patch(lo, 86, 0, 0x20), CodeCnfErr},
		{"typev2 R, SMC-Dv2 part left over", patch(lo, 7, 0x22), CodeCnfErr},
		{"mixed: iparea_offset 0", patch(mixed, 38, 0, 0), CodeCnfErr},
		{"mixed: ipv6 count 9", patch(mixed, 87, 9), CodeCnfErr},
		{"mixed: ipv6 count 1", patch(mixed, 87, 1), CodeCnfErr},
		{"mixed: v2_ext_offset as without IP area", patch(mixed, 50, 0, 28), CodeCnfErr},
		{"mixed: typev1 N", patch(mixed, 7, 0x2e), CodeCnfErr},
		{"v1: typev1 N", patch(v1, 7, 0x12), CodeCnfErr},
		{"v1: iparea_offset 40 without SMC-D", patch(v1, 38, 0, 40), CodeCnfErr},
		{"v1: SMC-D without area", patch(v1, 7, 0x11), CodeCnfErr},
		{"v1 SMC-D: iparea_offset 0", patch(v1d, 38, 0, 0), CodeCnfErr},
		{"v1: ipv6 count 2", patch(v1, 47, 2), CodeCnfErr},
		{"v1: ipv6 count 0", patch(v1, 47, 0), CodeCnfErr},
		{"v1: ipv6 count 9", patch(v1, 47, 9), CodeCnfErr},
		{"header only", lo[:8], CodeCnfErr},
		{"cut in local area", withLen(append(append([]byte(nil), lo[:30]...), lo[220:]...), 34), CodeCnfErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProposal(tt.b)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if p != nil {
				t.Fatal("returned a proposal with an error")
			}
			wantParseError(t, err, tt.code)
		})
	}
}

func FuzzParseProposal(f *testing.F) {
	for _, g := range goldenProposals(f) {
		f.Add(g.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProposal(b)
		if err != nil {
			var pe *ParseError
			if p != nil || !errors.As(err, &pe) {
				t.Fatalf("bad failure: %v, %v", p, err)
			}
			return
		}
		if len(p.IPv6Prefixes) > MaxIPv6Prefixes || len(p.UEIDs) > MaxUEIDs || len(p.GIDs) > MaxGIDEntries {
			t.Fatalf("limits exceeded: %+v", p)
		}
		if devs := slices.Collect(p.Devices()); len(devs) > 1+len(p.GIDs) {
			t.Fatalf("%d devices from %d entries", len(devs), len(p.GIDs))
		}
		checkCanonical(t, b, p, func(b []byte) (Message, error) { return ParseProposal(b) })
	})
}

func TestProposalDevices(t *testing.T) {
	lo := ISMDevice{CHID: 0xffff, GID: 0x1122334455667788, GIDExt: 0x99aabbccddeeff00}
	native := ISMDevice{CHID: 0x0124, GID: 0x0a0b0c0d0e0f1011}
	tests := []struct {
		name string
		p    Proposal
		want []ISMDevice
	}{
		{"loopback golden", goldenProposals(t)["loopback"].want, []ISMDevice{lo}},
		{"mixed golden", goldenProposals(t)["mixed"].want, []ISMDevice{{CHID: 0x0123, GID: 0x0102030405060708}, native}},
		{"v2 R only", Proposal{TypeV1: SMCTypeN, TypeV2: SMCTypeR, GIDs: GIDEntries(lo)}, nil},
		{"v1", Proposal{Version: 1, TypeV1: SMCTypeD, TypeV2: SMCTypeD, ISMCHID: 1, GIDs: GIDEntries(lo)}, nil},
		{"emulated then native", Proposal{TypeV1: SMCTypeN, TypeV2: SMCTypeD, GIDs: GIDEntries(lo, native)}, []ISMDevice{lo, native}},
		{"emulated without partner", Proposal{TypeV1: SMCTypeN, TypeV2: SMCTypeD,
			GIDs: []GIDCHID{{1, 0xff01}, {2, 0x0001}, {3, 0xff02}}}, []ISMDevice{{CHID: 1, GID: 2}}},
		{"emulated partner with other CHID", Proposal{TypeV1: SMCTypeN, TypeV2: SMCTypeD,
			GIDs: []GIDCHID{{1, 0xff01}, {2, 0xff02}, {3, 0xff02}}}, []ISMDevice{{CHID: 0xff02, GID: 2, GIDExt: 3}}},
	}
	for _, tt := range tests {
		if got := slices.Collect(tt.p.Devices()); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Devices() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if got, want := GIDEntries(lo), goldenProposals(t)["loopback"].want.GIDs; !reflect.DeepEqual(got, want) {
		t.Errorf("GIDEntries(loopback) = %+v, want %+v", got, want)
	}
	if IsEmulatedCHID(0xfeff) || !IsEmulatedCHID(0xff00) || !IsEmulatedCHID(0xffff) {
		t.Error("IsEmulatedCHID boundaries wrong")
	}
}
