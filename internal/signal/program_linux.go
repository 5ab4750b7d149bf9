package signal

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Bits of the per-socket word (bpf/sockops.c). Go sets markMarked; the program sets
// the others, once, in the socket's ESTABLISHED callback (resultDone) or when it
// writes the option into a SYN (resultSent and resultConflict, client side).
const (
	markMarked     = 1 << 0 // Go: this socket offers SMC
	resultSent     = 1 << 1 // our SYN / SYN-ACK carried the option
	resultReceived = 1 << 2 // the peer's SYN-ACK / SYN carried it
	resultDone     = 1 << 3 // the ESTABLISHED callback ran: the result is final
	resultUnknown  = 1 << 4 // server: the child exists before its SYN-ACK (Fast Open)
	resultConflict = 1 << 5 // client: another program had written the option into our SYN
)

// Indexes into the counters map (bpf/sockops.c). Each is a 64-bit count of events
// since the program was loaded; see [Signaller.Stats].
const (
	ctrSentSYN        = iota // option written into a SYN
	ctrSentSYNACK            // option written into a SYN-ACK
	ctrReceivedSYNACK        // a marked client's SYN-ACK carried it
	ctrReceivedSYN           // a marked listener's child's SYN carried it
	ctrCookie                // a marked listener answered an SMC SYN with a SYN cookie (not echoed)
	ctrPeerUnknown           // a marked listener's child was created by Fast Open
	ctrErrReserve            // bpf_reserve_hdr_opt failed (-ENOSPC: option space full)
	ctrErrStore              // bpf_store_hdr_opt failed: the SYN or SYN-ACK went without the option
	ctrErrRecord             // a SYN-ACK that could not echo could not be recorded
	ctrErrSaveSYN            // TCP_SAVE_SYN failed on a marked listener: it is not announced
	ctrErrLoad               // bpf_load_hdr_opt failed other than "not found"
	ctrCachePoisoned         // a closing socket could not empty its results slot
	ctrErrResult             // a server child's result could be stored nowhere
	ctrSYNACKPresent         // a SYN-ACK already carried the option (another instance, or a foreign program)
	ctrConflictSYN           // a marked client's SYN already carried the option: a foreign program
	numCounters
)

// counterNames names the counters map entries for [Signaller.Stats] and smc probe.
var counterNames = [numCounters]string{
	"sent_syn", "sent_synack", "received_synack", "received_syn", "syncookie_not_echoed",
	"peer_unknown", "err_reserve", "err_store", "err_record", "err_save_syn", "err_load",
	"cache_poisoned", "err_result", "synack_present", "conflict_syn",
}

// The results map is a cache of final mark words that Go reads from shared memory
// without a system call (see results_linux.go). Slot 0 is a header; connection
// slots are 1..slotCount. A slot, 64 bytes (struct slot in bpf/sockops.c):
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

	slotSeq    = 0
	slotFlags  = 4
	slotNetns  = 8
	slotPorts  = 16
	slotLive   = 20
	slotRemote = 24
	slotLocal  = 40

	// The header slot (struct header): 4 flags (non-zero = poisoned), 8 layout
	// version (see cacheLayout), 12 the sum of every slot's live count, so that Go
	// can tell "no recorded socket anywhere" from the header alone; 16 the time
	// (bpf_ktime_get_ns) of the latest no-echo record (0: none yet).
	slotHdrLive   = 12
	slotHdrNoEcho = 16
)

// Names of the maps and the program in the collection (bpf/sockops.c), and of their
// pins in a prepared cgroup's directory.
const (
	progName = sockopsProgSmcSockops

	mapMarks    = sockopsMapSmcMarks
	mapChildren = sockopsMapSmcChildren
	mapNoEcho   = sockopsMapSmcNoecho
	mapCounters = sockopsMapSmcCounters
	mapResults  = sockopsMapSmcResults

	pinLink = "link"
)

// pinNames maps each map of the collection to the name of its pin.
var pinNames = map[string]string{
	mapMarks:    "marks",
	mapChildren: "children",
	mapNoEcho:   "noecho",
	mapCounters: "counters",
	mapResults:  "results",
}

// maxChildren bounds the children map: server children of marked listeners alive at
// once beyond it get socket storage instead (slower, as exact). A variable only so
// that a test can fill the map.
var maxChildren uint32 = 1 << 15

// collectionSpec returns the maps and the sock_ops program, compiled from
// bpf/sockops.c.
func collectionSpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadSockops()
	if err != nil {
		return nil, fmt.Errorf("smc: signal: %w", err)
	}
	spec.Maps[mapChildren].MaxEntries = maxChildren
	return spec, nil
}
