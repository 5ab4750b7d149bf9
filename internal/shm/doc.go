// Package shm is smc's same-host data path: a full-duplex byte stream between two
// processes through shared memory, the user-space counterpart of Linux SMC-D over
// loopback-ism. The root package runs the CLC handshake on the TCP connection; once both
// sides have agreed, the server calls [Endpoint.Offer] and puts the offer's token, its
// ring size and the endpoint's ID in the CLC Accept, and the client calls [Connect] with
// them. Both get a [Stream] with TCP semantics.
//
// # DMBs
//
// Each side owns the buffer it receives into, its DMB: a memfd sealed with
// F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL, which the peer maps (MAP_SHARED) and writes
// into. Before mapping a memfd it received, a side checks that it lives on tmpfs (not
// hugetlbfs, whose faults can SIGBUS when the pool is empty), carries exactly those seals
// (F_SEAL_EXEC tolerated), is open read-write and has exactly the announced size. Since
// its size can never change, no access within it can fault. The memfds are closed as
// soon as they are mapped.
//
// A DMB is HeaderSize (4096) bytes of control area followed by the ring, a power of two
// between MinRingSize and MaxRingSize. The control area holds two 128-byte lines, each
// written by one side only (128 bytes apart, so that the two writers never share a cache
// line nor the adjacent-line prefetch pair):
//
//	offset 0    producer line, written by the peer (the producer into this ring)
//	    0  u64  producer cursor: bytes written into the ring, ever
//	    8  u32  producer flags: done writing | closed | abort
//	   12  u32  producer sleep: 0, or the sequence number of the writer's announced sleep
//	offset 128  consumer line, written by the owner (the consumer of this ring)
//	  128  u64  consumer cursor: bytes consumed, ever
//	  136  u32  consumer flags: done reading | closed | abort
//	  140  u32  consumer sleep: 0, or the sequence number of the reader's announced sleep
//	offset 4096 ring
//
// So one direction of the stream lives entirely in the receiver's DMB, unlike SMC-D, whose
// consumer cursor travels in a CDC header written into the other DMB; with both DMBs
// mapped by both sides the two are equivalent, and this way each direction's words sit in
// one place. Words are in host byte order: both sides are on one host.
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
// The producer copies data into the ring with ordinary stores, then stores the producer
// cursor atomically; the consumer loads the cursor atomically, then copies the data out,
// then stores the consumer cursor atomically, after which the producer may overwrite
// those bytes. Go's sync/atomic operations are sequentially consistent (XCHG on amd64,
// release/acquire instructions on arm64), which is what makes "data before cursor" and
// "read before release" hold between processes too. Flags are loaded before the cursor
// beside them: the producer stores its last cursor before setting "done writing", so a
// reader that sees the flag then loads the final cursor. A side never reads back a word it
// writes (the peer can overwrite any word in either DMB); its own cursors and flags are
// kept in private memory and only published.
//
// A ring's pages are allocated and mapped as data first passes. Past a ring's first 64
// KiB, each side maps it 512 KiB ahead of the data with one madvise(MADV_POPULATE_*)
// rather than one page fault per page, which a virtual machine makes expensive; after
// the first lap there is nothing left to map.
//
// # Wake-ups
//
// A side waiting for data (or for space) first polls the other side's cursor for a
// bounded time (DefaultSpin, see [SetSpin]), yielding with runtime.Gosched every few polls
// when the goroutine it waits for may need its P (GOMAXPROCS=1, or an in-process peer)
// or when its last spin ended in a park, and only now and then otherwise. At most
// max(1, GOMAXPROCS-1) goroutines of a process spin at once; the rest park straight away.
// Spinning pays only when it outlasts a kernel wake-up (20+ µs on a small VM, see
// reference/numbers.md); parking on every message costs that wake-up on every message.
// A waiter whose last 4 spins all ended in a park spins an eighth of the budget (a full
// one on every 8th wait) until a spin succeeds again, so a peer with think time does not
// cost a full spin per message.
//
// To park, a waiter announces its sleep by storing a new sequence number in its sleep
// word, rechecks the cursor and flags, and only then blocks. A producer stores its cursor
// and then loads the reader's sleep word; a consumer stores its cursor and then loads the
// writer's sleep word. Both pairs are store-then-load with sequentially consistent
// atomics (Dekker's pattern): either the waiter's recheck sees the new cursor, or the
// other side sees the announcement and sends a wake-up, once per announced sleep. So no
// wake-up is lost, none is sent while the peer is busy, and a consumer wakes a blocked
// writer only once a quarter of the ring is free.
//
// A wake-up is one byte sent with MSG_DONTWAIT on the Unix seqpacket socket over which the
// memfds were exchanged, which stays open for the stream's life. The waiting Read or Write
// itself reads it, parked in the netpoller, so a wake-up costs the receiver one thread
// wake-up; waiting goroutines never hold an OS thread, and an idle stream has no goroutine
// and costs no CPU. When a Read and a Write of one stream wait at once, one of them reads
// the socket and kicks the other through a channel on every wake-up.
// Eventfds were avoided on purpose: a peer holding a dup of our eventfd shares its file
// status flags and could clear O_NONBLOCK, turning our netpoller reads into blocking ones.
// A wake-up is dropped if the peer's socket buffer is full, which is safe because every
// wake-up read makes both of the peer's waiters recheck. When SO_PEERCRED shows that the
// peer is this very process, the two streams find each other (by their memfds' inode
// numbers) and wake-ups go straight to the peer's wait channels, with no system call.
//
// # Liveness and close
//
// The same socket is the liveness signal: when the peer process dies, the kernel closes its
// end, and a Read or Write waiting on it reads EOF at once (one that does not need to wait,
// like a TCP write to a dead peer, succeeds). EOF without the peer's "closed" flag
// published before it (or "done writing", for our reads) means the peer died: blocked and
// later calls fail with a reset. Close publishes the flags, then closes the socket, then
// unmaps both DMBs once no Read or Write is inside them. The root package can also call
// [Stream.Abort] when its TCP connection reports a reset.
//
// # Threat model
//
// The peer is another process on the same host that passed the CLC handshake; it may be
// buggy or hostile. It can write anything, at any time, into both DMBs and send anything
// on the socket. It cannot make us read or write outside our mappings (every offset is
// masked by the ring size, every cursor validated), fault on them (sealed size, tmpfs
// only), block in a system call (we send with MSG_DONTWAIT and read through the
// netpoller), or hang us past a deadline; a violation aborts that stream with a
// [ProtocolError], which also satisfies errors.Is(err, syscall.ECONNRESET). It can feed us
// arbitrary data, which it could do over TCP too, and it can refuse to read or to wake us,
// which looks like an idle peer: deadlines apply. Only a client presenting an offer's
// one-time random token (sent inside the CLC Accept on the peer's TCP connection) gets an
// answer from the endpoint; a message that fails validation is dropped with its
// descriptors before the token is looked at. Memory is bounded per process by
// [SetMemoryLimit].
package shm
