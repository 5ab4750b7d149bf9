#include "textflag.h"

// func stringMove(dst, src *byte, n int)
TEXT ·stringMove(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	REP; MOVSB
	SFENCE
	RET

// func streamDown(dst, src *byte, n int)
//
// The last 16 bytes and the first 16 are copied with ordinary unaligned stores (the
// first after everything else, from a register loaded at the start); in between, from
// the highest 16-byte aligned address of dst down, 128 bytes per round with eight loads
// before eight non-temporal stores, then 16 bytes per round. Stores that cover bytes
// already written write the same values again.
TEXT ·streamDown(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ DI, R9
	MOVOU (SI), X15
	ADDQ CX, SI
	ADDQ CX, DI
	MOVOU -16(SI), X14
	MOVOU X14, -16(DI)
	// Down to dst's aligned end; n >= 16 bytes, so this stays within dst.
	MOVQ DI, AX
	ANDQ $15, AX
	SUBQ AX, DI
	SUBQ AX, SI
	SUBQ AX, CX
blocks:
	CMPQ CX, $128
	JB tail
	MOVOU -16(SI), X0
	MOVOU -32(SI), X1
	MOVOU -48(SI), X2
	MOVOU -64(SI), X3
	MOVOU -80(SI), X4
	MOVOU -96(SI), X5
	MOVOU -112(SI), X6
	MOVOU -128(SI), X7
	MOVNTO X0, -16(DI)
	MOVNTO X1, -32(DI)
	MOVNTO X2, -48(DI)
	MOVNTO X3, -64(DI)
	MOVNTO X4, -80(DI)
	MOVNTO X5, -96(DI)
	MOVNTO X6, -112(DI)
	MOVNTO X7, -128(DI)
	SUBQ $128, SI
	SUBQ $128, DI
	SUBQ $128, CX
	JMP blocks
tail:
	CMPQ CX, $16
	JB head
	MOVOU -16(SI), X0
	MOVNTO X0, -16(DI)
	SUBQ $16, SI
	SUBQ $16, DI
	SUBQ $16, CX
	JMP tail
head:
	MOVOU X15, (R9)
	SFENCE
	RET
