package wire

import (
	"encoding/binary"
	"iter"
)

// Proposal layout sizes. Linux smc_clc.h.
const (
	proposalBaseLen = 40 // struct smc_clc_msg_proposal: header, smc_clc_msg_local, iparea_offset
	smcdAreaLen     = 40 // struct smc_clc_msg_smcd
	prefixAreaLen   = 8  // struct smc_clc_msg_proposal_prefix
	ipv6PrefixLen   = 17 // struct smc_clc_ipv6_prefix
	v2ExtLen        = 40 // struct smc_clc_v2_extension_fixed
	smcdV2ExtLen    = 48 // struct smc_clc_smcd_v2_extension_fixed
	gidCHIDLen      = 10 // struct smc_clc_smcd_gid_chid

	// v2ExtOffsetBase is v2_ext_offset when no IP prefix area precedes the v2
	// extension: it counts from the end of the v2_ext_offset field (byte 52) to the
	// end of the SMC-D area (byte 80).
	v2ExtOffsetBase = proposalBaseLen + smcdAreaLen - 52
	// smcdV2ExtOffsetBase is smcd_v2_ext_offset when the proposal carries no UEID:
	// it counts from the end of the smcd_v2_ext_offset field to the end of the
	// fixed v2 extension.
	smcdV2ExtOffsetBase = v2ExtLen - 8
)

// EIDLen is the size of an EID (Linux smc.h: SMC_MAX_EID_LEN).
const EIDLen = 32

// EID is an enterprise ID: 32 bytes, upper-case letters, digits, '.' and '-', padded
// with blanks (a user EID) or the system EID of an s390 machine.
type EID [EIDLen]byte

// GIDCHID is one SMC-Dv2 GID/CHID entry of a Proposal: an ISM device's 64-bit GID
// and its CHID. An Emulated-ISM device (CHID 0xFF00-0xFFFF, such as loopback-ism
// with CHID 0xFFFF) takes two entries with the same CHID: its GID, then its
// extended GID.
//
// Linux smc_clc.h: struct smc_clc_smcd_gid_chid.
type GIDCHID struct {
	GID  uint64
	CHID uint16
}

// IPv6Prefix is one IPv6 prefix entry of a Proposal's IP area.
//
// Linux smc_clc.h: struct smc_clc_ipv6_prefix.
type IPv6Prefix struct {
	Prefix [16]byte
	Len    uint8
}

// Proposal is the first CLC message, client to server: what the client offers.
//
// The version 2 layout, which Linux always sends, is: the header; the SMC-R v1
// local area (peer ID, RoCE GID and MAC); iparea_offset; the 40-byte SMC-D area
// (ISM v1 GID and CHID, v2_ext_offset); the IP prefix area when TypeV1 is not
// SMCTypeN; the v2 extension (flags, UEIDs, RoCEv2 GID and the v2.1 fields) when
// TypeV2 is not SMCTypeN; the SMC-Dv2 extension (system EID and GID/CHID entries)
// when TypeV2 includes SMC-D; the trailer. A version 1 Proposal has the local
// area, the SMC-D area only when TypeV1 includes SMC-D, and the IP prefix area.
//
// Append computes every length, count and offset from the fields; the zero value
// of SMCType is SMCTypeR, so set TypeV1 and TypeV2 explicitly. Append encodes
// what it is given: a Proposal with more than MaxIPv6Prefixes, MaxUEIDs or
// MaxGIDEntries entries yields a message ParseProposal rejects.
//
// Linux smc_clc.h: struct smc_clc_msg_proposal, struct smc_clc_msg_smcd, struct
// smc_clc_msg_proposal_prefix, struct smc_clc_v2_extension, struct
// smc_clc_smcd_v2_extension (together, struct smc_clc_msg_proposal_area).
type Proposal struct {
	// Eyecatcher and Trailer are the header and trailer eyecatchers; zero means
	// EyecatcherSMCR, which Linux always sends in a Proposal.
	Eyecatcher, Trailer Eyecatcher
	// Version is the highest SMC version the client speaks; zero means Version2.
	Version uint8
	// TypeV1 is what the client offers for SMC v1.
	TypeV1 SMCType
	// TypeV2 is what the client offers for SMC v2. A version 1 Proposal has no v2
	// offer: ParseProposal sets SMCTypeN and Append ignores the field.
	TypeV2 SMCType

	// SMC-R v1: the sender's system ID, RoCE GID and MAC. Linux fills them only
	// when it offers SMC-R v1 (struct smc_clc_msg_local).
	PeerID  [8]byte
	RoCEGID [16]byte
	RoCEMAC [6]byte

	// SMC-D v1: the native ISM device's GID and CHID (struct smc_clc_msg_smcd).
	// Linux fills them only when it offers SMC-D v1.
	ISMGID  uint64
	ISMCHID uint16

	// The IP prefix area, sent when TypeV1 is not SMCTypeN (and always in a version
	// 1 Proposal): the IPv4 subnet of the interface the TCP connection uses, or its
	// IPv6 prefixes (at most MaxIPv6Prefixes).
	IPv4Subnet    [4]byte
	IPv4PrefixLen uint8
	IPv6Prefixes  []IPv6Prefix

	// The v2 extension, sent when TypeV2 is not SMCTypeN.
	Release     uint8 // 4 bits: 0 = v2.0, 1 = v2.1 (Linux SMC_RELEASE is 1)
	SEID        bool  // the system EID is offered (SMC-D only)
	UEIDs       []EID // user EIDs, at most MaxUEIDs
	RoCEv2GID   [16]byte
	MaxConns    uint8  // v2.1, SMC-R only
	MaxLinks    uint8  // v2.1, SMC-R only
	FeatureMask uint16 // v2.1: bit 0 = Emulated-ISM support

	// The SMC-Dv2 extension, sent when TypeV2 includes SMC-D.
	SystemEID EID
	GIDs      []GIDCHID // at most MaxGIDEntries
}

func (p *Proposal) version() uint8 {
	if p.Version == 0 {
		return Version2
	}
	return p.Version
}

// Length returns the encoded length of p.
func (p *Proposal) Length() int {
	tv1, tv2 := p.TypeV1&3, p.TypeV2&3
	n := proposalBaseLen + TrailerLen
	if p.version() == Version1 {
		if tv1.HasD() {
			n += smcdAreaLen
		}
		return n + p.prefixLen()
	}
	n += smcdAreaLen
	if tv1 != SMCTypeN {
		n += p.prefixLen()
	}
	if tv2 != SMCTypeN {
		n += v2ExtLen + EIDLen*len(p.UEIDs)
	}
	if tv2.HasD() {
		n += smcdV2ExtLen + gidCHIDLen*len(p.GIDs)
	}
	return n
}

func (p *Proposal) prefixLen() int { return prefixAreaLen + ipv6PrefixLen*len(p.IPv6Prefixes) }

// Append appends the encoding of p to b. Reserved and vendor fields are zero.
func (p *Proposal) Append(b []byte) []byte {
	v, tv1, tv2 := p.version(), p.TypeV1&3, p.TypeV2&3
	h := Header{Eyecatcher: p.Eyecatcher.or(EyecatcherSMCR), Type: TypeProposal,
		Length: uint16(p.Length()), Version: v, TypeV1: uint8(tv1)}
	var ipAreaOffset uint16
	withSMCDArea, withPrefix := true, true
	if v == Version1 {
		withSMCDArea = tv1.HasD()
	} else {
		h.TypeV2 = uint8(tv2)
		withPrefix = tv1 != SMCTypeN
	}
	if withSMCDArea && withPrefix {
		ipAreaOffset = smcdAreaLen
	}
	b = h.Append(b)
	b = append(b, p.PeerID[:]...)
	b = append(b, p.RoCEGID[:]...)
	b = append(b, p.RoCEMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, ipAreaOffset)
	if withSMCDArea {
		var v2ExtOffset int
		if v != Version1 && tv2 != SMCTypeN {
			v2ExtOffset = v2ExtOffsetBase
			if withPrefix {
				v2ExtOffset += p.prefixLen()
			}
		}
		b = binary.BigEndian.AppendUint64(b, p.ISMGID)
		b = binary.BigEndian.AppendUint16(b, p.ISMCHID)
		b = binary.BigEndian.AppendUint16(b, uint16(v2ExtOffset))
		b = append(b, make([]byte, smcdAreaLen-12)...) // vendor OUI, vendor options, reserved
	}
	if withPrefix {
		b = append(b, p.IPv4Subnet[:]...)
		b = append(b, p.IPv4PrefixLen, 0, 0, uint8(len(p.IPv6Prefixes)))
		for _, pr := range p.IPv6Prefixes {
			b = append(b, pr.Prefix[:]...)
			b = append(b, pr.Len)
		}
	}
	if v != Version1 && tv2 != SMCTypeN {
		var gidCount uint8
		var smcdV2ExtOffset int
		flag := p.Release << 4
		if p.SEID {
			flag |= 1
		}
		if tv2.HasD() {
			gidCount = uint8(len(p.GIDs))
			smcdV2ExtOffset = smcdV2ExtOffsetBase + EIDLen*len(p.UEIDs)
		}
		b = append(b, uint8(len(p.UEIDs)), gidCount, 0, flag, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(smcdV2ExtOffset))
		b = append(b, p.RoCEv2GID[:]...)
		b = append(b, p.MaxConns, p.MaxLinks)
		b = binary.BigEndian.AppendUint16(b, p.FeatureMask)
		b = append(b, make([]byte, 12)...)
		for i := range p.UEIDs {
			b = append(b, p.UEIDs[i][:]...)
		}
		if tv2.HasD() {
			b = append(b, p.SystemEID[:]...)
			b = append(b, make([]byte, smcdV2ExtLen-EIDLen)...)
			for _, g := range p.GIDs {
				b = binary.BigEndian.AppendUint64(b, g.GID)
				b = binary.BigEndian.AppendUint16(b, g.CHID)
			}
		}
	}
	return appendTrailer(b, p.Trailer.or(EyecatcherSMCR))
}

// ParseProposal decodes b, which must hold exactly one Proposal. It enforces what
// Linux's smc_clc_msg_prop_valid enforces — valid eyecatchers, iparea_offset at most
// 40, at most 8 IPv6 prefixes, 8 UEIDs and 8 GID/CHID entries, a length field equal
// to the sum of the parts the header's types announce — and, beyond it, that every
// offset points exactly at the part it locates, since Linux computes the length as
// if they did:
//
//   - version 1: iparea_offset is 40 when TypeV1 includes SMC-D and 0 otherwise;
//     TypeV1 must not be SMCTypeN;
//   - version 2 and later: iparea_offset is 40 when TypeV1 is not SMCTypeN (with
//     SMCTypeN Linux sends 0 and any value up to 40 is accepted and ignored);
//     v2_ext_offset and smcd_v2_ext_offset locate the v2 and SMC-Dv2 extensions
//     right after the parts before them.
//
// Reserved, vendor and unused fields are ignored, so Append of the result
// reproduces b except that those fields, and any ignored offset or count, are
// zero.
func ParseProposal(b []byte) (*Proposal, error) {
	h, err := checkFrame(b, TypeProposal)
	if err != nil {
		return nil, err
	}
	// One allocation holds the Proposal and the entries of a usual one.
	pa := &proposalAlloc{Proposal: Proposal{Eyecatcher: h.Eyecatcher, Trailer: trailer(b), Version: h.Version, TypeV1: SMCType(h.TypeV1), TypeV2: SMCTypeN}}
	p := &pa.Proposal
	r := reader{b: b[:len(b)-TrailerLen], t: TypeProposal}
	r.skip(HeaderLen)
	r.copy(p.PeerID[:])
	r.copy(p.RoCEGID[:])
	r.copy(p.RoCEMAC[:])
	ipAreaOffset := r.u16()
	if r.err != nil {
		return nil, r.err
	}
	if ipAreaOffset > smcdAreaLen {
		return nil, perr(TypeProposal, CodeCnfErr, "iparea_offset %d exceeds %d", ipAreaOffset, smcdAreaLen)
	}

	if h.Version == Version1 {
		if p.TypeV1 == SMCTypeN {
			return nil, perr(TypeProposal, CodeCnfErr, "version 1 proposal offers no SMC type")
		}
		want := uint16(0)
		if p.TypeV1.HasD() {
			want = smcdAreaLen
		}
		if ipAreaOffset != want {
			return nil, perr(TypeProposal, CodeCnfErr, "version 1 proposal offering %v has iparea_offset %d, want %d", p.TypeV1, ipAreaOffset, want)
		}
		if want != 0 {
			p.ISMGID = r.u64()
			p.ISMCHID = r.u16()
			r.skip(smcdAreaLen - 10)
		}
		r.prefixes(p)
		return finish(p, &r)
	}

	p.TypeV2 = SMCType(h.TypeV2)
	p.ISMGID = r.u64()
	p.ISMCHID = r.u16()
	v2ExtOffset := int(r.u16())
	r.skip(smcdAreaLen - 12)
	if p.TypeV1 != SMCTypeN {
		if ipAreaOffset != smcdAreaLen {
			return nil, perr(TypeProposal, CodeCnfErr, "proposal offering %v for v1 has iparea_offset %d, want %d", p.TypeV1, ipAreaOffset, smcdAreaLen)
		}
		r.prefixes(p)
	}
	if p.TypeV2 == SMCTypeN || r.err != nil {
		return finish(p, &r)
	}

	if want := r.off - 52; v2ExtOffset != want {
		return nil, perr(TypeProposal, CodeCnfErr, "v2_ext_offset %d, v2 extension is at offset %d", v2ExtOffset, want)
	}
	eidCount := int(r.u8())
	gidCount := int(r.u8())
	r.skip(1)
	flag := r.u8()
	p.Release, p.SEID = flag>>4, flag&1 != 0
	r.skip(2)
	smcdV2ExtOffset := int(r.u16())
	r.copy(p.RoCEv2GID[:])
	p.MaxConns = r.u8()
	p.MaxLinks = r.u8()
	p.FeatureMask = r.u16()
	r.skip(12)
	if r.err != nil {
		return nil, r.err
	}
	if eidCount > MaxUEIDs {
		return nil, perr(TypeProposal, CodeCnfErr, "%d UEIDs, at most %d", eidCount, MaxUEIDs)
	}
	if eidCount > 0 {
		if eidCount <= len(pa.ueids) {
			p.UEIDs = pa.ueids[:eidCount:eidCount]
		} else {
			p.UEIDs = make([]EID, eidCount)
		}
		for i := range p.UEIDs {
			r.copy(p.UEIDs[i][:])
		}
	}
	if !p.TypeV2.HasD() {
		return finish(p, &r)
	}
	if gidCount > MaxGIDEntries {
		return nil, perr(TypeProposal, CodeCnfErr, "%d GID/CHID entries, at most %d", gidCount, MaxGIDEntries)
	}
	if want := smcdV2ExtOffsetBase + EIDLen*eidCount; smcdV2ExtOffset != want {
		return nil, perr(TypeProposal, CodeCnfErr, "smcd_v2_ext_offset %d, want %d", smcdV2ExtOffset, want)
	}
	r.copy(p.SystemEID[:])
	r.skip(smcdV2ExtLen - EIDLen)
	if gidCount > 0 {
		if gidCount <= len(pa.gids) {
			p.GIDs = pa.gids[:gidCount:gidCount]
		} else {
			p.GIDs = make([]GIDCHID, gidCount)
		}
		for i := range p.GIDs {
			p.GIDs[i].GID = r.u64()
			p.GIDs[i].CHID = r.u16()
		}
	}
	return finish(p, &r)
}

// proposalAlloc is what ParseProposal allocates: the Proposal, and room for the UEID
// and the GID/CHID entries of a usual one (Linux and this package send one UEID and
// one Emulated-ISM device, two entries), which its slices use when they fit.
type proposalAlloc struct {
	Proposal
	ueids [1]EID
	gids  [2]GIDCHID
}

// prefixes reads the IP prefix area into p.
func (r *reader) prefixes(p *Proposal) {
	r.copy(p.IPv4Subnet[:])
	p.IPv4PrefixLen = r.u8()
	r.skip(2)
	n := int(r.u8())
	if r.err != nil {
		return
	}
	if n > MaxIPv6Prefixes {
		r.err = perr(r.t, CodeCnfErr, "%d IPv6 prefixes, at most %d", n, MaxIPv6Prefixes)
		return
	}
	if n > 0 {
		p.IPv6Prefixes = make([]IPv6Prefix, n)
		for i := range p.IPv6Prefixes {
			r.copy(p.IPv6Prefixes[i].Prefix[:])
			p.IPv6Prefixes[i].Len = r.u8()
		}
	}
}

// IsEmulatedCHID reports whether chid is that of an Emulated-ISM device
// (0xFF00-0xFFFF, such as loopback-ism with 0xFFFF), whose 128-bit GID takes two
// GID/CHID entries in a Proposal and whose Accept/Confirm carries GIDExt.
//
// Linux smc_ism.h: __smc_ism_is_emulated.
func IsEmulatedCHID(chid uint16) bool { return chid >= 0xFF00 }

// ISMDevice is an SMC-D device offered for v2: its CHID and GID, with the extended
// GID of an Emulated-ISM device (zero otherwise).
type ISMDevice struct {
	CHID        uint16
	GID, GIDExt uint64
}

// Devices yields the SMC-Dv2 devices p offers, read as a Linux server reads them
// (af_smc.c: smc_find_ism_v2_device_serv): the native ISM device of the SMC-D area
// when its CHID is nonzero, then one device per GID/CHID entry, where an
// Emulated-ISM entry takes the next entry, which must repeat its CHID, as its
// extended GID; an Emulated-ISM entry without such a partner is skipped. It yields
// nothing when TypeV2 does not include SMC-D.
func (p *Proposal) Devices() iter.Seq[ISMDevice] {
	return func(yield func(ISMDevice) bool) {
		if p.version() == Version1 || !(p.TypeV2 & 3).HasD() {
			return
		}
		if p.ISMCHID != 0 && !yield(ISMDevice{CHID: p.ISMCHID, GID: p.ISMGID}) {
			return
		}
		for i := 0; i < len(p.GIDs); i++ {
			e := p.GIDs[i]
			if !IsEmulatedCHID(e.CHID) {
				if !yield(ISMDevice{CHID: e.CHID, GID: e.GID}) {
					return
				}
				continue
			}
			if i+1 == len(p.GIDs) || p.GIDs[i+1].CHID != e.CHID {
				continue
			}
			if !yield(ISMDevice{CHID: e.CHID, GID: e.GID, GIDExt: p.GIDs[i+1].GID}) {
				return
			}
			i++
		}
	}
}

// GIDEntries returns the GID/CHID entries that offer devs in a Proposal: one entry
// per device, two for an Emulated-ISM device (its GID, then its extended GID).
func GIDEntries(devs ...ISMDevice) []GIDCHID {
	var e []GIDCHID
	for _, d := range devs {
		e = append(e, GIDCHID{GID: d.GID, CHID: d.CHID})
		if IsEmulatedCHID(d.CHID) {
			e = append(e, GIDCHID{GID: d.GIDExt, CHID: d.CHID})
		}
	}
	return e
}
