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
// The program (bpf/sockops.c, compiled by bpf2go; the object is committed) keeps a
// 32-bit word per socket in a BPF_MAP_TYPE_SK_STORAGE map, keyed from Go by the
// socket's fd. [Signaller.Mark] sets the "marked" bit before connect or listen. The
// callbacks:
//
//   - TCP_CONNECT of a marked socket enables the header-option callbacks; the SYN
//     then gets the option (HDR_OPT_LEN reserves, WRITE_HDR_OPT writes and sets
//     "sent"). A SYN that already carries the option when the program writes it
//     (another program wrote it) sets "conflict".
//   - TCP_LISTEN of a marked listener sets TCP_SAVE_SYN and enables the
//     header-option callbacks; its children inherit both. A listener whose SYNs
//     cannot be saved is not announced at all.
//   - A SYN-ACK is written on the request socket, which has no storage. It echoes
//     the option exactly when the client's SYN carried it, the SYN-ACK is not a SYN
//     cookie, and the request is not recorded as "no echo": a pure function of the
//     request. The first SYN-ACK reads the SYN at hand, a retransmitted one the SYN
//     the request saved. Only a SYN-ACK whose option could not be written (no option
//     space left: MD5 or another program) is recorded, in a small LRU map keyed by
//     the request's socket cookie (which the child inherits and which is never
//     reused), so that the request's later SYN-ACKs do not echo either. A SYN
//     therefore costs no record: a flood of SYNs cannot fill a table.
//   - ACTIVE_ESTABLISHED (client): "received" is whether the SYN-ACK carries the
//     option.
//   - PASSIVE_ESTABLISHED (a child of a marked listener, known by the
//     header-option callbacks it inherited): "received" is whether its saved SYN
//     carries the option, "sent" is "received" unless the request is recorded as
//     "no echo". A plain client's child only turns the callbacks off: nothing is
//     recorded, and Go reads "no record" as "plain client". Other children's words
//     go into a preallocated hash map keyed by socket cookie ("children"), or, when
//     it is full, into socket storage created for them.
//   - Recorded sockets have their word published in the results cache (below) and
//     trade the header-option callbacks for the STATE callback, which runs only on
//     state changes: data packets cost nothing. At TCP_CLOSE a child's
//     children-map entry is deleted.
//
// Errors are counted in an array map ([Signaller.Stats], smc probe): err_reserve
// counts -ENOSPC from bpf_reserve_hdr_opt, err_store a SYN or SYN-ACK that went out
// without the option, and so on.
//
// # One signalling for a cgroup hierarchy
//
// The kernel runs every sock_ops program attached to a socket's cgroup or to one of
// its ancestors, nearest first. The processes of a cgroup share one instance of the
// program (its maps and its link): a process with CAP_BPF and CAP_NET_ADMIN asks the
// kernel which programs run on its cgroup's sockets and joins the nearest instance
// of this program (by its pins if it was prepared with [AttachCgroup], by its IDs
// otherwise, which needs CAP_SYS_ADMIN), and attaches one to its own cgroup only
// when there is none. An flock on the cgroup's directory makes the processes of a
// cgroup take that decision one at a time. Every process using a self-attached
// instance holds its link, so the instance stays attached while any of them lives
// and the kernel detaches it when the last one exits or is killed: nothing is
// pinned, nothing outlives its users, nothing is stranded. Processes without
// privilege use the pins of the nearest prepared cgroup.
//
// Sharing saves cost; exactness does not depend on it. Any number of instances
// may run on one socket (nested cgroups each with a process that attached first, a
// prepared cgroup below a self-attached one, a process without CAP_SYS_ADMIN that
// cannot join): every decision an instance takes is either about a socket its own
// process marked (clients, listeners: only the owner acts) or a function of the
// wire alone (SYN-ACKs, children), so all instances agree. The first instance to
// write a SYN-ACK's option writes it; the others find it there (-EEXIST) and count
// it as sent, which it is; every instance records the child in its own maps, and
// the accepting process reads its own.
//
// The cgroup is found by path when the process's cgroup namespace root lies inside
// a visible cgroup v2 mount. Inside a cgroup namespace below every visible mount's
// root (a container that sees the host's mount), /proc/self/cgroup says "/": the
// cgroup is found by the ID the kernel reports for a socket the process creates
// (sock_diag), searched for in the mount. With no cgroup v2 mount in sight (ip
// netns exec mounts a fresh /sys), a privileged process mounts cgroup v2 privately,
// through a file descriptor only.
//
// # Why Result never disagrees with the wire
//
// A bit is set only after the kernel confirmed the matching packet contents: "sent"
// on a client after bpf_store_hdr_opt succeeded on a SYN; "received" on a client
// only from the very SYN-ACK that completed the handshake, on a server only from the
// child's own saved SYN. On a server, "sent" holds when that SYN carried the option
// and the request was not recorded as "no echo", and a SYN-ACK of such a request
// always carries the option (this instance wrote it, or another one did) unless it
// is recorded, before the child exists, as one that did not. Cookies are never
// reused, so tuple reuse, SYN retransmits (answered by the request's retransmitted
// SYN-ACK) and SYN-ACK retransmits all resolve to the same decision. A SYN-cookie
// SYN-ACK never carries the option: the client reports "not received", and the
// server's child, which has no saved SYN, reports a plain client (Marked only). A
// mark the program never saw (set after connect, or on an MPTCP socket whose
// subflows it cannot see) reports Sent and Received false. An accepted socket of a
// marked listener reports Marked: [Signaller.Result] reads its word from the
// children map by socket cookie (SO_COOKIE) when it has no storage, and reports a
// child with no record as a plain client when it inherited its listener's
// TCP_SAVE_SYN; [Signaller.AcceptedResult], told that the listener was marked,
// proves the same from the results cache without it. "No record" means "plain
// client" only once the child's PASSIVE_ESTABLISHED callback has run: the kernel
// queues a child for accept while holding its socket spinlock and runs the callback
// before releasing it, and the net package's accept sets TCP_NODELAY, which takes
// that lock, before it returns the connection (TestNetAcceptLocksSocket). Client
// "sent" means at least one SYN transmission carried the option.
//
// The residual cases, counted rather than hidden: a SYN-ACK that cannot be written
// after an earlier SYN-ACK of the same request was (err_store; option space taken
// between two transmissions by another program); a "no echo" record lost to the LRU
// map's eviction while its request lives (4096 such requests at once; only MD5, AO or
// another program cause them), whose child then reports "sent" though its client saw
// no option: the client goes plain and the server, waiting for a Proposal, gets
// plain data and falls back (PEER_NOT_CLC), with nothing lost; a child whose word
// can be stored nowhere (err_result; it reports the zero Result). TCP Fast Open on a
// marked listener is not supported: the child exists before its SYN-ACK is sent and
// reports PeerUnknown, so do not set TCP_FASTOPEN on marked listeners (Go never
// does).
//
// A server never echoes unless the client's SYN carried the option, so a client that
// sees the option in the SYN-ACK knows its SYN carried it; and Negotiated (Sent and
// Received) is the same on both ends of a connection.
//
// # Conflicts
//
// The option means "I speak CLC": whatever else writes it makes a peer start a CLC
// handshake in the stream of an application that may not expect one. So Open refuses
// (an error wrapping [ErrConflict]) another version of this package's program on the
// cgroup's sockets, and, whenever other programs run there (or the process may not
// look), checks with two loopback connections that no SYN-ACK of an unmarked
// listener and no SYN of an unmarked client carries the option. A privileged process
// repeats that when the cgroup's programs change (checked every few seconds), and a
// client SYN found carrying the option before the program wrote it turns the
// conflict on for good ([Signaller.Err]). A program that writes the option only on
// some connections, attached after the checks, is seen only by the latter.
//
// # Attachment and privileges
//
// [AttachCgroup] (smc attach, as root) prepares a cgroup: it pins the link and the
// maps in bpffs under the cgroup's ID; [ListPrepared] lists them and [DetachCgroup]
// removes them, also for a cgroup that was deleted (by ID). Processes in a prepared
// cgroup or below open the pinned socket-storage map with BPF_OBJ_GET, which needs
// only the file's permissions. A process in the root cgroup does not attach.
//
// A socket's cgroup is fixed when it is created: the process must be inside the
// cgroup before it creates sockets.
//
// # What smc ss reads
//
// A client whose dial offered SMC and whose peer never announced it holds a plain
// *net.TCPConn that its process no longer tracks; the program's word in the socket's
// storage still says so. [TCPSockets] dumps a network namespace's TCP sockets through
// sock_diag with their tcp_info counters and, given the IDs of socket-storage maps
// ([Signaller.MarksMapID], which a process records in its registry), each socket's
// word (INET_DIAG_REQ_SK_BPF_STORAGES, which needs CAP_BPF, and CAP_SYS_ADMIN to open
// a map by ID).
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
// # Costs
//
// What each path costs, in work; the measured figures, their commands and the noise
// caveats are in BENCHMARKS.md (this directory).
//
//   - A connection that is never marked pays no system call; with the program
//     attached the kernel runs it a few times per connection, each time returning
//     after a look at the callback and the socket.
//   - Mark: one bpf(BPF_MAP_UPDATE_ELEM), which allocates the socket's storage.
//     Result: one bpf(BPF_MAP_LOOKUP_ELEM) for a socket with storage; an accepted
//     socket also costs getsockopt(SO_COOKIE) and a children-map lookup.
//     ResultAddr and AcceptedResult answer from the mapped results cache without a
//     system call nearly always; a socket never marked has no slot, so call them
//     only for marked sockets.
//   - A plain client of a marked listener costs its child one look at its saved
//     SYN in the program, and Go one read of the results cache's header.
//   - A negotiated connection costs the program a children-map insert and delete
//     and a results-cache slot on the server, a storage word and a slot on the
//     client.
//   - Open: a query of the cgroup's programs, the join or the load and attach, and,
//     only when other programs run on the cgroup's sockets or the process cannot
//     look, two loopback connections.
package signal
