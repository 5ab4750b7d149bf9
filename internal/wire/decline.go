package wire

import "encoding/binary"

// Decline lengths. Linux smc_clc.h: sizeof(struct smc_clc_msg_decline) and
// sizeof(struct smc_clc_msg_decline_v2).
const (
	declineV1Len = 28
	declineV2Len = 44
)

// OS types carried in a v2 Decline and in the first-contact extension.
// Linux smc_clc.h: SMC_CLC_OS_ZOS, SMC_CLC_OS_LINUX, SMC_CLC_OS_AIX.
const (
	OSZOS   = 1
	OSLinux = 2
	OSAIX   = 3
)

// Decline refuses SMC; both peers then keep using the TCP connection as plain TCP.
// Either side sends it, in place of any other CLC message. A Linux client with no
// usable SMC device sends a v1 Decline as its first CLC message instead of a
// Proposal.
//
// A version 1 Decline is 28 bytes; any later version is 44 bytes and carries four
// more diagnosis words. The version of a Decline matches the version of the
// Proposal it answers.
//
// Linux smc_clc.h: struct smc_clc_msg_decline, struct smc_clc_msg_decline_v2.
type Decline struct {
	// Eyecatcher and Trailer are the header and trailer eyecatchers; zero means
	// EyecatcherSMCR, which Linux always sends in a Decline.
	Eyecatcher, Trailer Eyecatcher
	// Version is the SMC version; zero means Version1.
	Version uint8
	// OutOfSync is the out-of-sync flag (the first-contact bit of the header):
	// Linux sets it with CodeSyncErr, and its receiver then terminates the link
	// group.
	OutOfSync bool
	// PeerID is the sender's system ID; Linux zeroes it for SMC-D.
	PeerID [8]byte
	// Diagnosis is the reason for declining.
	Diagnosis Code
	// OSType is the sender's OS type (4 bits): Linux sends OSLinux in a v2 Decline
	// and 0 in a v1 Decline.
	OSType uint8
	// Diagnosis2 holds the four additional diagnosis words of a v2 Decline; Linux
	// leaves them 0. They are not sent in a v1 Decline.
	Diagnosis2 [4]Code
}

func (d *Decline) version() uint8 {
	if d.Version == 0 {
		return Version1
	}
	return d.Version
}

// Length returns the encoded length of d: 28 bytes for version 1, else 44.
func (d *Decline) Length() int {
	if d.version() == Version1 {
		return declineV1Len
	}
	return declineV2Len
}

// Append appends the encoding of d to b. Reserved bits are zero; fields wider than
// their bit fields are truncated.
func (d *Decline) Append(b []byte) []byte {
	var typev2 uint8
	if d.OutOfSync {
		typev2 = firstContactBit
	}
	b = Header{Eyecatcher: d.Eyecatcher.or(EyecatcherSMCR), Type: TypeDecline,
		Length: uint16(d.Length()), Version: d.version(), TypeV2: typev2}.Append(b)
	b = append(b, d.PeerID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(d.Diagnosis))
	b = append(b, d.OSType<<4, 0, 0, 0)
	if d.version() != Version1 {
		for _, c := range d.Diagnosis2 {
			b = binary.BigEndian.AppendUint32(b, uint32(c))
		}
	}
	return appendTrailer(b, d.Trailer.or(EyecatcherSMCR))
}

// ParseDecline decodes b, which must hold exactly one Decline: the length field must
// equal len(b), which must be 28 for version 1 and 44 for any later version, and
// both eyecatchers must be valid. Reserved bits are ignored, as Linux does.
//
// Linux does not check the trailer of a Decline; this parser does.
func ParseDecline(b []byte) (*Decline, error) {
	h, err := checkFrame(b, TypeDecline)
	if err != nil {
		return nil, err
	}
	want := declineV2Len
	if h.Version == Version1 {
		want = declineV1Len
	}
	if len(b) != want {
		return nil, perr(TypeDecline, CodeCnfErr, "version %d decline of %d bytes, want %d", h.Version, len(b), want)
	}
	d := &Decline{
		Eyecatcher: h.Eyecatcher,
		Trailer:    trailer(b),
		Version:    h.Version,
		OutOfSync:  h.TypeV2&firstContactBit != 0,
		Diagnosis:  Code(binary.BigEndian.Uint32(b[16:])),
		OSType:     b[20] >> 4,
	}
	copy(d.PeerID[:], b[8:16])
	if want == declineV2Len {
		for i := range d.Diagnosis2 {
			d.Diagnosis2[i] = Code(binary.BigEndian.Uint32(b[24+4*i:]))
		}
	}
	return d, nil
}
