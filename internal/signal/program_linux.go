package signal

import (
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// Bits of the per-socket word in the marks map. Go sets markMarked; the program sets
// the others, once, in the socket's ESTABLISHED callback (resultDone) or when it
// writes the option into a SYN (resultSent, client side).
const (
	markMarked     = 1 << 0 // Go: this socket offers SMC
	resultSent     = 1 << 1 // our SYN / SYN-ACK carried the option
	resultReceived = 1 << 2 // the peer's SYN-ACK / SYN carried it
	resultDone     = 1 << 3 // the ESTABLISHED callback ran: the result is final
	resultUnknown  = 1 << 4 // server: the child exists before its SYN-ACK (Fast Open)
)

// Indexes into the counters map. Each is a 64-bit count of events since the program
// was loaded; see [Stats].
const (
	ctrSentSYN        = iota // option written into a SYN
	ctrSentSYNACK            // option written into a SYN-ACK
	ctrReceivedSYNACK        // a marked client's SYN-ACK carried it
	ctrReceivedSYN           // a marked listener's SYN carried it
	ctrCookie                // a marked listener answered an SMC SYN with a SYN cookie (not echoed)
	ctrPeerUnknown           // a marked listener's child was created by Fast Open
	ctrErrReserve            // bpf_reserve_hdr_opt failed (-ENOSPC: option space full)
	ctrErrStore              // bpf_store_hdr_opt failed
	ctrErrRecord             // SYN-ACK record table full: not echoed
	ctrErrSaveSYN            // TCP_SAVE_SYN failed on a marked listener: Result cannot tag its plain children
	ctrErrLoad               // bpf_load_hdr_opt failed other than "not found"
	ctrCachePoisoned         // a closing socket could not empty its results slot
	ctrErrResult             // a server child's result could be stored nowhere
	numCounters
)

// counterNames names the counters map entries for [Stats] and smc probe.
var counterNames = [numCounters]string{
	"sent_syn", "sent_synack", "received_synack", "received_syn", "syncookie_not_echoed",
	"peer_unknown", "err_reserve", "err_store", "err_record", "err_save_syn", "err_load",
	"cache_poisoned", "err_result",
}

// Linux UAPI values (include/uapi/linux/bpf.h, include/uapi/linux/tcp.h).
const (
	opTCPConnect         = 3  // BPF_SOCK_OPS_TCP_CONNECT_CB
	opActiveEstablished  = 4  // BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB
	opPassiveEstablished = 5  // BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB
	opTCPListen          = 11 // BPF_SOCK_OPS_TCP_LISTEN_CB
	opHdrOptLen          = 14 // BPF_SOCK_OPS_HDR_OPT_LEN_CB
	opWriteHdrOpt        = 15 // BPF_SOCK_OPS_WRITE_HDR_OPT_CB

	cbFlagWriteHdrOpt    = 1 << 6 // BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG
	writeHdrSYNACKCookie = 2      // BPF_WRITE_HDR_TCP_SYNACK_COOKIE, in args[0]
	loadHdrOptTCPSYN     = 1      // BPF_LOAD_HDR_OPT_TCP_SYN
	solTCP               = 6
	tcpSaveSYN           = 27 // TCP_SAVE_SYN: the tag of a marked listener's children

	tcpFlagSYN = 0x02
	tcpFlagACK = 0x10

	errnoENOENT = 2
	errnoENOMSG = 42

	mapFNoPrealloc  = 1       // BPF_F_NO_PREALLOC
	mapFMmapable    = 1 << 10 // BPF_F_MMAPABLE
	skStorageCreate = 1       // BPF_SK_STORAGE_GET_F_CREATE

	opState       = 10     // BPF_SOCK_OPS_STATE_CB
	cbFlagState   = 1 << 2 // BPF_SOCK_OPS_STATE_CB_FLAG
	tcpStateClose = 7      // TCP_CLOSE
	afINET6       = 10
	ctxArgs1      = 8
	ctxFamily     = 20
	ctxRemoteIP4  = 24
	ctxLocalIP4   = 28
	ctxRemoteIP6  = 32
	ctxLocalIP6   = 48
	ctxRemotePort = 64 // network byte order, in the upper 16 bits
	ctxLocalPort  = 68 // host byte order
)

// The results map is a cache of final mark words that Go reads from shared memory
// without a system call (see results_linux.go). Slot 0 is a header; connection
// slots are 1..slotCount. A slot, 64 bytes:
//
//	0  seq    u32: even when stable; a writer claims it odd with compare-and-swap
//	4  flags  u32: the socket's final mark word (header: non-zero = poisoned)
//	8  netns  u64: network namespace cookie
//	16 ports  u32: local port << 16 | remote port, host order; 0 = empty
//	20 live   u32: sockets published in this slot and not yet closed
//	24 remote [16]byte: IPv6 or IPv4-mapped address
//	40 local  [16]byte
const (
	slotBits  = 14
	slotCount = 1 << slotBits
	slotSize  = 64
	slotHash  = 0x9E3779B9 // Fibonacci hashing multiplier, 2^32/φ

	claimTries = 64

	slotSeq    = 0
	slotFlags  = 4
	slotNetns  = 8
	slotPorts  = 16
	slotLive   = 20
	slotRemote = 24
	slotLocal  = 40

	// The header slot: 4 flags (non-zero = poisoned), 8 layout version (see
	// cacheLayout), 12 the sum of every slot's live count, so that Go can tell
	// "no recorded socket anywhere" from the header alone; 16 the time
	// (bpf_ktime_get_ns) of the latest SYN-ACK record, so that a child finds
	// without a lookup that no record can be its own (0: none yet).
	slotHdrLive   = 12
	slotHdrRecord = 16
)

// Offsets in struct bpf_sock_ops (checked against kernel BTF by TestContextLayout).
const (
	ctxOp         = 0
	ctxArgs0      = 4
	ctxCbFlags    = 84
	ctxSk         = 184
	ctxSkbTCPFlag = 212
)

// Stack layout of the program, relative to the frame pointer R10.
const (
	stkScratch = -8  // u32: a map index
	stkOption  = -16 // 6 bytes: the SMC option, written or used as a search key
	stkKey     = -32 // recordKeySize bytes: a SYN-ACK record key (and 4 more: a children-map value)
	stkRecord  = -48 // recordSize bytes: a SYN-ACK record value
)

// A SYN-ACK record is keyed by the socket cookie of the request: the SYN-ACK, its
// retransmissions (which have no SYN to read) and the child, which inherits its
// request's cookie (inet_csk_clone_lock), all find it, and cookies are never reused.
const (
	recordKeySize = 8
	recordSize    = 16 // u64 time of the first SYN-ACK, u32 decision, u32 unused
	maxRecords    = 1 << 16

	decisionEcho   = 1 // every SYN-ACK of this request carries the option
	decisionNoEcho = 2 // none does
)

// The option as little-endian words: FE 06 E2 D4 | C3 D9.
const (
	optionWord0 = 0xD4E206FE
	optionWord1 = 0xD9C3
)

// Map names, as pinned in a prepared cgroup's directory.
const (
	mapMarks    = "marks"
	mapRecords  = "synacks"
	mapCounters = "counters"
	mapResults  = "results"
	mapChildren = "children"
	progName    = "smc_sockops"
)

// maxChildren bounds the children map: server children of marked listeners alive at
// once beyond it get socket storage instead (slower, as exact). A variable only so
// that a test can fill the map.
var maxChildren uint32 = 1 << 15

// collectionSpec returns the maps and the sock_ops program. The program, callback by
// callback (R6 holds the context, R7 the socket's mark word while it is needed):
//
//	TCP_CONNECT (client, before the SYN): marked → enable WRITE_HDR_OPT callbacks.
//	TCP_LISTEN: marked → TCP_SAVE_SYN, then enable WRITE_HDR_OPT callbacks (children
//	  inherit both: the flag is how a child knows its listener was marked, and
//	  TCP_SAVE_SYN how Result knows it; no saved SYN is ever read).
//	HDR_OPT_LEN / WRITE_HDR_OPT, SYN of a marked socket: reserve 6 bytes, write the
//	  option, set resultSent.
//	HDR_OPT_LEN, SYN-ACK: only for a non-cookie SYN-ACK whose SYN carried the option,
//	  or a retransmission (which has no SYN to read) of a request with a record. The
//	  first SYN-ACK of a request decides and records the decision in the synacks map
//	  under the request's socket cookie, after stamping the record's time in the
//	  results header: echo only if space was reserved AND the record was stored;
//	  retransmitted SYN-ACKs follow the record.
//	WRITE_HDR_OPT, SYN-ACK: write the option only when the record says echo.
//	ACTIVE_ESTABLISHED (marked client): received = the SYN-ACK carries the option;
//	  set resultDone, disable WRITE_HDR_OPT callbacks.
//	PASSIVE_ESTABLISHED (child with the inherited WRITE_HDR_OPT flag): the child's
//	  socket cookie is its request's, so its record, if any, is synacks[cookie]. With
//	  no record (a plain client; known without a lookup while the header's record
//	  time is 0 or older than recordMaxAge) it only disables the WRITE_HDR_OPT
//	  callbacks: nothing is stored, and "no record" is the answer. Otherwise received
//	  is set (a Fast Open child, whose SYN-ACK is not sent yet, gets resultUnknown
//	  instead); sent = the record says echo; delete the record; store the word in
//	  the children map under the socket cookie, or, if that fails, in the child's
//	  socket storage, created now; publish it in the results cache; trade
//	  WRITE_HDR_OPT for STATE callbacks. STATE at TCP_CLOSE deletes the children
//	  entry and releases the results slot.
func collectionSpec() *ebpf.CollectionSpec {
	u32 := &btf.Int{Name: "__u32", Size: 4}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			mapMarks: {
				Name: "smc_marks", Type: ebpf.SkStorage, KeySize: 4, ValueSize: 4,
				Flags: mapFNoPrealloc,
				Key:   &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}, Value: u32,
			},
			// Preallocated: an insert and a delete per child cost no allocation,
			// unlike socket storage cloned into every child.
			mapChildren: {
				Name: "smc_children", Type: ebpf.Hash, KeySize: 8, ValueSize: 4,
				MaxEntries: maxChildren,
			},
			mapRecords: {
				Name: "smc_synacks", Type: ebpf.Hash, KeySize: recordKeySize, ValueSize: recordSize,
				MaxEntries: maxRecords, Flags: mapFNoPrealloc,
			},
			mapCounters: {
				Name: "smc_counters", Type: ebpf.Array, KeySize: 4, ValueSize: 8,
				MaxEntries: numCounters,
			},
			mapResults: {
				Name: "smc_results", Type: ebpf.Array, KeySize: 4, ValueSize: slotSize,
				MaxEntries: slotCount + 1, Flags: mapFMmapable,
			},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			progName: {
				Name:         progName,
				Type:         ebpf.SockOps,
				AttachType:   ebpf.AttachCGroupSockOps,
				License:      "Dual MIT/GPL",
				Instructions: program(),
			},
		},
	}
}

// builder accumulates instructions and makes unique labels.
type builder struct {
	insns asm.Instructions
	n     int
}

func (b *builder) emit(ins ...asm.Instruction) { b.insns = append(b.insns, ins...) }

func (b *builder) label(prefix string) string {
	b.n++
	return prefix + "_" + strconv.Itoa(b.n)
}

// count emits counters[idx] += 1. It clobbers R0-R5.
func (b *builder) count(idx int32) {
	skip := b.label("count")
	b.emit(
		asm.StoreImm(asm.RFP, stkScratch, int64(idx), asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapCounters),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkScratch),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, skip),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(skip),
	)
}

// markWord emits R7 = the socket's mark word pointer, jumping to out when the socket
// has no storage or is not marked; R8 = the word.
func (b *builder) markWord(out string) {
	marked := b.label("marked")
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxSk, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, out),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapMarks),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnSkStorageGet.Call(),
		asm.JEq.Imm(asm.R0, 0, out),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R8, asm.R7, 0, asm.Word),
		asm.JSet.Imm(asm.R8, markMarked, marked),
		asm.Ja.Label(out),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(marked),
	)
}

// setCbFlags emits bpf_sock_ops_cb_flags_set(ctx, (flags | set) &^ clear).
func (b *builder) setCbFlags(set, clear int32) {
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxCbFlags, asm.Word),
		asm.Or.Imm(asm.R2, set),
		asm.And.Imm(asm.R2, ^clear),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnSockOpsCbFlagsSet.Call(),
	)
}

// putOption emits the 6 option bytes at stkOption.
func (b *builder) putOption() {
	b.emit(
		asm.StoreImm(asm.RFP, stkOption, optionWord0, asm.Word),
		asm.StoreImm(asm.RFP, stkOption+4, optionWord1, asm.Half),
	)
}

// loadOption emits R0 = bpf_load_hdr_opt(ctx, option, 6, flags): 6 when the packet
// (or the SYN, with loadHdrOptTCPSYN) carries the option, -ENOMSG when it does not.
func (b *builder) loadOption(flags int32) {
	b.putOption()
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkOption),
		asm.Mov.Imm(asm.R3, 6),
		asm.Mov.Imm(asm.R4, flags),
		asm.FnLoadHdrOpt.Call(),
	)
}

// recordKey emits the SYN-ACK record key at stkKey: the socket cookie of the
// request (or of the child, which is the same). It clobbers R0-R5.
func (b *builder) recordKey() {
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stkKey, asm.R0, asm.DWord),
	)
}

// lookupRecord emits R0 = synacks[key] (or NULL).
func (b *builder) lookupRecord() {
	b.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapRecords),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey),
		asm.FnMapLookupElem.Call(),
	)
}

// slotPorts emits R2 = local port << 16 | remote port (host order), and R3, R4 = the
// last 32-bit words of the remote and local addresses (the IPv4 address for IPv4 and
// IPv4-mapped sockets).
func (b *builder) slotKeyWords() {
	v6, done := b.label("v6"), b.label("words")
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxLocalPort, asm.Word),
		asm.LSh.Imm(asm.R2, 16),
		asm.LoadMem(asm.R3, asm.R6, ctxRemotePort, asm.Word),
		asm.RSh.Imm(asm.R3, 16),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.Or.Reg(asm.R2, asm.R3),
		asm.LoadMem(asm.R1, asm.R6, ctxFamily, asm.Word),
		asm.JEq.Imm(asm.R1, afINET6, v6),
		asm.LoadMem(asm.R3, asm.R6, ctxRemoteIP4, asm.Word),
		asm.LoadMem(asm.R4, asm.R6, ctxLocalIP4, asm.Word),
		asm.Ja.Label(done),
		asm.LoadMem(asm.R3, asm.R6, ctxRemoteIP6+12, asm.Word).WithSymbol(v6),
		asm.LoadMem(asm.R4, asm.R6, ctxLocalIP6+12, asm.Word),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(done),
	)
}

// slotLookup emits R9 = this socket's results slot, jumping to fail if the lookup
// fails; the socket's ports word is left at stkScratch-4.
func (b *builder) slotLookup(fail string) {
	b.slotKeyWords()
	b.emit(
		asm.StoreMem(asm.RFP, stkScratch-4, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R5, asm.R2),
		asm.Xor.Reg(asm.R5, asm.R3),
		asm.Xor.Reg(asm.R5, asm.R4),
		asm.Mul.Imm32(asm.R5, slotHash-1<<32), // slotHash as an int32 immediate
		asm.RSh.Imm32(asm.R5, 32-slotBits),
		asm.Add.Imm32(asm.R5, 1),
		asm.StoreMem(asm.RFP, stkScratch, asm.R5, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapResults),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkScratch),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, fail),
		asm.Mov.Reg(asm.R9, asm.R0),
	)
}

// claimSlot emits the writer side of the slot's sequence lock: up to claimTries
// attempts to move an even sequence to odd with compare-and-swap (another CPU holds
// a slot for a few dozen instructions), jumping to fail if none succeeds.
func (b *builder) claimSlot(fail string) {
	retry, again, claimed := b.label("claim"), b.label("claim_again"), b.label("claimed")
	b.emit(
		asm.Mov.Imm(asm.R4, claimTries),
		asm.LoadMem(asm.R1, asm.R9, slotSeq, asm.Word).WithSymbol(retry),
		asm.JSet.Imm(asm.R1, 1, again),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Add.Imm(asm.R2, 1),
		asm.CmpXchg.Mem(asm.R9, asm.R2, asm.Word, slotSeq),
		asm.JEq.Reg(asm.R0, asm.R1, claimed),
		asm.Sub.Imm(asm.R4, 1).WithSymbol(again),
		asm.JNE.Imm(asm.R4, 0, retry),
		asm.Ja.Label(fail),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(claimed),
	)
}

// headerLookup emits R0 = the results cache's header slot, jumping to miss if the
// lookup fails. It clobbers R0-R5 and the stack word at stkScratch.
func (b *builder) headerLookup(miss string) {
	b.emit(
		asm.StoreImm(asm.RFP, stkScratch, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapResults),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkScratch),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, miss),
	)
}

// headerLive emits adding delta (1 or -1) to the header's total live count,
// jumping to fail if the header cannot be looked up. It clobbers R0-R5 and the
// stack word at stkScratch.
func (b *builder) headerLive(delta int32, fail string) {
	b.headerLookup(fail)
	b.emit(
		asm.Mov.Imm(asm.R1, delta),
		asm.FetchAdd.Mem(asm.R0, asm.R1, asm.Word, slotHdrLive),
	)
}

// poison emits the poisoning of the whole results cache: Go then asks the kernel for
// every result. It clobbers R0-R5.
func (b *builder) poison() {
	skip := b.label("poison")
	b.headerLookup(skip)
	b.emit(
		asm.StoreImm(asm.R0, slotFlags, 1, asm.Word),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(skip),
	)
	b.count(ctrCachePoisoned)
}

// writeSlot emits the publication of R8, the socket's final mark word, in its
// results slot, and counts the socket in the slot's live count until it closes.
// A slot that cannot be claimed poisons the cache: Go reads "no live socket in
// this slot" as "no record" for an accepted socket, so no publication may be lost.
func (b *builder) writeSlot() {
	fail, skip, v6, addrs := b.label("slot_fail"), b.label("slot_skip"), b.label("slot_v6"), b.label("slot_release")
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetNetnsCookie.Call(),
		asm.StoreMem(asm.RFP, stkRecord, asm.R0, asm.DWord),
	)
	b.slotLookup(fail)
	b.claimSlot(fail)
	b.emit(
		asm.LoadMem(asm.R1, asm.R9, slotLive, asm.Word),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R9, slotLive, asm.R1, asm.Word),
		asm.StoreMem(asm.R9, slotFlags, asm.R8, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, stkRecord, asm.DWord),
		asm.StoreMem(asm.R9, slotNetns, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.RFP, stkScratch-4, asm.Word),
		asm.StoreMem(asm.R9, slotPorts, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, ctxFamily, asm.Word),
		asm.JEq.Imm(asm.R1, afINET6, v6),
		// IPv4: store as IPv4-mapped IPv6 (::ffff:a.b.c.d).
		asm.StoreImm(asm.R9, slotRemote, 0, asm.Word),
		asm.StoreImm(asm.R9, slotRemote+4, 0, asm.Word),
		asm.StoreImm(asm.R9, slotRemote+8, -0x10000, asm.Word), // 00 00 ff ff
		asm.LoadMem(asm.R1, asm.R6, ctxRemoteIP4, asm.Word),
		asm.StoreMem(asm.R9, slotRemote+12, asm.R1, asm.Word),
		asm.StoreImm(asm.R9, slotLocal, 0, asm.Word),
		asm.StoreImm(asm.R9, slotLocal+4, 0, asm.Word),
		asm.StoreImm(asm.R9, slotLocal+8, -0x10000, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, ctxLocalIP4, asm.Word),
		asm.StoreMem(asm.R9, slotLocal+12, asm.R1, asm.Word),
		asm.Ja.Label(addrs),
	)
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol(v6))
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R1, asm.R6, ctxRemoteIP6+i, asm.Word),
			asm.StoreMem(asm.R9, slotRemote+i, asm.R1, asm.Word),
			asm.LoadMem(asm.R1, asm.R6, ctxLocalIP6+i, asm.Word),
			asm.StoreMem(asm.R9, slotLocal+i, asm.R1, asm.Word),
		)
	}
	b.emit(
		asm.Mov.Imm(asm.R1, 1).WithSymbol(addrs),
		asm.FetchAdd.Mem(asm.R9, asm.R1, asm.Word, slotSeq),
	)
	b.headerLive(1, fail)
	b.emit(
		asm.Ja.Label(skip),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(fail),
	)
	b.poison()
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol(skip))
}

// program returns the sock_ops program described at collectionSpec.
func program() asm.Instructions {
	b := &builder{}
	b.emit(
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, ctxOp, asm.Word),
		asm.JEq.Imm(asm.R2, opHdrOptLen, "hdr_len"),
		asm.JEq.Imm(asm.R2, opWriteHdrOpt, "write_hdr"),
		asm.JEq.Imm(asm.R2, opActiveEstablished, "active_est"),
		asm.JEq.Imm(asm.R2, opPassiveEstablished, "passive_est"),
		asm.JEq.Imm(asm.R2, opTCPConnect, "connect"),
		asm.JEq.Imm(asm.R2, opTCPListen, "listen"),
		asm.JEq.Imm(asm.R2, opState, "state"),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("ok"),
		asm.Return(),
	)

	// TCP_CONNECT: a marked client asks for WRITE_HDR_OPT callbacks; a result of an
	// earlier attempt on this socket is forgotten.
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("connect"))
	b.markWord("ok")
	b.emit(
		asm.StoreImm(asm.R7, 0, markMarked, asm.Word),
	)
	b.setCbFlags(cbFlagWriteHdrOpt, 0)
	b.emit(asm.Ja.Label("ok"))

	// TCP_LISTEN: a marked listener asks for WRITE_HDR_OPT callbacks and sets
	// TCP_SAVE_SYN, which its children inherit: the tag by which Result tells a
	// plain child from a socket never marked (nothing reads the saved SYNs).
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("listen"))
	b.markWord("ok")
	b.emit(
		asm.StoreImm(asm.RFP, stkScratch, 1, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, solTCP),
		asm.Mov.Imm(asm.R3, tcpSaveSYN),
		asm.Mov.Reg(asm.R4, asm.RFP),
		asm.Add.Imm(asm.R4, stkScratch),
		asm.Mov.Imm(asm.R5, 4),
		asm.FnSetsockopt.Call(),
		asm.JEq.Imm(asm.R0, 0, "listen_tagged"),
	)
	b.count(ctrErrSaveSYN)
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("listen_tagged"))
	b.setCbFlags(cbFlagWriteHdrOpt, 0)
	b.emit(asm.Ja.Label("ok"))

	// HDR_OPT_LEN: reserve space in a SYN or a SYN-ACK, nothing else.
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxSkbTCPFlag, asm.Word).WithSymbol("hdr_len"),
		asm.JSet.Imm(asm.R2, tcpFlagSYN, "hdr_len_syn"),
		asm.Ja.Label("ok"),
		asm.JSet.Imm(asm.R2, tcpFlagACK, "synack_len").WithSymbol("hdr_len_syn"),
	)
	b.markWord("ok")
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 6),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnReserveHdrOpt.Call(),
		asm.JEq.Imm(asm.R0, 0, "ok"),
	)
	b.count(ctrErrReserve)
	b.emit(asm.Ja.Label("ok"))

	// WRITE_HDR_OPT: the option into a marked client's SYN or a recorded SYN-ACK.
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxSkbTCPFlag, asm.Word).WithSymbol("write_hdr"),
		asm.JSet.Imm(asm.R2, tcpFlagSYN, "write_hdr_syn"),
		asm.Ja.Label("ok"),
		asm.JSet.Imm(asm.R2, tcpFlagACK, "synack_write").WithSymbol("write_hdr_syn"),
	)
	b.markWord("ok")
	b.putOption()
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkOption),
		asm.Mov.Imm(asm.R3, 6),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnStoreHdrOpt.Call(),
		asm.JEq.Imm(asm.R0, 0, "syn_written"),
	)
	b.count(ctrErrStore)
	b.emit(asm.Ja.Label("ok"))
	b.emit(
		asm.LoadMem(asm.R8, asm.R7, 0, asm.Word).WithSymbol("syn_written"),
		asm.Or.Imm(asm.R8, resultSent),
		asm.StoreMem(asm.R7, 0, asm.R8, asm.Word),
	)
	b.count(ctrSentSYN)
	b.emit(asm.Ja.Label("ok"))

	// HDR_OPT_LEN of a SYN-ACK (R6 = ctx; the socket is the request, no storage).
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxArgs0, asm.Word).WithSymbol("synack_len"),
		asm.JEq.Imm(asm.R2, writeHdrSYNACKCookie, "synack_len_cookie"),
	)
	// The first SYN-ACK has the SYN at hand; a retransmission has none (nothing is
	// saved) and follows the record, if any.
	b.loadOption(loadHdrOptTCPSYN)
	b.emit(
		asm.JEq.Imm(asm.R0, 6, "synack_len_smc"),
		asm.JNE.Imm(asm.R0, -errnoENOENT, "ok"),
	)
	b.recordKey()
	b.lookupRecord()
	b.emit(
		asm.JNE.Imm(asm.R0, 0, "synack_len_follow"),
		asm.Ja.Label("ok"),
	)
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("synack_len_smc"))
	b.recordKey()
	b.lookupRecord()
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "synack_len_first"),
		// A retransmitted SYN-ACK follows the first one's decision.
		asm.LoadMem(asm.R2, asm.R0, 8, asm.Word).WithSymbol("synack_len_follow"),
		asm.JNE.Imm(asm.R2, decisionEcho, "ok"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 6),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnReserveHdrOpt.Call(),
		asm.JEq.Imm(asm.R0, 0, "ok"),
	)
	b.count(ctrErrReserve)
	b.emit(asm.Ja.Label("ok"))
	// First SYN-ACK of this request: reserve, then record; echo needs both.
	b.emit(
		asm.FnKtimeGetNs.Call().WithSymbol("synack_len_first"),
		asm.StoreMem(asm.RFP, stkRecord, asm.R0, asm.DWord),
		asm.StoreImm(asm.RFP, stkRecord+12, 0, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 6),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnReserveHdrOpt.Call(),
		asm.Mov.Imm(asm.R9, decisionEcho),
		asm.JEq.Imm(asm.R0, 0, "synack_len_record"),
		asm.Mov.Imm(asm.R9, decisionNoEcho),
	)
	b.count(ctrErrReserve)
	// The header learns the record's time before the record exists, so that a
	// child that finds the time too old knows no record can be its own.
	b.emit(asm.StoreMem(asm.RFP, stkRecord+8, asm.R9, asm.Word).WithSymbol("synack_len_record"))
	b.headerLookup("synack_len_nokey")
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, stkRecord, asm.DWord),
		asm.StoreMem(asm.R0, slotHdrRecord, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapRecords),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stkRecord),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "ok"),
	)
	// Not recorded: the reserved space stays NOPs, WRITE finds no record.
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("synack_len_nokey"))
	b.count(ctrErrRecord)
	b.emit(asm.Ja.Label("ok"))
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("synack_len_cookie"))
	b.loadOption(loadHdrOptTCPSYN)
	b.emit(asm.JNE.Imm(asm.R0, 6, "ok"))
	b.count(ctrCookie)
	b.emit(asm.Ja.Label("ok"))

	// WRITE_HDR_OPT of a SYN-ACK: write only what the record says.
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxArgs0, asm.Word).WithSymbol("synack_write"),
		asm.JEq.Imm(asm.R2, writeHdrSYNACKCookie, "ok"),
	)
	b.recordKey()
	b.lookupRecord()
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "ok"),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R2, asm.R9, 8, asm.Word),
		asm.JNE.Imm(asm.R2, decisionEcho, "ok"),
	)
	b.putOption()
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkOption),
		asm.Mov.Imm(asm.R3, 6),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnStoreHdrOpt.Call(),
		asm.JEq.Imm(asm.R0, 0, "synack_written"),
		// Not written: from now on this request never echoes, and its child
		// reports "not sent".
		asm.StoreImm(asm.R9, 8, decisionNoEcho, asm.Word),
	)
	b.count(ctrErrStore)
	b.emit(asm.Ja.Label("ok"))
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("synack_written"))
	b.count(ctrSentSYNACK)
	b.emit(asm.Ja.Label("ok"))

	// ACTIVE_ESTABLISHED: the socket's skb is the peer's SYN-ACK.
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("active_est"))
	b.markWord("ok")
	b.loadOption(0)
	b.emit(
		asm.LoadMem(asm.R8, asm.R7, 0, asm.Word),
		asm.Or.Imm(asm.R8, resultDone),
		asm.JEq.Imm(asm.R0, 6, "active_received"),
		asm.JEq.Imm(asm.R0, -errnoENOMSG, "active_store"),
	)
	b.count(ctrErrLoad)
	b.emit(asm.Ja.Label("active_store"))
	b.emit(asm.Or.Imm(asm.R8, resultReceived).WithSymbol("active_received"))
	b.count(ctrReceivedSYNACK)
	b.emit(asm.StoreMem(asm.R7, 0, asm.R8, asm.Word).WithSymbol("active_store"))
	b.writeSlot()
	b.setCbFlags(cbFlagState, cbFlagWriteHdrOpt)
	b.emit(asm.Ja.Label("ok"))

	// PASSIVE_ESTABLISHED: a child of a marked listener, recognised by the
	// WRITE_HDR_OPT flag it inherited (only marked listeners have it; the child has
	// no storage: cloning it into every child would cost an allocation and an RCU
	// free per connection, plain clients included).
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxCbFlags, asm.Word).WithSymbol("passive_est"),
		asm.JSet.Imm(asm.R2, cbFlagWriteHdrOpt, "passive_child"),
		asm.Ja.Label("ok"),
		asm.Mov.Imm(asm.R9, resultDone).WithSymbol("passive_child"),
		// Fast Open: the SYN-ACK has not been sent yet; this side cannot know.
		asm.LoadMem(asm.R2, asm.R6, ctxSkbTCPFlag, asm.Word),
		asm.JSet.Imm(asm.R2, tcpFlagSYN, "passive_unknown"),
	)
	// A record exists only for a client whose SYN carried the option, made by a
	// SYN-ACK of this child's request, which lives far less than recordMaxAge.
	// While the header's record time is older than that, or no record was ever
	// made, the child is a plain client, known without a lookup. The difference is
	// signed: another request may have stamped a later time since this ktime.
	b.headerLookup("passive_plain")
	b.emit(
		asm.LoadMem(asm.R7, asm.R0, slotHdrRecord, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "passive_plain"),
		asm.FnKtimeGetNs.Call(),
		asm.Sub.Reg(asm.R0, asm.R7),
		asm.LoadImm(asm.R1, int64(recordMaxAge), asm.DWord),
		asm.JSGT.Reg(asm.R0, asm.R1, "passive_plain"),
	)
	b.recordKey()
	b.lookupRecord()
	b.emit(
		asm.JEq.Imm(asm.R0, 0, "passive_plain"),
		asm.Or.Imm(asm.R9, resultReceived),
		asm.LoadMem(asm.R2, asm.R0, 8, asm.Word),
		asm.JNE.Imm(asm.R2, decisionEcho, "passive_delete"),
		asm.Or.Imm(asm.R9, resultSent),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapRecords).WithSymbol("passive_delete"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey),
		asm.FnMapDeleteElem.Call(),
	)
	b.count(ctrReceivedSYN)
	b.emit(asm.Ja.Label("passive_store"))
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("passive_unknown"))
	b.count(ctrPeerUnknown)
	b.emit(asm.Or.Imm(asm.R9, resultUnknown))
	b.recordKey()
	b.emit(
		// Both ways here leave the socket cookie at stkKey.
		asm.Mov.Reg(asm.R8, asm.R9).WithSymbol("passive_store"),
		asm.Or.Imm(asm.R8, markMarked),
		// The word goes into the children map under the socket cookie...
		asm.StoreMem(asm.RFP, stkKey+8, asm.R8, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapChildren),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stkKey+8),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "passive_stored"),
		// ...or, when the map is full, into socket storage created for the child.
		asm.LoadMem(asm.R2, asm.R6, ctxSk, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "passive_lost"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapMarks),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, skStorageCreate),
		asm.FnSkStorageGet.Call(),
		asm.JEq.Imm(asm.R0, 0, "passive_lost"),
		asm.StoreMem(asm.R0, 0, asm.R8, asm.Word),
		asm.Ja.Label("passive_stored"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("passive_lost"),
	)
	b.count(ctrErrResult)
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("passive_stored"))
	b.writeSlot()
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxSkbTCPFlag, asm.Word),
		asm.JSet.Imm(asm.R2, tcpFlagSYN, "passive_fastopen"),
	)
	b.setCbFlags(cbFlagState, cbFlagWriteHdrOpt)
	b.emit(asm.Ja.Label("ok"))
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("passive_fastopen"))
	b.setCbFlags(cbFlagState, 0)
	b.emit(asm.Ja.Label("ok"))
	// A plain client (no record: its SYN had no option): nothing to record, nothing
	// to undo at close. Go reads the absence of a record, after accept, as "plain".
	b.emit(asm.Mov.Imm(asm.R0, 0).WithSymbol("passive_plain"))
	b.setCbFlags(0, cbFlagWriteHdrOpt)
	b.emit(asm.Ja.Label("ok"))

	// STATE: a marked, established socket closes; its slot, if it still holds this
	// socket's ports, is emptied so that no later connection with the same 4-tuple can
	// read it. A slot that cannot be claimed poisons the cache: Go then always asks
	// the kernel.
	b.emit(
		asm.LoadMem(asm.R2, asm.R6, ctxArgs1, asm.Word).WithSymbol("state"),
		asm.JNE.Imm(asm.R2, tcpStateClose, "ok"),
		// Once per publication: a socket that is closed again (from TCP_CLOSE) has
		// been released already.
		asm.LoadMem(asm.R2, asm.R6, ctxArgs0, asm.Word),
		asm.JEq.Imm(asm.R2, tcpStateClose, "ok"),
		// A server child's entry in the children map goes with it. Sockets with
		// storage (clients, children stored there) have no entry.
		asm.LoadMem(asm.R2, asm.R6, ctxSk, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "state_slot"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapMarks),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnSkStorageGet.Call(),
		asm.JNE.Imm(asm.R0, 0, "state_slot"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stkKey, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapChildren),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey),
		asm.FnMapDeleteElem.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("state_slot"),
	)
	b.slotLookup("state_poison")
	b.claimSlot("state_poison")
	b.emit(
		asm.LoadMem(asm.R1, asm.R9, slotLive, asm.Word),
		asm.JEq.Imm(asm.R1, 0, "state_ports"),
		asm.Sub.Imm(asm.R1, 1),
		asm.StoreMem(asm.R9, slotLive, asm.R1, asm.Word),
	)
	// The header's total follows the slot's count, decrement for decrement (a
	// failed lookup leaves the slot claimed, which readers take as "ask the
	// kernel", and poisons the cache).
	b.headerLive(-1, "state_poison")
	b.emit(
		asm.LoadMem(asm.R3, asm.R9, slotPorts, asm.Word).WithSymbol("state_ports"),
		asm.LoadMem(asm.R2, asm.RFP, stkScratch-4, asm.Word), // this socket's ports
		asm.JNE.Reg(asm.R3, asm.R2, "state_release"),
		asm.StoreImm(asm.R9, slotPorts, 0, asm.Word),
		asm.Mov.Imm(asm.R1, 1).WithSymbol("state_release"),
		asm.FetchAdd.Mem(asm.R9, asm.R1, asm.Word, slotSeq),
		asm.Ja.Label("ok"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("state_poison"),
	)
	b.poison()
	b.emit(asm.Ja.Label("ok"))
	return b.insns
}
