// Package wire encodes and decodes the CLC (Connection Layer Control) messages of
// Linux SMC, byte-compatible with the kernel's net/smc, so that a kernel SMC peer
// understands them and Wireshark's SMC dissector decodes them.
//
// CLC messages travel in-band on the TCP connection right after the handshake that
// advertised SMC. Every one starts with an 8-byte [Header] and ends with a 4-byte
// trailer repeating the eyecatcher; all multi-byte fields are big-endian.
//
//	Message                      Go type         Linux smc_clc.h
//	Proposal (client → server)   Proposal        struct smc_clc_msg_proposal_area
//	Accept (server → client)     AcceptConfirm   struct smc_clc_msg_accept_confirm
//	Confirm (client → server)    AcceptConfirm   struct smc_clc_msg_accept_confirm
//	Decline (either way)         Decline         struct smc_clc_msg_decline[_v2]
//	decline / fallback reasons   Code            SMC_CLC_DECL_*
//
// Every message type has Append(b []byte) []byte, which appends its encoding, and
// Length() int, which equals len(Append(nil)). Every parser takes exactly one whole
// message and is strict: the length field must equal the bytes given, no byte may
// trail, eyecatchers must be "SMCR" or "SMCD", counts must be within Linux's limits
// and offsets must point at the parts they locate. Reserved fields are ignored
// where Linux ignores them, so encoding a parsed message gives back the input with
// reserved fields zeroed. Every failure is a [*ParseError] carrying the [Code] to
// decline with; nothing panics on any input.
//
// Only SMC-D v2 is implemented: this project offers SMC-D v2 alone (typev1 N,
// typev2 D). A Proposal offering SMC-R or SMC-D v1 still parses fully, so that the
// server can decline it with the right code; an SMC-R or v1 Accept/Confirm is
// recognised and reported as [ErrUnsupported].
//
// On a live connection, [ReadMessage] reads exactly one message, stops at the first
// byte proving the stream is not CLC ([ErrNotCLC], see [IsHeaderPrefix]) and always
// returns the bytes it consumed, so the caller can hand them to the application;
// [ReadMessageAhead] does the same in one read for a message that arrived whole, and
// returns what it read beyond the message for the caller to replay. [Parse] then decodes whichever message arrived (a Linux client without an SMC
// device sends a v1 Decline where a Proposal was expected).
//
// Sources: Linux net/smc/smc_clc.h and smc_clc.c (smc_clc_send_proposal,
// smc_clc_msg_prop_valid, smc_clc_wait_msg, smc_clc_send_decline,
// smc_clc_send_confirm_accept), and the messages Debian's Linux 6.1 sends and
// accepts (internal/kernelvm).
package wire
