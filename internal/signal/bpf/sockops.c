// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// The sock_ops program that announces SMC inside the TCP handshake, as Linux SMC
// does: the SMC experimental option (kind 254, length 6, ExID E2 D4 C3 D9; Linux
// include/net/tcp.h TCPOPT_SMC_MAGIC) goes into the SYN of a marked client socket,
// and into the SYN-ACK of a marked listener when the client's SYN carried it. The
// program records per connection what was sent and received; Go reads it back right
// after connect or accept. The package documentation (../doc.go) explains why the
// records never disagree with the wire; this file says how.
//
// Several instances of this program may run on one socket (processes of nested
// cgroups, or two processes that attached at once). Every decision an instance
// takes is either about a socket it owns (one its process marked in its own
// storage: clients and listeners) or a pure function of what is on the wire
// (SYN-ACKs and children of marked listeners), so that all instances agree and
// each keeps records consistent with the wire.
//
// Regenerate with `go generate ./...` (needs clang and libbpf-dev).

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

// Bits of a socket's word. Go sets MARK_MARKED; the program sets the others.
#define MARK_MARKED     (1 << 0) // Go: this socket offers SMC
#define RESULT_SENT     (1 << 1) // our SYN / SYN-ACK carried the option
#define RESULT_RECEIVED (1 << 2) // the peer's SYN-ACK / SYN carried it
#define RESULT_DONE     (1 << 3) // the ESTABLISHED callback ran: the result is final
#define RESULT_UNKNOWN  (1 << 4) // server: the child exists before its SYN-ACK (Fast Open)
#define RESULT_CONFLICT (1 << 5) // client: another program wrote the option into our SYN

// Counters; names in ../program_linux.go.
enum {
	CTR_SENT_SYN,
	CTR_SENT_SYNACK,
	CTR_RECEIVED_SYNACK,
	CTR_RECEIVED_SYN,
	CTR_COOKIE,
	CTR_PEER_UNKNOWN,
	CTR_ERR_RESERVE,
	CTR_ERR_STORE,
	CTR_ERR_RECORD,
	CTR_ERR_SAVE_SYN,
	CTR_ERR_LOAD,
	CTR_CACHE_POISONED,
	CTR_ERR_RESULT,
	CTR_SYNACK_PRESENT,
	CTR_CONFLICT_SYN,
	NUM_COUNTERS,
};

// The results cache (../results_linux.go): slot 0 is a header, slots 1..SLOT_COUNT
// hold the final words of recorded sockets, chosen by a hash of the 4-tuple.
#define SLOT_BITS   14
#define SLOT_COUNT  (1 << SLOT_BITS)
#define SLOT_HASH   0x9E3779B9u // Fibonacci hashing multiplier, 2^32/phi
#define CLAIM_TRIES 64

struct slot {
	__u32 seq;    // even when stable; a writer claims it odd with compare-and-swap
	__u32 flags;  // the socket's final word (header: non-zero = poisoned)
	__u64 netns;  // network namespace cookie (header: u32 layout, u32 live total)
	__u32 ports;  // local port << 16 | remote port, host order; 0 = empty
	__u32 live;   // sockets published in this slot and not yet closed
	__u32 remote[4]; // IPv6 or IPv4-mapped address (header: u64 time of the latest no-echo record)
	__u32 local[4];
	__u8 pad[8];
};

_Static_assert(sizeof(struct slot) == 64, "a results slot is 64 bytes");

// Header fields, as offsets into slot 0.
struct header {
	__u32 seq;
	__u32 poisoned;
	__u32 layout;
	__u32 live;      // the sum of every slot's live count
	__u64 noecho_at; // bpf_ktime_get_ns of the latest no-echo record, 0 if none yet
	__u8 pad[40];
};

_Static_assert(sizeof(struct header) == 64, "the header is one slot");

// A request whose SYN carried the option but one of whose SYN-ACKs could not carry
// it is recorded here, under the request's socket cookie (which its child inherits
// and which is never reused), so that its later SYN-ACKs do not echo either and its
// child reports "not sent". Nothing else is recorded per request: whether a SYN-ACK
// echoes is otherwise decided from the SYN alone, so a flood of SYNs costs no memory.
// NOECHO_MAX_AGE bounds how long after the latest record a child still looks here.
#define NOECHO_MAX_AGE (600ull * 1000000000ull)

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} smc_marks SEC(".maps");

// Words of server children, by socket cookie: preallocated, so that an insert and a
// delete per child cost no allocation (socket storage cloned into every child would).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 15);
	__type(key, __u64);
	__type(value, __u32);
} smc_children SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} smc_noecho SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NUM_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} smc_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SLOT_COUNT + 1);
	__type(key, __u32);
	__type(value, struct slot);
} smc_results SEC(".maps");

// Linux UAPI values not in the headers Debian's libbpf-dev and linux-libc-dev ship
// together everywhere.
#define SOL_TCP           6
#define TCP_SAVE_SYN      27
#define TCPHDR_SYN        0x02
#define TCPHDR_ACK        0x10
#define AF_INET6          10
#define TCP_CLOSE         7
#define ENOENT            2
#define EEXIST            17
#define ENOMSG            42

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&smc_counters, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

// The option, and the same 6 bytes as bpf_load_hdr_opt's search key.
struct option {
	__u8 kind, len, magic[4];
};

static __always_inline void put_option(struct option *o)
{
	o->kind = 254;
	o->len = 6;
	o->magic[0] = 0xE2;
	o->magic[1] = 0xD4;
	o->magic[2] = 0xC3;
	o->magic[3] = 0xD9;
}

// syn_option reports whether the SYN of this connection carried the option: the
// SYN at hand while the first SYN-ACK is written, the request's saved SYN while a
// SYN-ACK is retransmitted, the child's saved SYN once established. It returns 6
// when it did, -ENOMSG when it did not, -ENOENT when no SYN was saved.
static __always_inline long syn_option(struct bpf_sock_ops *skops)
{
	struct option o;
	put_option(&o);
	return bpf_load_hdr_opt(skops, &o, sizeof(o), BPF_LOAD_HDR_OPT_TCP_SYN);
}

// marked returns the word of a socket this instance's process marked, or NULL.
static __always_inline __u32 *marked(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return NULL;
	__u32 *w = bpf_sk_storage_get(&smc_marks, sk, 0, 0);
	if (!w || !(*w & MARK_MARKED))
		return NULL;
	return w;
}

static __always_inline void set_cb_flags(struct bpf_sock_ops *skops, __u32 set, __u32 clear)
{
	bpf_sock_ops_cb_flags_set(skops, (skops->bpf_sock_ops_cb_flags | set) & ~clear);
}

static __always_inline struct header *header(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&smc_results, &zero);
}

// noecho_recorded reports whether this request (or child) is recorded as not
// echoed. While no record was made for NOECHO_MAX_AGE, far beyond a request's life,
// none can be this one's: the common case costs one cache line, not a lookup.
static __always_inline int noecho_recorded(struct bpf_sock_ops *skops, __u64 *cookie)
{
	struct header *h = header();
	if (!h)
		return 0;
	__u64 at = h->noecho_at;
	if (at == 0 || (__s64)(bpf_ktime_get_ns() - at) > (__s64)NOECHO_MAX_AGE)
		return 0;
	*cookie = bpf_get_socket_cookie(skops);
	return bpf_map_lookup_elem(&smc_noecho, cookie) != NULL;
}

// record_noecho records that this request does not echo. The header learns the
// time first, so that a child that finds the time old knows no record is its own.
static __always_inline void record_noecho(struct bpf_sock_ops *skops)
{
	struct header *h = header();
	__u64 cookie = bpf_get_socket_cookie(skops);
	__u32 one = 1;
	if (!h) {
		count(CTR_ERR_RECORD);
		return;
	}
	h->noecho_at = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&smc_noecho, &cookie, &one, BPF_ANY))
		count(CTR_ERR_RECORD);
}

static __always_inline int store_option(struct bpf_sock_ops *skops)
{
	struct option o;
	put_option(&o);
	return bpf_store_hdr_opt(skops, &o, sizeof(o), 0);
}

// ctx reads a context field with a volatile load: clang must not merge loads of
// different fields on two branches into one load from a computed address, which
// the verifier refuses for the context.
#define ctx(field) (*(volatile __u32 *)&(field))

// The 4-tuple as the results cache keys it.
struct tuple {
	__u32 ports;
	__u32 remote_last, local_last; // the last 32-bit words of the addresses
};

static __always_inline void tuple_of(struct bpf_sock_ops *skops, struct tuple *t)
{
	__u32 rport = bpf_ntohs(skops->remote_port >> 16); // network order, upper half
	t->ports = skops->local_port << 16 | rport;
	// Every field is read, whatever the family, and the values chosen after.
	int v6 = ctx(skops->family) == AF_INET6;
	__u32 r4 = ctx(skops->remote_ip4), l4 = ctx(skops->local_ip4);
	__u32 r6 = ctx(skops->remote_ip6[3]), l6 = ctx(skops->local_ip6[3]);
	t->remote_last = v6 ? r6 : r4;
	t->local_last = v6 ? l6 : l4;
}

static __always_inline struct slot *slot_of(struct tuple *t)
{
	__u32 h = t->ports ^ t->remote_last ^ t->local_last;
	__u32 idx = ((h * SLOT_HASH) >> (32 - SLOT_BITS)) + 1;
	return bpf_map_lookup_elem(&smc_results, &idx);
}

// claim takes the slot's sequence lock: an even sequence moved to odd with
// compare-and-swap (another CPU holds a slot for a few dozen instructions).
static __always_inline int claim(struct slot *s)
{
	for (int i = 0; i < CLAIM_TRIES; i++) {
		__u32 seq = s->seq;
		if (seq & 1)
			continue;
		if (__sync_val_compare_and_swap(&s->seq, seq, seq + 1) == seq)
			return 1;
	}
	return 0;
}

// poison makes Go ask the kernel for every result from now on.
static __always_inline void poison(void)
{
	struct header *h = header();
	if (h)
		h->poisoned = 1;
	count(CTR_CACHE_POISONED);
}

// publish writes a recorded socket's final word into its results slot and counts it
// live there until it closes. A slot that cannot be claimed poisons the cache: Go
// reads "no live socket in this slot" as "no record" for an accepted socket, so no
// publication may be lost.
static __always_inline void publish(struct bpf_sock_ops *skops, __u32 word)
{
	struct tuple t;
	tuple_of(skops, &t);
	__u64 netns = bpf_get_netns_cookie(skops);
	struct slot *s = slot_of(&t);
	if (!s || !claim(s)) {
		poison();
		return;
	}
	s->live++;
	s->flags = word;
	s->netns = netns;
	s->ports = t.ports;
	// IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d). Every field is read, whatever the
	// family, and the values chosen after (see ctx).
	int v6 = ctx(skops->family) == AF_INET6;
	__u32 r[4], l[4];
	r[0] = ctx(skops->remote_ip6[0]);
	r[1] = ctx(skops->remote_ip6[1]);
	r[2] = ctx(skops->remote_ip6[2]);
	r[3] = ctx(skops->remote_ip6[3]);
	l[0] = ctx(skops->local_ip6[0]);
	l[1] = ctx(skops->local_ip6[1]);
	l[2] = ctx(skops->local_ip6[2]);
	l[3] = ctx(skops->local_ip6[3]);
	__u32 r4 = ctx(skops->remote_ip4), l4 = ctx(skops->local_ip4);
	s->remote[0] = v6 ? r[0] : 0;
	s->remote[1] = v6 ? r[1] : 0;
	s->remote[2] = v6 ? r[2] : bpf_htonl(0xffff);
	s->remote[3] = v6 ? r[3] : r4;
	s->local[0] = v6 ? l[0] : 0;
	s->local[1] = v6 ? l[1] : 0;
	s->local[2] = v6 ? l[2] : bpf_htonl(0xffff);
	s->local[3] = v6 ? l[3] : l4;
	__sync_fetch_and_add(&s->seq, 1);
	struct header *h = header();
	if (!h) {
		poison();
		return;
	}
	__sync_fetch_and_add(&h->live, 1);
}

// unpublish uncounts a closing socket and empties its slot if the slot still names
// it, so that no later socket with the same 4-tuple can read it.
static __always_inline void unpublish(struct bpf_sock_ops *skops)
{
	struct tuple t;
	tuple_of(skops, &t);
	struct slot *s = slot_of(&t);
	if (!s || !claim(s)) {
		poison();
		return;
	}
	if (s->live > 0) {
		s->live--;
		struct header *h = header();
		if (!h) {
			// The slot stays claimed, which readers take as "ask the kernel".
			poison();
			return;
		}
		__sync_fetch_and_add(&h->live, -1);
	}
	if (s->ports == t.ports)
		s->ports = 0;
	__sync_fetch_and_add(&s->seq, 1);
}

// TCP_CONNECT, before the SYN: a marked client asks for the header-option callbacks
// and forgets the result of an earlier attempt on this socket.
static __always_inline void tcp_connect(struct bpf_sock_ops *skops)
{
	__u32 *w = marked(skops);
	if (!w)
		return;
	*w = MARK_MARKED;
	set_cb_flags(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, 0);
}

// TCP_LISTEN: a marked listener saves its clients' SYNs and asks for the
// header-option callbacks; its children inherit both. A child's saved SYN is how it,
// and a retransmitted SYN-ACK of its request, learn whether the client announced
// SMC. A listener whose SYNs cannot be saved is not announced at all.
static __always_inline void tcp_listen(struct bpf_sock_ops *skops)
{
	__u32 *w = marked(skops);
	if (!w)
		return;
	int one = 1;
	if (bpf_setsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &one, sizeof(one))) {
		count(CTR_ERR_SAVE_SYN);
		return;
	}
	set_cb_flags(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, 0);
}

// SYN-ACKs run on the request socket, which has no storage: whether one echoes is a
// function of the request alone, the same for every instance of this program.
static __always_inline int synack_echoes(struct bpf_sock_ops *skops)
{
	if (skops->args[0] == BPF_WRITE_HDR_TCP_SYNACK_COOKIE)
		return 0; // a cookie SYN-ACK never echoes: its child has no saved SYN
	if (syn_option(skops) != 6)
		return 0;
	__u64 cookie;
	return !noecho_recorded(skops, &cookie);
}

static __always_inline void hdr_opt_len(struct bpf_sock_ops *skops)
{
	__u32 tcp_flags = skops->skb_tcp_flags;
	if (!(tcp_flags & TCPHDR_SYN))
		return;
	if (tcp_flags & TCPHDR_ACK) {
		if (skops->args[0] == BPF_WRITE_HDR_TCP_SYNACK_COOKIE) {
			if (syn_option(skops) == 6)
				count(CTR_COOKIE);
			return;
		}
		if (!synack_echoes(skops))
			return;
	} else if (!marked(skops)) {
		return;
	}
	// A failure here is settled when the option is written: another program
	// may have reserved space (all reservations form one pool).
	if (bpf_reserve_hdr_opt(skops, sizeof(struct option), 0))
		count(CTR_ERR_RESERVE);
}

static __always_inline void write_hdr_opt(struct bpf_sock_ops *skops)
{
	__u32 tcp_flags = skops->skb_tcp_flags;
	if (!(tcp_flags & TCPHDR_SYN))
		return;
	if (tcp_flags & TCPHDR_ACK) {
		if (!synack_echoes(skops))
			return;
		long ret = store_option(skops);
		if (ret == 0) {
			count(CTR_SENT_SYNACK);
		} else if (ret == -EEXIST) {
			// Written already, by another instance of this program (which
			// decides as this one does) or by someone else: on the wire.
			count(CTR_SYNACK_PRESENT);
		} else {
			// Not written: from now on this request never echoes, and its
			// child reports "not sent".
			count(CTR_ERR_STORE);
			record_noecho(skops);
		}
		return;
	}
	__u32 *w = marked(skops);
	if (!w)
		return;
	long ret = store_option(skops);
	if (ret == 0) {
		*w |= RESULT_SENT;
		count(CTR_SENT_SYN);
	} else if (ret == -EEXIST) {
		// Only this socket's owner writes into its SYN: another program wrote
		// the same option. Go treats the connection as plain.
		*w |= RESULT_SENT | RESULT_CONFLICT;
		count(CTR_CONFLICT_SYN);
	} else {
		count(CTR_ERR_STORE);
	}
}

// ACTIVE_ESTABLISHED: the socket's skb is the peer's SYN-ACK.
static __always_inline void active_established(struct bpf_sock_ops *skops)
{
	__u32 *w = marked(skops);
	if (!w)
		return;
	struct option o;
	put_option(&o);
	__u32 word = *w | RESULT_DONE;
	long ret = bpf_load_hdr_opt(skops, &o, sizeof(o), 0);
	if (ret == 6) {
		word |= RESULT_RECEIVED;
		count(CTR_RECEIVED_SYNACK);
	} else if (ret != -ENOMSG) {
		count(CTR_ERR_LOAD);
	}
	*w = word;
	publish(skops, word);
	set_cb_flags(skops, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

// saves_syn reports whether the socket has TCP_SAVE_SYN set: a child of a marked
// listener has, whether or not its SYN was saved.
static __always_inline int saves_syn(struct bpf_sock_ops *skops)
{
	int v = 0;
	return bpf_getsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &v, sizeof(v)) == 0 && v;
}

// PASSIVE_ESTABLISHED: a child of a marked listener has the header-option callbacks
// it inherited, or the STATE callback that an instance that ran before this one
// traded them for. It has no storage.
static __always_inline void passive_established(struct bpf_sock_ops *skops)
{
	__u32 cb = skops->bpf_sock_ops_cb_flags;
	if (!(cb & (BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG)))
		return;
	__u32 word = MARK_MARKED | RESULT_DONE;
	__u64 cookie = bpf_get_socket_cookie(skops);
	int fastopen = skops->skb_tcp_flags & TCPHDR_SYN;
	if (fastopen) {
		// Fast Open: the SYN-ACK has not been sent yet; this side cannot know.
		word |= RESULT_UNKNOWN;
		count(CTR_PEER_UNKNOWN);
	} else {
		long ret = syn_option(skops);
		if (ret != 6) {
			// A plain client (or a SYN cookie's child, whose SYN was not
			// saved): nothing to record, and "no record" is the answer. Only
			// a child of a marked listener (which saves SYNs) loses the
			// header-option callbacks: another program's children keep them.
			if (ret != -ENOMSG && ret != -ENOENT)
				count(CTR_ERR_LOAD);
			if (ret == -ENOMSG || saves_syn(skops))
				set_cb_flags(skops, 0, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
			return;
		}
		word |= RESULT_RECEIVED;
		__u64 key;
		if (noecho_recorded(skops, &key))
			bpf_map_delete_elem(&smc_noecho, &key);
		else
			word |= RESULT_SENT;
		count(CTR_RECEIVED_SYN);
	}
	// The word goes into the children map under the socket cookie or, when that
	// is full, into socket storage created for the child.
	if (bpf_map_update_elem(&smc_children, &cookie, &word, BPF_ANY)) {
		struct bpf_sock *sk = skops->sk;
		__u32 *w = sk ? bpf_sk_storage_get(&smc_marks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE) : NULL;
		if (w)
			*w = word;
		else
			count(CTR_ERR_RESULT);
	}
	publish(skops, word);
	if (fastopen)
		set_cb_flags(skops, BPF_SOCK_OPS_STATE_CB_FLAG, 0);
	else
		set_cb_flags(skops, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

// STATE: a socket this instance recorded closes (once: a close from TCP_CLOSE is
// ignored). Another instance's sockets have the callback too, but no word here.
static __always_inline void state_change(struct bpf_sock_ops *skops)
{
	if (skops->args[1] != TCP_CLOSE || skops->args[0] == TCP_CLOSE)
		return;
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return;
	__u32 *w = bpf_sk_storage_get(&smc_marks, sk, 0, 0);
	if (w) {
		if (!(*w & RESULT_DONE))
			return;
	} else {
		__u64 cookie = bpf_get_socket_cookie(skops);
		if (bpf_map_delete_elem(&smc_children, &cookie))
			return;
	}
	unpublish(skops);
}

SEC("sockops")
int smc_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		hdr_opt_len(skops);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		write_hdr_opt(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		active_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		passive_established(skops);
		break;
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		tcp_connect(skops);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		tcp_listen(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		state_change(skops);
		break;
	}
	return 1;
}
