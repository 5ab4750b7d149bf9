package shm

import "encoding/binary"

// Link messages. Every message is one seqpacket datagram: a type byte, 7 zero bytes,
// then a body of a fixed length per type (WAKE: a count, then that many entries), all
// little-endian (both ends are on one host). Parsing is strict: a wrong length, a
// non-zero reserved byte, an unknown type, or a descriptor on any message but SEG and
// POLL is a violation, and a violation ends the link.
const (
	msgHello     = 1 // client → server: version, link ID, client nonce
	msgAuth      = 2 // server → client: server nonce, proof_s
	msgProof     = 3 // client → server: proof_c
	msgReady     = 4 // server → client: the founding offer's slot token (0: refused)
	msgSeg       = 5 // owner → peer: a segment (memfd attached)
	msgSegAck    = 6 // peer → owner: mapped it, or refused it
	msgSegDel    = 7 // owner → peer: the segment is withdrawn
	msgSegDelAck = 8 // peer → owner: unmapped (or will be once its streams end)
	// 9 and 10 were BIND and BINDACK (link version 4): the server binds on the CLC
	// Confirm. 11 was RELEASE (link version 2), now the producer flag fReleased.
	msgWake   = 12 // either: wake the receiver's streams of these slots
	msgPoll   = 13 // either: the sender's poller page (memfd attached)
	msgCancel = 14 // server → client: a slot offered in an Accept is withdrawn, never bound
)

const (
	linkVersion  = 5 // 2: the populated window and POLL; 3: cursors and control words on lines of their own, fReleased instead of RELEASE; 4: winFinal and the producer's wrap; 5: bind on the Confirm, CANCEL instead of BIND and BINDACK
	nonceLen     = 16
	proofLen     = 32
	maxWakeBatch = 64
	msgHdrLen    = 8
	wakeEntryLen = 16
	maxMsgLen    = msgHdrLen + 8 + maxWakeBatch*wakeEntryLen
)

// msgLen returns the exact length of a message of type t, or 0 for WAKE (variable)
// and unknown types.
func msgLen(t byte) int {
	switch t {
	case msgHello:
		return msgHdrLen + 8 + nonceLen
	case msgAuth:
		return msgHdrLen + nonceLen + proofLen
	case msgProof:
		return msgHdrLen + proofLen
	case msgReady, msgSegAck, msgSegDel, msgSegDelAck, msgPoll, msgCancel:
		return msgHdrLen + 8
	case msgSeg:
		return msgHdrLen + 16
	}
	return 0
}

// msg is a message being built.
type msg []byte

func newMsg(t byte) msg {
	b := make(msg, msgHdrLen, msgHdrLen+16)
	b[0] = t
	return b
}

func (m msg) u32(v uint32) msg { return binary.LittleEndian.AppendUint32(m, v) }
func (m msg) u64(v uint64) msg { return binary.LittleEndian.AppendUint64(m, v) }
func (m msg) bytes(b []byte) msg {
	return append(m, b...)
}

// checkMsg validates a received message's framing: known type, exact length, zero
// reserved header bytes, WAKE count within bounds. It returns the body.
func checkMsg(b []byte) ([]byte, error) {
	if len(b) < msgHdrLen {
		return nil, violation("link message of %d bytes", len(b))
	}
	for _, r := range b[1:msgHdrLen] {
		if r != 0 {
			return nil, violation("link message type %d: reserved header bytes set", b[0])
		}
	}
	body := b[msgHdrLen:]
	if b[0] == msgWake {
		if len(body) < 8 {
			return nil, violation("wake message of %d bytes", len(b))
		}
		n := binary.LittleEndian.Uint32(body)
		if n == 0 || n > maxWakeBatch || binary.LittleEndian.Uint32(body[4:]) != 0 || len(body) != 8+int(n)*wakeEntryLen {
			return nil, violation("wake message of %d bytes with count %d", len(b), n)
		}
		return body, nil
	}
	want := msgLen(b[0])
	if want == 0 {
		return nil, violation("unknown link message type %d", b[0])
	}
	if len(b) != want {
		return nil, violation("link message type %d of %d bytes, want %d", b[0], len(b), want)
	}
	return body, nil
}

// idx32 reads a segment index field: a u32 that must fit 16 bits.
func idx32(b []byte) (uint16, error) {
	v := binary.LittleEndian.Uint32(b)
	if v > 0xffff {
		return 0, violation("segment index %#x", v)
	}
	return uint16(v), nil
}

// segWord reads the body of SEGACK, SEGDEL and SEGDELACK: a segment index, then a
// word of at most limit (1 for SEGACK's boolean, 0 for a reserved word).
func segWord(b []byte, limit uint32) (uint16, uint32, error) {
	idx, err := idx32(b)
	if err != nil {
		return 0, 0, err
	}
	w := binary.LittleEndian.Uint32(b[4:])
	if w > limit {
		return 0, 0, violation("segment %d message with word %#x", idx, w)
	}
	return idx, w, nil
}

func zero32(b []byte) error {
	if binary.LittleEndian.Uint32(b) != 0 {
		return violation("reserved field %#x", binary.LittleEndian.Uint32(b))
	}
	return nil
}

func u32of(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func u64of(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
