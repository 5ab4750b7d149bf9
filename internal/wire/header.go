package wire

import (
	"encoding/binary"
	"fmt"
)

// Eyecatcher is the 4-byte EBCDIC marker that opens (header) and closes (trailer)
// every CLC message. Linux accepts either value in either place.
//
// Linux smc_clc.c: SMC_EYECATCHER, SMCD_EYECATCHER.
type Eyecatcher uint32

const (
	// EyecatcherSMCR is EBCDIC "SMCR". Linux sends it in Proposal and Decline
	// messages and in SMC-R Accept/Confirm messages.
	EyecatcherSMCR Eyecatcher = 0xE2D4C3D9
	// EyecatcherSMCD is EBCDIC "SMCD". Linux sends it in SMC-D Accept/Confirm
	// messages.
	EyecatcherSMCD Eyecatcher = 0xE2D4C3C4
)

// valid reports whether e is one of the two eyecatchers Linux accepts.
func (e Eyecatcher) valid() bool { return e == EyecatcherSMCR || e == EyecatcherSMCD }

// String returns "SMCR", "SMCD" or the value in hexadecimal.
func (e Eyecatcher) String() string {
	switch e {
	case EyecatcherSMCR:
		return "SMCR"
	case EyecatcherSMCD:
		return "SMCD"
	}
	return fmt.Sprintf("%#08x", uint32(e))
}

// or returns e, or def when e is zero, so that a zero Eyecatcher field in a message
// means "the eyecatcher Linux would send".
func (e Eyecatcher) or(def Eyecatcher) Eyecatcher {
	if e == 0 {
		return def
	}
	return e
}

// Type is a CLC message type (header byte 4).
type Type uint8

// CLC message types. Linux smc_clc.h: SMC_CLC_PROPOSAL ... SMC_CLC_DECLINE.
const (
	TypeProposal Type = 1
	TypeAccept   Type = 2
	TypeConfirm  Type = 3
	TypeDecline  Type = 4
)

// String returns the message type's name.
func (t Type) String() string {
	switch t {
	case TypeProposal:
		return "proposal"
	case TypeAccept:
		return "accept"
	case TypeConfirm:
		return "confirm"
	case TypeDecline:
		return "decline"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// SMCType is a 2-bit SMC type field: what a Proposal offers (typev1, typev2) or what
// an Accept/Confirm chose (typev1).
type SMCType uint8

// SMC types. Linux smc_clc.h: SMC_TYPE_R, SMC_TYPE_D, SMC_TYPE_N, SMC_TYPE_B.
const (
	SMCTypeR SMCType = 0 // SMC-R only
	SMCTypeD SMCType = 1 // SMC-D only
	SMCTypeN SMCType = 2 // neither
	SMCTypeB SMCType = 3 // both SMC-R and SMC-D
)

// HasR reports whether t includes SMC-R.
func (t SMCType) HasR() bool { return t == SMCTypeR || t == SMCTypeB }

// HasD reports whether t includes SMC-D.
func (t SMCType) HasD() bool { return t == SMCTypeD || t == SMCTypeB }

// String returns "SMC-R", "SMC-D", "none" or "both".
func (t SMCType) String() string {
	switch t & 3 {
	case SMCTypeR:
		return "SMC-R"
	case SMCTypeD:
		return "SMC-D"
	case SMCTypeN:
		return "none"
	}
	return "both"
}

// SMC versions (high nibble of header byte 7).
const (
	Version1 = 1
	Version2 = 2
)

// Fixed sizes and limits.
const (
	HeaderLen  = 8 // Linux smc_clc.h: struct smc_clc_msg_hdr
	TrailerLen = 4 // Linux smc_clc.h: struct smc_clc_msg_trail

	// MaxMessageLen is the largest CLC message Linux can accept in full: a v2
	// Proposal offering SMC-R v1, SMC-D v1 and SMC-Dv2 with 8 IPv6 prefixes, 8 UEIDs
	// and 8 GID/CHID entries (Linux smc_clc.h: sizeof(struct
	// smc_clc_msg_proposal_area) = 652). Every message Linux sends fits.
	MaxMessageLen = 652

	// MaxIPv6Prefixes is the most IPv6 prefixes a Proposal may carry
	// (Linux smc_clc.h: SMC_CLC_MAX_V6_PREFIX).
	MaxIPv6Prefixes = 8
	// MaxUEIDs is the most user EIDs a Proposal may carry
	// (Linux smc_clc.h: SMC_CLC_MAX_UEID).
	MaxUEIDs = 8
	// MaxGIDEntries is the most SMC-Dv2 GID/CHID entries a Proposal may carry
	// (Linux smc_clc.h: SMCD_CLC_MAX_V2_GID_ENTRIES). An Emulated-ISM device takes
	// two entries.
	MaxGIDEntries = 8
)

// Per-type bounds on the header's length field: the shortest message of that type
// Linux sends, and the longest this package reads.
const (
	minProposalLen = proposalBaseLen + prefixAreaLen + TrailerLen // v1 without SMC-D area or IPv6 prefixes
	minAcceptLen   = smcdAcceptV1Len                              // SMC-D v1 Accept/Confirm, the shortest
	minDeclineLen  = declineV1Len
	maxDeclineLen  = declineV2Len
)

// firstContactBit is the bit of typev2 that means "first contact" in an
// Accept/Confirm and "out of sync" in a Decline (Linux smc_clc.h:
// SMC_FIRST_CONTACT_MASK).
const firstContactBit = 0b10

// Header is the 8-byte header that starts every CLC message.
//
// Linux smc_clc.h: struct smc_clc_msg_hdr.
type Header struct {
	Eyecatcher Eyecatcher
	Type       Type
	Length     uint16 // whole message, header and trailer included
	Version    uint8  // 4 bits
	TypeV2     uint8  // 2 bits: SMCType offered for v2 (Proposal) or flags
	TypeV1     uint8  // 2 bits: SMCType offered for v1 (Proposal) or chosen
}

// Append appends the 8-byte encoding of h to b. Fields wider than their bit
// fields are truncated.
func (h Header) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(h.Eyecatcher))
	b = append(b, byte(h.Type))
	b = binary.BigEndian.AppendUint16(b, h.Length)
	return append(b, h.Version<<4|(h.TypeV2&3)<<2|h.TypeV1&3)
}

// ParseHeader decodes the header at the start of b without looking at the rest of
// the message. It checks what [IsHeaderPrefix] checks: a known eyecatcher and type,
// a length within the bounds of that type, and a version of at least 1. Bytes that
// cannot start a CLC message give an error wrapping ErrNotCLC; a valid prefix
// shorter than a header gives a plain *ParseError.
func ParseHeader(b []byte) (Header, error) {
	if !IsHeaderPrefix(b) {
		return Header{}, &ParseError{Code: CodePeerNoSMC, Msg: fmt.Sprintf("not a CLC header: % x", b[:min(len(b), HeaderLen)]), Err: ErrNotCLC}
	}
	if len(b) < HeaderLen {
		return Header{}, &ParseError{Code: CodeCnfErr, Msg: fmt.Sprintf("%d bytes, header needs %d", len(b), HeaderLen)}
	}
	return decodeHeader(b), nil
}

// decodeHeader decodes the first 8 bytes of b, which the caller has checked exist.
func decodeHeader(b []byte) Header {
	return Header{
		Eyecatcher: Eyecatcher(binary.BigEndian.Uint32(b)),
		Type:       Type(b[4]),
		Length:     binary.BigEndian.Uint16(b[5:]),
		Version:    b[7] >> 4,
		TypeV2:     b[7] >> 2 & 3,
		TypeV1:     b[7] & 3,
	}
}

// lengthBounds returns the smallest and largest length field allowed for a message of
// type t, or ok false for an unknown type.
func lengthBounds(t Type) (lo, hi int, ok bool) {
	switch t {
	case TypeProposal:
		return minProposalLen, MaxMessageLen, true
	case TypeAccept, TypeConfirm:
		return minAcceptLen, MaxMessageLen, true
	case TypeDecline:
		return minDeclineLen, maxDeclineLen, true
	}
	return 0, 0, false
}

// IsHeaderPrefix reports whether b could still be the beginning of a valid CLC
// header: an "SMCR" or "SMCD" eyecatcher, a message type from 1 to 4, a length
// within the bounds of that type (at most [MaxMessageLen]) and a version of at least
// 1. Only the first [HeaderLen] bytes of b are looked at; an empty b is a prefix.
//
// A reader that gets bytes one read at a time can stop at the first byte that proves
// the stream is not CLC, instead of blocking until 8 bytes arrive: a peer that
// advertised SMC in the TCP handshake and then sends plain application data is
// recognised as soon as its first byte differs from 0xE2.
func IsHeaderPrefix(b []byte) bool {
	if len(b) > HeaderLen {
		b = b[:HeaderLen]
	}
	var ec [4]byte
	binary.BigEndian.PutUint32(ec[:], uint32(EyecatcherSMCR))
	for i := 0; i < len(b) && i < 3; i++ { // "SMCR" and "SMCD" share their first three bytes
		if b[i] != ec[i] {
			return false
		}
	}
	if len(b) > 3 && b[3] != byte(EyecatcherSMCR&0xff) && b[3] != byte(EyecatcherSMCD&0xff) {
		return false
	}
	if len(b) <= 4 {
		return true
	}
	lo, hi, ok := lengthBounds(Type(b[4]))
	if !ok {
		return false
	}
	if len(b) == 6 { // only the high byte of the length is known
		return int(b[5]) >= lo>>8 && int(b[5]) <= hi>>8
	}
	if len(b) > 6 {
		if n := int(binary.BigEndian.Uint16(b[5:])); n < lo || n > hi {
			return false
		}
	}
	if len(b) > 7 && b[7]>>4 < Version1 {
		return false
	}
	return true
}

// appendTrailer appends the 4-byte trailer.
func appendTrailer(b []byte, e Eyecatcher) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(e))
}

// checkFrame checks what every message shares: b holds exactly one message of type
// t whose length field equals len(b), with valid eyecatchers in header and trailer.
// It returns the decoded header.
func checkFrame(b []byte, t Type) (Header, error) {
	if len(b) < HeaderLen+TrailerLen {
		return Header{}, perr(t, CodeCnfErr, "%d bytes, shorter than header and trailer", len(b))
	}
	h := decodeHeader(b)
	if !h.Eyecatcher.valid() {
		return h, &ParseError{Type: t, Code: CodePeerNoSMC, Msg: fmt.Sprintf("bad eyecatcher %v", h.Eyecatcher), Err: ErrNotCLC}
	}
	if h.Type != t {
		return h, perr(t, CodeCnfErr, "message type is %v", h.Type)
	}
	if int(h.Length) != len(b) {
		return h, perr(t, CodeCnfErr, "length field %d, message has %d bytes", h.Length, len(b))
	}
	if h.Version < Version1 {
		return h, perr(t, CodeCnfErr, "version %d", h.Version)
	}
	if tr := Eyecatcher(binary.BigEndian.Uint32(b[len(b)-TrailerLen:])); !tr.valid() {
		return h, perr(t, CodeCnfErr, "bad trailer %v", tr)
	}
	return h, nil
}

// trailer returns the trailer eyecatcher of a message checked by checkFrame.
func trailer(b []byte) Eyecatcher {
	return Eyecatcher(binary.BigEndian.Uint32(b[len(b)-TrailerLen:]))
}
