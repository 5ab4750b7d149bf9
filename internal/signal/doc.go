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
// toolchain) keeps a 32-bit word per socket in a BPF_MAP_TYPE_SK_STORAGE map, keyed
// from Go by the socket's fd. [Signaller.Mark] sets the "marked" bit before connect or
// listen. Accepted sockets get no storage (cloning it into every child costs an
// allocation and an RCU free per connection, plain clients included): a child knows
// its listener was marked from the WRITE_HDR_OPT callback flag it inherits. A child
// whose client did not advertise SMC is recorded nowhere, so that a marked listener
// costs its plain clients as little as possible; the word of any other child goes
// into a preallocated hash map keyed by its socket cookie ("children"), or, when
// that map is full, into socket storage created for it. The callbacks:
//
//   - TCP_CONNECT of a marked socket enables the header-option callbacks; the SYN
//     then gets the option (HDR_OPT_LEN reserves, WRITE_HDR_OPT writes and sets
//     "sent").
//   - TCP_LISTEN of a marked listener enables the callbacks and sets TCP_SAVE_SYN,
//     which its children inherit; only marked listeners have them. TCP_SAVE_SYN is
//     only a tag (see Result below): no saved SYN is read, the SYN is read once,
//     while the first SYN-ACK is written.
//   - A SYN-ACK is written on the request socket, which has no storage. The first
//     SYN-ACK of a request whose SYN carried the option, and that is not a SYN cookie,
//     reserves space and records its decision in a hash map keyed by the request's
//     socket cookie, which the child inherits (inet_csk_clone_lock) and which is
//     never reused; before it does, it stamps the record's time in the results
//     header (below). It echoes only when both the reservation and the record
//     succeeded; retransmitted SYN-ACKs, which have no SYN to read, follow the
//     record found by the same cookie; a failed write turns the record to "no echo".
//   - ACTIVE_ESTABLISHED (client): "received" is whether the SYN-ACK carries the
//     option. PASSIVE_ESTABLISHED (server child): a child with no record (a plain
//     client) only turns the header-option callbacks off. While the header's record
//     time is 0 or older than ten minutes (the records' sweep age, far beyond a
//     request's life) no record can be the child's, and it needs no lookup at all:
//     a server whose clients are all plain pays one cache line read. A child with a
//     record has "received" set and "sent" if the record says echo; the record is
//     deleted; the word is stored in the children map (or created storage). Recorded sockets get "done", have their word published in the
//     results cache (below) and trade the header-option callbacks for the STATE
//     callback, which runs only on state changes: data packets cost nothing. At
//     TCP_CLOSE a child's children-map entry is deleted.
//
// Errors are counted in an array map ([Signaller.Stats], smc probe): err_reserve
// counts -ENOSPC from bpf_reserve_hdr_opt, err_record a full record table, and so on.
//
// # Why Result never disagrees with the wire
//
// A bit is set only after the kernel confirmed the matching packet contents: "sent"
// on a client after bpf_store_hdr_opt succeeded on a SYN; "received" on a client only
// from the very SYN-ACK that completed the handshake, on a server only from a record,
// which exists only if the first SYN-ACK of the child's own request read the option
// in its SYN. On a server, "sent" comes from the record, and the option is written
// only when the record exists and says echo, so an echo that could not be recorded
// never happens. Each connection has its own socket storage, and records are keyed by
// the request's socket cookie, unique for the life of the machine, so tuple reuse,
// SYN retransmits (answered by the request's retransmitted SYN-ACK) and SYN-ACK
// retransmits all resolve to the same decision. A SYN-cookie SYN-ACK never carries
// the option: the client reports "not received", and the server, whose child comes
// from no request and so has no record, reports it as a plain client (Marked only),
// even though its SYN carried the option; so does a child whose request could not be
// recorded (err_record; its SYN-ACK did not echo). A mark the
// program never saw (set after connect, or on an MPTCP socket whose subflows it cannot
// see) reports Sent and Received false. An accepted socket of a marked listener
// reports Marked: [Signaller.Result] reads its word from the children map by socket
// cookie (SO_COOKIE) when it has no storage, and reports a child with no record as a
// plain client when it inherited its listener's TCP_SAVE_SYN tag;
// [Signaller.AcceptedResult], told that the listener was marked, proves the same
// from the results cache without it (a listener whose TCP_SAVE_SYN failed,
// err_save_syn, still echoes; only Result cannot tell its plain children). "No record" means "plain client" only once the child's
// PASSIVE_ESTABLISHED callback has run: the kernel queues a child for accept while
// holding its socket spinlock and runs the callback before releasing it, and the
// net package's accept sets TCP_NODELAY, which takes that lock, before it returns
// the connection (TestNetAcceptLocksSocket). Client "sent" means at least one SYN
// transmission carried the option.
//
// The residual cases, counted rather than hidden: a SYN-ACK write failing after an
// earlier SYN-ACK of the same request succeeded (err_store; only another program
// writing the same option can cause it); a child whose word can be stored nowhere,
// the children map full and the kernel out of memory for its storage (err_result;
// the child then reports the zero Result). The children are recognised by the
// inherited flag, so another sock_ops program that sets WRITE_HDR_OPT callbacks on an
// unmarked listener makes its children report Marked (and would make the SYN-ACK
// path echo: the design already relies on no other program doing so). A request
// whose child completes more than ten minutes after its first SYN-ACK (only with
// net.ipv4.tcp_synack_retries or TCP_DEFER_ACCEPT raised far beyond their defaults)
// may have lost its record to the sweep, and its child then reports as a plain
// client while the SYN-ACKs echoed. TCP Fast Open on a marked listener is not
// supported: the child exists before its SYN-ACK is sent and reports PeerUnknown
// while that SYN-ACK may still echo, so do not set TCP_FASTOPEN on marked listeners
// (Go never does).
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
// # The results cache
//
// [Signaller.Result] costs one bpf(2) system call. [Signaller.ResultAddr] answers
// from memory instead: in each ESTABLISHED callback of a recorded socket the program
// also publishes the final word in a BPF_F_MMAPABLE array slot chosen by hashing the
// 4-tuple, under a sequence lock claimed with compare-and-swap, with the ports,
// both addresses (IPv4 as IPv4-mapped) and the network namespace cookie, and adds
// one to the slot's count of live recorded sockets; it enables the socket's STATE
// callback and, when the socket reaches TCP_CLOSE (once: a close from TCP_CLOSE is
// ignored), takes one off the count and empties the slot if it still holds the
// socket's ports. Go maps the array read-only and takes an answer only if the
// sequence was even and unchanged across the read, the slot names exactly the
// socket's addresses and this process's namespace, and the cache is not poisoned;
// anything else goes to the kernel. Why a matching slot is the socket's own: a
// 4-tuple belongs to one socket of a namespace at a time; the slot was written
// before connect or accept returned; a slot written by an earlier socket with the
// same 4-tuple was emptied when that socket closed, before the 4-tuple could be used
// again, or, if the slot could not be claimed then, the whole cache was poisoned
// (counter cache_poisoned). For an accepted socket of a marked listener,
// AcceptedResult also takes a slot that names another socket and counts none live
// as proof that the socket was not recorded: a publication that cannot claim its
// slot poisons the cache too, so none is ever missing from a count. The header slot
// keeps the sum of all the counts, moved with each of them, so that while no
// recorded socket is live at all (a server whose clients are all plain) that proof
// takes only the header's cache line, not the slot's. DetachCgroup
// poisons the cache, because processes keep the mapped cache while no program
// empties slots any more. A collision only sends a reader to the kernel. What this
// relies on: no other sock_ops program clears our STATE callback flag, and prepared
// cgroups are detached with [DetachCgroup] (smc attach --detach), not by deleting
// the pins. Mapping needs a read-write open of the pinned map, so the members of
// AttachOptions.Group form one trust domain.
//
// Records of SYN-ACKs whose connection never completes are swept by every Signaller
// that may write the records map once a minute when older than ten minutes, far
// beyond a request's life.
//
// # Costs
//
// Figures from one run on the shared 2-core development machine; commands, the full
// table and the noise caveats are in BENCHMARKS.md. The program's own run time is
// measured by the kernel (BPF run-time statistics).
//
//   - A connection that is never marked pays no system call; with the program
//     attached the kernel runs it 9 times per loopback connection (both ends), about
//     0.57 us in total, 0.8% of the process CPU time per connection there.
//   - Mark: one bpf(BPF_MAP_UPDATE_ELEM), about 1.7-1.9 us (it allocates the
//     socket's storage). Result: one bpf(BPF_MAP_LOOKUP_ELEM), about 1.2 us for a
//     socket with storage; an accepted socket (or one never marked) also costs
//     getsockopt(SO_COOKIE) and a children-map lookup, about 2.6 us in all.
//     ResultAddr and AcceptedResult from the cache: about 33 ns; for a socket never
//     marked there is no slot and ResultAddr costs the system calls, so call it
//     only for marked sockets.
//   - A plain client of a marked listener costs about 1.2 us more per loopback
//     connection than one of an unmarked listener, AcceptedResult included
//     (BenchmarkListenerCost, about 55 us per connection: 2%); in the same run it
//     was 2.7 us while such clients were recorded like SMC ones (children map,
//     results slot, STATE callbacks), and 2.4 us earlier while children got cloned
//     storage. TCP_SAVE_SYN alone costs nothing measurable. Of that, the program's
//     own run time is about 0.5 us (0.6 us while children read their saved SYN). A
//     marked client against an unmarked listener costs the program
//     about 0.8 us plus Mark. A negotiated connection costs the program about
//     3.8 us (both ends).
package signal
