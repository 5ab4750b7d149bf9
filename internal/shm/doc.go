// Package shm is smc's same-host data path: full-duplex byte streams between two
// processes through shared memory, the user-space counterpart of Linux SMC-D over
// loopback-ism, with the link groups of Linux SMC. The root package runs the CLC
// handshake on the TCP connection; once both sides have agreed, the server calls
// [Endpoint.Offer] and puts the offer's link ID, its token and the ring size in the CLC
// Accept, the client calls [Connect] with them and names its own slot in its CLC
// Confirm, and the server calls [Offer.Bind] with that. Both get a [Stream] with TCP
// semantics (see "Binding").
//
// # Links
//
// All the streams between a client process and a server process run over one link: a
// Unix seqpacket connection from the client to the server's [Endpoint]. A server keeps
// one link per client process, named by the random [PeerID] the client puts in its CLC
// Proposal; a client keeps its links by endpoint directory and link ID, which name the
// endpoint's address. A link ID is the endpoint's 16-bit ID (from which its address is
// derived, see [Addr]) << 16 | a 16-bit link index that is not reused quickly.
//
// When the client has no link to the server, the Accept's token is not a slot but a
// one-time random secret of a new link, and the client sets it up:
//
//	client → server  HELLO{version, link ID, Nc}
//	server → client  AUTH{Ns, HMAC-SHA256(secret, "s"|Nc|Ns|server's pidfs inode)}
//	client → server  PROOF{HMAC-SHA256(secret, "c"|Nc|Ns)}
//	server → client  READY{token of the offer's slot}
//
// The client checks the server's proof against the pidfs inode of the process at the
// other end of its socket (SO_PEERPIDFD, then fstat), and sends its own proof only if it
// matches: whoever replaced the socket file, or relays between the client and the real
// endpoint, cannot produce it, so the client's Connect fails (the root package falls
// back to TCP) and it never writes data. The secret itself never crosses the Unix
// socket: it travelled only inside the Accept on the TCP connection. Without pidfs
// (before Linux 6.9) both ends use 0 for the inode, and a relay that forwards the whole
// exchange is not detected; an impostor that does not know the secret still is.
//
// The endpoint closes a connection that has not proven itself within a second
// ([Config.HandshakeTimeout]) and counts unproven connections per peer uid
// (SO_PEERCRED) with a small cap per uid and a global one, so that a stranger's idle
// connections cannot keep another user's clients out. With [Config.Dir] the socket file
// is mode 0666 (who may use a link is decided by its proof), and [CheckDir] refuses a
// directory that another user could swap files in.
//
// A link ends when it has had no slot in use for [DefaultLinkIdle] ([SetLinkIdle]);
// only the server ends it, the client follows on EOF. It also ends when either process
// dies (the kernel closes its socket), or at the first protocol violation of the peer.
// Every stream of a link that ended sees the peer vanished (a reset) unless it had seen
// the peer close; once those streams are closed every segment of the link is unmapped.
//
// # Pools, segments and slots
//
// Each side of a link owns a pool of slots it receives into, in segments: memfds it
// creates, sizes and seals with F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL. It populates
// their pages itself with MADV_POPULATE_WRITE before the peer may write into them, so
// that every page is allocated by, and charged to, the owner: the slot headers when it
// creates a segment, the first window of a ring when it hands the slot out, and the rest
// of the ring as the window grows (see "Populated window"). The peer maps them and
// writes into them; it never causes an allocation on the owner's side. Before mapping a
// segment, a side checks that the memfd lives on tmpfs (not hugetlbfs, whose faults can
// SIGBUS when the pool is empty), carries exactly those seals (F_SEAL_EXEC tolerated),
// is open read-write and has exactly the size its announced slot count and ring size
// imply, a size it reads only after it saw the seals (the peer holds the memfd too, and
// may shrink it just before sealing it); since the size can never change, no access
// within it can fault. It maps no segment whose ring is larger than it accepts itself.
//
// Memory is counted as it is resident, not as it is mapped ([SetMemoryLimit]). Own
// memory counts when the owner populates it (a segment's headers, a slot's first
// window when the slot is first handed out, each growth of a window) and stops counting
// when it returns it (the pages a freed slot had beyond its first window, a withdrawn
// segment). Peer memory, capped by the same bound apart, counts what we may touch: the
// headers of the peer segments we map, and of each peer ring we write into, the window
// we accepted (the first window when the stream starts, then each growth the cap allows).
// So an idle connection costs its first windows against the bound, whatever its ring
// size, and a process holds thousands of them.
//
// A segment of n slots holds n slot headers of SlotHeaderSize (512) bytes, rounded up
// to 4096, then n rings of one power-of-two size. Segments of a ring size grow 1, 2, 4,
// ... 64 slots while no slot is free; a segment whose slots stayed all free for a few
// seconds is withdrawn, except the oldest of each size, so that a pool shrinks back
// after a burst. A slot token is generation << 32 | segment << 16 | slot; the
// generation changes every time the slot is handed out, so a token of an earlier use is
// stale and refused.
//
// An own slot is free, held (by an offer until the Confirm, or by a Connect until it
// binds), bound (to a stream) or closed (its stream closed, or its offer withdrawn, the
// peer not yet done with it). It is zeroed, header and ring, and marked free only when
// the peer released it or the link is dead; Close never waits for the peer. The peer releases a
// slot with no message: its closed stream's last store into the slot sets fReleased in
// the producer line (link version 3; version 2 sent a RELEASE message). The side that
// closes second finds the first's release in its own slot and frees it at once; the
// first side's slot is freed by the next offer or connect on the link, which sweeps the
// closed slots, or by a sweep a few milliseconds later (while the peer holds its end
// open, the sweep comes back ever later, up to once a second). A peer that sets fReleased
// early loses the data of its own stream on this link, as a lying RELEASE did.
//
// Zeroing returns the pages the owner populated beyond the first window (as far as the
// stream's window grew) to the system, and to the bound (MADV_REMOVE on the owner's mapping: a hole
// punched in the memfd, which reads as zeros in every mapping and keeps the file's
// size, so no mapping faults; the seals forbid shrinking and growing, not that) and
// clears the first window in place, whose pages stay: a slot handed out again has its
// first window populated already. So a slot whose window never grew is reused with no
// system call. Pages a peer faulted in beyond the window (it can write into any slot of
// the link, free ones too) are charged to it and stay until the slot's window grows
// over them again or the segment is withdrawn.
//
// # Link messages
//
// Every message is one datagram: a type byte, 7 zero bytes and a body of fixed length,
// little-endian, strictly parsed; an unknown type, a wrong length, a non-zero reserved
// field or a descriptor on any message but SEG and POLL is a violation and ends the link.
//
//	SEG{idx, ringSize, nslots} + memfd  owner → peer: a new segment; the peer maps it
//	SEGACK{idx, ok}                     the owner hands out its slots only after ok
//	SEGDEL{idx}, SEGDELACK{idx}          withdrawal of an idle segment
//	CANCEL{serverSlot}                  server → client: an offer whose Accept went out
//	                                    is withdrawn, never bound (see Binding)
//	WAKE{n, n × {slot, bits}}           wake the receiver's streams of these slots (bits: data, space, grow the window)
//	POLL{0} + memfd                     either side, at its first stream: its poller
//	                                    page (see Wake-ups), validated as a segment of
//	                                    one MinRingSize slot and counted as memory
//
// Writes on a link never block the writer: a message that does not fit the socket
// buffer is queued in order, and a wake-up that does not fit is kept in a per-link set
// (one entry per slot), both sent by a goroutine that waits for the socket to drain. So
// no wake-up is ever dropped. One reader goroutine per link reads the messages and kicks
// the streams they name.
//
// # Slot layout
//
// A slot's control area holds four 128-byte lines, each written by one side only (128
// bytes apart, so that two writers never share a cache line nor the adjacent-line
// prefetch pair). The cursors, stored on every publish and every consume, have lines of
// their own; the flags, sleep and window words, stored only at a close, a park or a
// window's growth, sit on control lines that stay cached on the other side while the
// stream runs (link version 3; version 2 had each side's words on one line):
//
//	offset 0    producer cursor line, written by the peer (the producer into this ring)
//	    0  u64  producer cursor: bytes written into the ring, ever
//	offset 128  consumer cursor line, written by the owner (the consumer of this ring)
//	  128  u64  consumer cursor: bytes consumed, ever
//	offset 256  producer control line, written by the peer
//	  256  u32  producer flags: done writing | closed | abort | released
//	  260  u32  producer sleep: 0, or the sequence number of the writer's announced sleep
//	  264  u32  wrap: 0, or the window the producer froze at, where it wraps (link version 4)
//	offset 384  consumer control line, written by the owner
//	  384  u32  consumer flags: done reading | closed | abort
//	  388  u32  consumer sleep: 0, or the sequence number of the reader's announced sleep
//	  392  u32  window: ring bytes the owner populated, from offset 0 | final (1<<31)
//	  396  u32  server slot: the largest client ring its offer accepts
//	  400  u64  the slot's own token in this use, stored when it is handed out
//	  408  u64  client slot: the server slot's token its stream is bound to
//
// (Link version 5 added the words at 396 to 408, which binding reads once.)
//
// A writer loads the consumer cursor only when the free space by the cursor it loaded
// last is too small for what it writes (a cursor loaded earlier only understates the free
// space), so a stream that keeps up never fetches back, on each Write, the line its
// reader stored on the last Read; it loads the consumer's control line, which stays in
// its cache, every time.
//
// So one direction of the stream lives entirely in the receiver's slot, unlike SMC-D,
// whose consumer cursor travels in a CDC header written into the other DMB; with both
// slots mapped by both sides the two are equivalent, and this way each direction's words
// sit in one place. Words are in host byte order: both sides are on one host.
//
// # Binding
//
// The client binds first and alone, as a Linux client is in SMC mode once its Confirm
// is sent: no message on the link waits for the server (link version 5; version 4 had
// BIND and BINDACK, a round trip between the processes per connection). The server's
// offer holds its slot, writes its token and the offer's bound on the client's ring
// into the slot's consumer control line, and the Accept goes out. The client's
// Connect checks the server's slot (mapped, of the Accept's size, still holding that
// token with no abort, a bound at least its own ring), takes a slot of its own, and
// under the link's lock checks the server's slot once more, writes the server's token
// into its own slot's consumer control line and starts its stream: it may write at
// once. Its Confirm names its slot. The server, reading the Confirm, checks that the
// named slot is in a client segment it mapped, of the announced size, within the
// offer's bound, and that the slot's words name that slot and the offer's slot, which
// no process but the two ends of the link can write there, and starts its stream. A
// slot of a new client segment is handed out only after the server mapped the segment
// (SEGACK), so the server never reads a Confirm naming a segment it has not mapped.
//
// What can fail the server's side, and what the client sees:
//   - The client's ring is larger than the server accepts, on a new link or an
//     existing one: the server refuses the client's segment (SEGACK not ok), or the
//     client reads the offer's bound in the server's slot. Either way Connect fails
//     before the Confirm, and the client declines (MAX_DMB).
//   - The server withdrew the offer before the client bound (its handshake gave up):
//     Connect sees the abort, or a token that is no longer the Accept's, fails before
//     the Confirm, and the client declines.
//   - The server gives up after the Accept, whenever the client bound or not: its
//     handshake failed (a TCP error or timeout, the Conn closed, a Decline read, a
//     Confirm that does not answer the Accept). [Offer.Cancel] withdraws the slot: its
//     consumer line says abort, which the client's writes see as a reset, and a CANCEL
//     names it. The client's stream bound to it fails with a reset (its waiting Read
//     too), as a TCP client's does when a server accepts and then resets; with nothing
//     bound to it, the client releases the slot at once. The server closes its TCP
//     connection as well. Data the client wrote is not reported as delivered by any
//     later call: every call fails.
//   - A Confirm naming a slot the client did not bind to this offer (stale, foreign,
//     unmapped, another size or beyond the bound): the client process is buggy or lying,
//     or another process copied its PeerID into a Proposal and confirms in its name. It
//     is a [ProtocolError] for that connection only: the offer is withdrawn as above,
//     and the link and its other streams go on, since the Confirm did not come over the
//     link.
//   - The link ends (the client or the server dies, a violation on the link): every
//     stream of it fails with a reset, the client's included, and every slot is freed.
//
// The withdrawn offer's slot is not freed before the client released it (fReleased,
// set by the client's closing stream, or by its link reader on CANCEL when nothing of
// its is bound to the slot) or the link ended: the client may be writing into it, and a
// slot handed out again must never receive an earlier connection's bytes. A client that
// never releases it holds it until the link ends; that is its own link's slot. CANCEL
// means the server never bound a stream to the slot, nor will, nor wrote into the
// client's slot for it (withdrawal and binding exclude each other under the server's
// link lock), so the client frees its own slot as soon as its stream closed. An Accept
// that never reached the client is withdrawn by the server's handshake timeout; a
// Connect that comes after that finds the abort or another token, and binds nothing.
//
// # Populated window
//
// An idle connection should not hold its rings: the owner populates a ring as it is
// used. When it hands a slot out, it populates the first window (4 KiB, or the ring if
// smaller) and publishes its length in the window word. The producer writes only at
// ring offsets below the window, and does not wrap before the window is the whole ring
// (or it froze, below):
// its free space is min(size-(prod-cons), window-prod) until then, when its cursor is
// still its ring offset, and it publishes at most half a window at a time. Each time the
// owner sees the producer cursor at or beyond the window's middle, it populates the next
// window's worth of pages in its own mapping, doubling the window, publishes it, and
// wakes the producer if it announced a sleep, whatever the free space (the
// quarter-of-the-ring rule below is about the consumer cursor; a producer at the
// window's edge waits for the window). A producer that keeps writing thus finds the
// window grown while it writes the second half, and a spinning producer watches the
// window word as well as the cursor. An owner that is not reading (busy writing, or
// elsewhere) sees nothing: a producer stopped at the window's edge asks it to grow the
// window, once per window, with a WAKE carrying wakeGrow (a call, for a peer in this
// process), and the owner's link reader grows it as a read would. So a writer may
// fill the whole ring of a peer that is not reading, as a TCP sender fills a busy
// peer's socket buffer, and an exchange that fits in the two rings (a request written
// whole before the answer is read, against a peer that answers as it reads) never
// deadlocks on the window. A ring becomes resident about as far as its stream has used
// it: the first window, or at most four times the bytes received.
//
// The window grows only within the bounds (link version 4). The owner counts each
// growth against its process bound; a growth that would cross it does not happen, and
// if the producer asked for it (it waits at the edge) the owner publishes its window
// as final (bit 31 of the word) and never grows it again. The producer counts each
// growth it accepts against its cap on peer memory, and takes a growth it cannot count
// as no growth. In either case (final, or refused) it freezes: the window it accepted
// becomes the ring it wraps at, for the rest of the stream, as TCP keeps a small buffer
// under memory pressure. Before its cursor passes the window it stores that size in its
// wrap word, which the owner loads after the producer cursor; since the producer had not
// wrapped before (its cursor is at most the window), every byte is at the same offset in
// the smaller ring, and from the wrap on both sides use it as the ring size (its quarter
// for the wake-ups too). A stream never fails for want of memory once it started.
//
// The producer validates the word: a window beyond the ring is taken as the ring, one
// smaller than before, or not a power of two, is a violation. The owner validates the
// producer: below a whole-ring window (or its wrap), a producer cursor beyond the window
// is a violation, and so is a wrap that is not a power of two within the window the
// owner published, or that changes once declared.
//
// # Cursors
//
// Cursors are 64-bit monotonic byte counts instead of SMC's 16-bit wrap plus 32-bit
// offset: a single atomic load or store moves them, so no torn wrap/offset pair is ever
// seen, and the ring position is cursor & (size-1). Unread bytes are prod-cons, free
// space size-(prod-cons), all modular, so even a wrap after 2^64 bytes would be harmless.
// A reader accepts a new producer cursor only if 0 <= prod-cons <= size and it did not
// move backwards; a writer accepts a consumer cursor only if it moved forward and not past
// what was produced. Flags are sticky (a cleared bit is a violation), unknown bits are a
// violation, and the producer cursor may not move after "done writing".
//
// # Memory ordering
//
// The producer copies data into the ring with ordinary stores (on amd64, copies of 2 KiB
// and more with REP MOVSB, or non-temporal stores where the string move would be slow,
// which write whole cache lines without first fetching them from the reader's CPU,
// followed by SFENCE: see storeRing), then stores the producer cursor atomically (on
// amd64 with a plain store first, which amd64 keeps after the data's, so that the CPU
// fetches the cursor's line from the reader while the data's lines are on their way:
// see storeAhead); the consumer loads the cursor atomically, then copies the data out,
// then stores the consumer cursor atomically, after which the producer may overwrite
// those bytes. Go's sync/atomic operations are sequentially consistent (XCHG on amd64,
// release/acquire instructions on arm64), which is what makes "data before cursor" and
// "read before release" hold between processes too. Flags are loaded before the cursor
// of the same side: the producer stores its last cursor before setting "done writing",
// so a reader that sees the flag then loads the final cursor. A side never reads back a
// word it writes (the peer can overwrite any word in either slot); its own cursors and
// flags are kept in private memory and only published.
//
// # Wake-ups
//
// A side waiting for data (or for space) first polls the other side's cursor for a
// bounded time (DefaultSpin, see [SetSpin]), yielding with runtime.Gosched every few polls
// when the goroutine it waits for may need its P (GOMAXPROCS=1, or an in-process peer)
// or when its last spin ended in a park, and only now and then otherwise. At most
// max(1, GOMAXPROCS-1) goroutines of a process spin at once; the rest park straight away.
// Spinning pays only when it outlasts a wake-up through the kernel; parking on every
// message costs that wake-up on every message. A waiter whose last 4 spins all ended in
// a park spins an eighth of the budget (a full one on every 8th wait) until a spin
// succeeds again, so a peer with think time does not cost a full spin per message. A new
// stream starts that way too while the process's last 4 spins (of any stream) ended in a
// park: a saturated process, whose every new connection would otherwise start with a
// full spin, spins less, and one success anywhere restores the full budget for the next.
//
// While the process's poller is active (below), a waiter does not spin: the poller
// polls for it.
//
// To park, a waiter announces its sleep by storing a new sequence number in its sleep
// word, registers with the process's poller, rechecks the cursor and flags, and only then
// blocks on its channel. Each side of a link owns a poller page (POLL) whose first word is
// its poller word on that link: 0 while its poller is active, else the sequence number of
// a sleep the poller announced. A passive poller has no goroutine; it announces its
// current sleep on the link of every waiter that registers, if that word does not hold it
// yet. A producer stores its cursor, loads the stream's sleep word and, if the stream
// waits, the peer's poller word on that link; it sends a WAKE (naming the slot) only if
// that word is non-zero and not the one it last rang on this link (a consumer does the
// same with its cursor or its window and the writer's sleep word, once a quarter of the
// ring is free or the window grew).
// So a passive process is rung once per announced sleep, however many of its streams got
// data, and an active one not at all. The link's reader, on a WAKE, kicks the named
// streams, announces a new sleep on the links of all registered waiters and polls them
// once. If that poll finds streams the WAKE did not name, the process is busy and the
// poller turns active: it stores 0 in those words, and its goroutine polls the waiters,
// readying through its channel each one whose line changed (a writer's once a quarter of
// the ring is free or its window grew) and yielding its P to them, until it found nothing for a spin budget.
// Then it announces a new sleep, polls once more and turns passive, unless that poll
// found work. An idle process has no goroutine polling, and an idle stream no goroutine.
//
// No wake-up is lost. Every store below is a Swap and every load an atomic load, all
// sequentially consistent (Dekker's pattern twice; the stores are Swaps because the race
// detector's Store is only a release). Suppose a waiter's recheck R misses a producer's
// cursor store C (for a waiting writer: a consumer's cursor or window store). Then C
// follows R, and so do the producer's loads after C: it sees the waiter's sleep word
// (stored before R) and loads the poller word of the waiter's link.
//   - If the poller is active at some time after C, it polls the waiter (registered
//     before R) until it turns passive, and turning passive announces a sleep and polls
//     once more: that poll follows C and sees it.
//   - Otherwise it is passive from C on. While passive, the word of every registered
//     waiter's link holds its current sleep s (it announces s on those links when it
//     turns passive or announces anew, and on a registering waiter's link), so the
//     producer loads s or a later sleep. If it has not rung that one on this link, it
//     sends a WAKE, which kicks the stream. If it has, that WAKE is on its way, and the
//     reader's new announcement on receiving it (a Swap of s+1 in every word it announces
//     in, even with no waiter left) follows the load that saw s, hence C, and the poll
//     after it sees C.
//
// Without the peer's poller page (not yet mapped, or refused by the cap on peer memory)
// a producer wakes each waiting stream once per announced sleep of the stream: then the
// first pair alone (the sleep word and the cursor) ensures that either R sees C or the
// producer sees the sleep and rings. So no wake-up is lost, none is sent while the peer
// polls, and a consumer wakes a blocked writer only once a quarter of the ring is free
// (or the window grew).
// Waiting goroutines hold no OS thread.
//
// When the peer is this very process (SO_PEERCRED), the two streams find each other (by
// their slots' memfd inodes and tokens) and wake each other through their channels, with
// no system call.
//
// # Liveness and close
//
// The link is the liveness signal: when the peer process dies, the kernel closes its
// end, and the link's reader sees EOF at once; streams that are waiting fail with a reset
// unless the peer's "closed" flag (or "done writing", for reads) was published before.
// Close publishes the flags and then releases the peer's slot (fReleased, a Swap), and
// wakes the peer's stream only if it announced a sleep, as a producer does after its
// cursor (so a close costs no message when the peer does not wait); WriteTo and
// ReadFrom copy straight between a ring and their io.Writer or io.Reader without holding
// a lock Close takes, and a Close during such a copy sends a WAKE at once and leaves the
// release to the copy's end. The root package can also call [Stream.Abort] when its TCP
// connection reports a reset.
//
// # Threat model
//
// The peer is another process on the same host that passed the CLC handshake; it may be
// buggy or hostile. It can write anything, at any time, into every slot of both pools of
// its link and send anything on the link. It cannot make us read or write outside our
// mappings (every offset is masked by the ring size, every cursor validated, every slot
// index checked against its segment), fault on them (sealed size, tmpfs only), block in
// a system call (link writes never block the writer, reads go through the netpoller), or
// hang us past a deadline; a violation in a slot aborts that stream with a
// [ProtocolError] (which also satisfies errors.Is(err, syscall.ECONNRESET)), and a
// violation on the link ends the link and fails its streams. It can feed us arbitrary
// data, which it could do over TCP too, and it can refuse to read or to wake us, which
// looks like an idle peer: deadlines apply. It can write our poller word, which we never
// read back: it only decides whether the peer wakes us. What its own poller word says
// only decides whether we wake it: a lying "awake" stalls its own streams (until their
// deadlines), a new "asleep" on every load costs us one WAKE per publish to a waiting
// stream of its, as many as without a poller. An owner that lies about its window costs us
// no more: a window that shrinks is a violation, one that stays looks like a peer that
// does not read, and a window beyond the pages it populated only makes us fault the
// missing pages of its memfd ourselves, charged to us, at most the ring size we accepted
// and counted against our cap on peer memory (a producer that writes beyond its window does
// the same to itself, and fails the stream). What it can do costs its own link only:
// slots are per link, so another process's streams never share a slot or a segment with
// it. Memory is bounded per process by [SetMemoryLimit], for own memory and the peer
// memory we may touch apart.
package shm
