package wire

import "encoding/binary"

// Accept/Confirm lengths. Linux smc_clc.c: SMCR_CLC_ACCEPT_CONFIRM_LEN,
// SMCD_CLC_ACCEPT_CONFIRM_LEN, SMCD_CLC_ACCEPT_CONFIRM_LEN_V2,
// SMCR_CLC_ACCEPT_CONFIRM_LEN_V2.
const (
	smcrAcceptV1Len = 68
	smcdAcceptV1Len = 48
	smcdAcceptV2Len = 78
	smcrAcceptV2Len = 108

	// FCE lengths. Linux smc_clc.h: struct smc_clc_first_contact_ext and struct
	// smc_clc_first_contact_ext_v2x.
	fceBaseLen = 36
	fceV2xLen  = 52
)

// HostnameLen is the size of the hostname field of the first-contact extension
// (Linux smc.h: SMC_MAX_HOSTNAME_LEN).
const HostnameLen = 32

// AcceptConfirm is an SMC-D v2 Accept (server to client, answering a Proposal) or
// Confirm (client to server, answering the Accept). Both share one layout, in
// which each side describes its own receive buffer (DMB) to the peer.
//
// Only SMC-D v2 is decoded. An SMC-R Accept/Confirm or an SMC-D v1 one is
// recognised and reported as an error wrapping ErrUnsupported, with
// CodeModeUnsupp.
//
// Linux smc_clc.h: struct smc_clc_msg_accept_confirm (SMC-D: struct
// smcd_clc_msg_accept_confirm_common d0 and the v2 part d1), followed on first
// contact by struct smc_clc_first_contact_ext[_v2x].
type AcceptConfirm struct {
	// Type is TypeAccept or TypeConfirm; Append writes it as is.
	Type Type
	// Eyecatcher and Trailer are the header and trailer eyecatchers; zero means
	// EyecatcherSMCD, which Linux sends in an SMC-D Accept/Confirm.
	Eyecatcher, Trailer Eyecatcher
	// Version is the negotiated SMC version, at least Version2; zero means
	// Version2.
	Version uint8

	// GID is the sender's ISM GID (for an Emulated-ISM device, the first 64 bits).
	GID uint64
	// DMBToken identifies the sender's receive buffer, which the peer writes into.
	DMBToken uint64
	// DMBEIndex is the DMB element index; Linux uses 0.
	DMBEIndex uint8
	// DMBESize is the compressed size of the DMB element (4 bits, see
	// [BufferSize]).
	DMBESize uint8
	// LinkID is the 4-byte link group ID.
	LinkID uint32
	// CHID is the CHID of the ISM device the sender chose.
	CHID uint16
	// EID is the negotiated EID.
	EID EID
	// GIDExt is the extended GID, the second 64 bits of an Emulated-ISM GID.
	GIDExt uint64

	// FCE is the first-contact extension. It is present exactly when the header's
	// first-contact bit is set: Append sets the bit when FCE is not nil.
	FCE *FirstContactExt
}

// FirstContactExt is the first-contact extension of a v2 Accept/Confirm, sent when
// the message creates a new link group. Its base form is 36 bytes; the v2.1 form
// (V2x) adds 16 bytes. Linux sends the v2.1 form except for SMC-D with release 0.
//
// Linux smc_clc.h: struct smc_clc_first_contact_ext, struct
// smc_clc_first_contact_ext_v2x.
type FirstContactExt struct {
	V2Direct bool              // SMC-Rv2: the peer is reachable without a gateway
	OSType   uint8             // 4 bits: OSLinux, ...
	Release  uint8             // 4 bits: 0 = v2.0, 1 = v2.1
	Hostname [HostnameLen]byte // blank-padded

	// V2x reports whether the 16-byte v2.1 part follows; the fields below are sent
	// only then.
	V2x           bool
	MaxConns      uint8 // SMC-R only; reserved for SMC-D
	MaxLinks      uint8 // SMC-R only; reserved for SMC-D
	FeatureMask   uint16
	VendorOptions uint32
}

// Len returns the encoded length of f: 52 bytes when V2x is set, else 36.
func (f *FirstContactExt) Len() int {
	if f.V2x {
		return fceV2xLen
	}
	return fceBaseLen
}

func (m *AcceptConfirm) version() uint8 {
	if m.Version == 0 {
		return Version2
	}
	return m.Version
}

// Length returns the encoded length of m: 78 bytes, plus the first-contact
// extension when present.
func (m *AcceptConfirm) Length() int {
	if m.FCE != nil {
		return smcdAcceptV2Len + m.FCE.Len()
	}
	return smcdAcceptV2Len
}

// Append appends the encoding of m to b. Reserved fields are zero; fields wider
// than their bit fields are truncated.
func (m *AcceptConfirm) Append(b []byte) []byte {
	h := Header{Eyecatcher: m.Eyecatcher.or(EyecatcherSMCD), Type: m.Type,
		Length: uint16(m.Length()), Version: m.version(), TypeV1: uint8(SMCTypeD)}
	if m.FCE != nil {
		h.TypeV2 = firstContactBit
	}
	b = h.Append(b)
	b = binary.BigEndian.AppendUint64(b, m.GID)
	b = binary.BigEndian.AppendUint64(b, m.DMBToken)
	b = append(b, m.DMBEIndex, m.DMBESize<<4, 0, 0)
	b = binary.BigEndian.AppendUint32(b, m.LinkID)
	b = binary.BigEndian.AppendUint16(b, m.CHID)
	b = append(b, m.EID[:]...)
	b = binary.BigEndian.AppendUint64(b, m.GIDExt)
	if f := m.FCE; f != nil {
		var direct uint8
		if f.V2Direct {
			direct = 0x80
		}
		b = append(b, direct, f.OSType<<4|f.Release&0xf, 0, 0)
		b = append(b, f.Hostname[:]...)
		if f.V2x {
			b = append(b, f.MaxConns, f.MaxLinks)
			b = binary.BigEndian.AppendUint16(b, f.FeatureMask)
			b = binary.BigEndian.AppendUint32(b, f.VendorOptions)
			b = append(b, make([]byte, 8)...)
		}
	}
	return appendTrailer(b, m.Trailer.or(EyecatcherSMCD))
}

// ParseAccept decodes b, which must hold exactly one Accept. See
// [ParseAcceptConfirm].
func ParseAccept(b []byte) (*AcceptConfirm, error) { return ParseAcceptConfirm(b, TypeAccept) }

// ParseConfirm decodes b, which must hold exactly one Confirm. See
// [ParseAcceptConfirm].
func ParseConfirm(b []byte) (*AcceptConfirm, error) { return ParseAcceptConfirm(b, TypeConfirm) }

// ParseAcceptConfirm decodes b, which must hold exactly one message of type t
// (TypeAccept or TypeConfirm), with valid eyecatchers and a length field equal to
// len(b).
//
// The chosen type (typev1) must be SMC-R or SMC-D, as Linux requires. An SMC-R
// message (68 bytes in v1, at least 108 in v2) or an SMC-D v1 message (48 bytes)
// is reported as an error wrapping ErrUnsupported. An SMC-D v2 message must be 78
// bytes without the first-contact bit and 78+36 or 78+52 bytes with it; Linux only
// requires at least 78. Reserved fields are ignored, so Append of the result
// reproduces b except that they are zero.
func ParseAcceptConfirm(b []byte, t Type) (*AcceptConfirm, error) {
	if t != TypeAccept && t != TypeConfirm {
		return nil, perr(t, CodeCnfErr, "not an accept or confirm type")
	}
	h, err := checkFrame(b, t)
	if err != nil {
		return nil, err
	}
	switch chosen := SMCType(h.TypeV1); {
	case chosen == SMCTypeR && h.Version == Version1 && len(b) == smcrAcceptV1Len,
		chosen == SMCTypeR && h.Version > Version1 && len(b) >= smcrAcceptV2Len:
		return nil, unsupported(t, "SMC-R v%d", h.Version)
	case chosen == SMCTypeD && h.Version == Version1 && len(b) == smcdAcceptV1Len:
		return nil, unsupported(t, "SMC-D v1")
	case chosen != SMCTypeR && chosen != SMCTypeD:
		return nil, perr(t, CodeCnfErr, "chosen SMC type is %v", chosen)
	case chosen == SMCTypeR || h.Version == Version1:
		return nil, perr(t, CodeCnfErr, "%v v%d message of %d bytes", chosen, h.Version, len(b))
	}
	firstContact := h.TypeV2&firstContactBit != 0
	switch n := len(b); {
	case !firstContact && n != smcdAcceptV2Len:
		return nil, perr(t, CodeCnfErr, "%d bytes without first contact, want %d", n, smcdAcceptV2Len)
	case firstContact && n != smcdAcceptV2Len+fceBaseLen && n != smcdAcceptV2Len+fceV2xLen:
		return nil, perr(t, CodeCnfErr, "%d bytes with first contact, want %d or %d", n,
			smcdAcceptV2Len+fceBaseLen, smcdAcceptV2Len+fceV2xLen)
	}
	// One allocation holds the message and its first-contact extension.
	var m *AcceptConfirm
	var f *FirstContactExt
	if firstContact {
		a := &struct {
			m AcceptConfirm
			f FirstContactExt
		}{}
		m, f = &a.m, &a.f
	} else {
		m = new(AcceptConfirm)
	}
	*m = AcceptConfirm{Type: t, Eyecatcher: h.Eyecatcher, Trailer: trailer(b), Version: h.Version}
	r := reader{b: b[:len(b)-TrailerLen], t: t}
	r.skip(HeaderLen)
	m.GID = r.u64()
	m.DMBToken = r.u64()
	m.DMBEIndex = r.u8()
	m.DMBESize = r.u8() >> 4
	r.skip(2)
	m.LinkID = r.u32()
	m.CHID = r.u16()
	r.copy(m.EID[:])
	m.GIDExt = r.u64()
	if firstContact {
		f.V2x = len(b) == smcdAcceptV2Len+fceV2xLen
		f.V2Direct = r.u8()&0x80 != 0
		osRel := r.u8()
		f.OSType, f.Release = osRel>>4, osRel&0xf
		r.skip(2)
		r.copy(f.Hostname[:])
		if f.V2x {
			f.MaxConns = r.u8()
			f.MaxLinks = r.u8()
			f.FeatureMask = r.u16()
			f.VendorOptions = r.u32()
			r.skip(8)
		}
		m.FCE = f
	}
	return finish(m, &r)
}
