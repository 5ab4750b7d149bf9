// Package signal announces SMC inside the TCP handshake, as Linux SMC does, from user
// space: a cgroup sock_ops eBPF program writes the SMC experimental option (kind 254,
// length 6, ExID E2 D4 C3 D9, padded to 8 bytes; Linux include/net/tcp.h
// TCPOPT_SMC_MAGIC) into the SYN of marked client sockets, and into the SYN-ACK of
// marked listeners only when the client's SYN carried it; it records per connection
// what was sent and received, and Go reads that back right after connect or accept.
// It is the only package that imports github.com/cilium/ebpf.
//
// # The program
//
// The program (program_linux.go, built with cilium/ebpf's asm package, no C
// toolchain) keeps a 32-bit word per socket in a BPF_MAP_TYPE_SK_STORAGE map created
// with BPF_F_NO_PREALLOC|BPF_F_CLONE, keyed from Go by the socket's fd. [Signaller.Mark]
// sets the "marked" bit before connect or listen; accepted sockets inherit their
// listener's word (BPF_F_CLONE). The callbacks:
//
//   - TCP_CONNECT of a marked socket enables the header-option callbacks; the SYN
//     then gets the option (HDR_OPT_LEN reserves, WRITE_HDR_OPT writes and sets
//     "sent").
//   - TCP_LISTEN of a marked listener sets TCP_SAVE_SYN (so that the SYN is readable
//     after the handshake) and enables the callbacks, which its children inherit.
//   - A SYN-ACK is written on the request socket, which has no storage. The first
//     SYN-ACK of a request whose SYN carried the option, and that is not a SYN cookie,
//     reserves space and records its decision in a hash map keyed by the network
//     namespace cookie and the first 48 bytes of the SYN's IP and TCP headers
//     (addresses, ports, sequence number), as the kernel saved them. It echoes only
//     when both the reservation and the record succeeded; retransmitted SYN-ACKs
//     follow the record; a failed write turns the record to "no echo".
//   - ACTIVE_ESTABLISHED (client): "received" is whether the SYN-ACK carries the
//     option. PASSIVE_ESTABLISHED (server child): "received" is whether the saved SYN
//     carries it, "sent" is whether the record says echo; the record is deleted. Both
//     set "done" and disable the header-option callbacks, so later packets cost
//     nothing.
//
// Errors are counted in an array map ([Signaller.Stats], smc probe): err_reserve
// counts -ENOSPC from bpf_reserve_hdr_opt, err_record a full record table, and so on.
//
// # Why Result never disagrees with the wire
//
// A bit is set only after the kernel confirmed the matching packet contents: "sent"
// on a client after bpf_store_hdr_opt succeeded on a SYN; "received" only from the
// very packet that completed the handshake (the SYN-ACK, or the SYN the kernel saved
// for this child). On a server, "sent" comes from the record, and the option is
// written only when the record exists and says echo, so an echo that could not be
// recorded never happens. Each connection has its own socket storage, and records are
// keyed by the SYN itself, so tuple reuse, SYN retransmits (the saved SYN is the
// original) and SYN-ACK retransmits all resolve to the same decision. A SYN-cookie
// SYN-ACK never carries the option: the client reports "not received", and the server,
// which kept no SYN, reports PeerUnknown with Sent and Received false. A mark the
// program never saw (set after connect, or on an MPTCP socket whose subflows it cannot
// see) reports Sent and Received false. The residual cases are counted, not hidden: a
// SYN-ACK write failing after an earlier SYN-ACK of the same request succeeded (only
// another program writing the same option can cause it), and TCP Fast Open on a
// marked listener (PeerUnknown; do not enable TCP_FASTOPEN on marked listeners).
// Client "sent" means at least one SYN transmission carried the option.
//
// A server never echoes unless the client's SYN carried the option, so a client that
// sees the option in the SYN-ACK knows its SYN carried it; and Negotiated (Sent and
// Received) is the same on both ends of a connection.
//
// # Attachment and privileges
//
// [Open] looks for objects that [AttachCgroup] (smc attach, as root) pinned in bpffs
// for the process's cgroup v2 or its nearest prepared ancestor, and opens the
// socket-storage map with BPF_OBJ_GET, which needs only the file's permissions. With
// none, a process holding CAP_BPF and CAP_NET_ADMIN loads the program and attaches it
// to its own cgroup with a bpf_link for the life of the Signaller; the root cgroup is
// refused. Everything else returns an error wrapping [ErrUnavailable].
//
// A socket's cgroup is fixed when it is created: the process must be inside the
// attached cgroup before it creates sockets.
//
// # Costs
//
// See BENCHMARKS.md in this directory for the measured figures. Mark is one
// bpf(BPF_MAP_UPDATE_ELEM) system call and Result one bpf(BPF_MAP_LOOKUP_ELEM); a
// socket that is never marked pays no system call, and the program, attached, costs
// it one socket-storage lookup in each ESTABLISHED callback.
package signal
