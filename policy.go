package smc

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// A Rule matches connections by address and port and says whether SMC is offered
// to them. The zero Rule covers every address and port and does not offer SMC.
type Rule struct {
	// Prefix is the address range the rule covers; the zero Prefix covers every
	// address. IPv4-mapped IPv6 addresses match IPv4 prefixes.
	Prefix netip.Prefix
	// Port is the port the rule covers; zero covers every port.
	Port uint16
	// Offer reports whether SMC is offered to connections the rule covers.
	Offer bool
}

func (r Rule) matches(ap netip.AddrPort) bool {
	if r.Port != 0 && r.Port != ap.Port() {
		return false
	}
	if !r.Prefix.IsValid() {
		return true
	}
	return r.Prefix.Contains(ap.Addr().Unmap())
}

// Rules are the contents of a [Policy]. In each list the first matching rule wins.
// The zero Rules have no rules, so the defaults below apply to every connection.
type Rules struct {
	// Dial rules are matched against each destination a [Dialer] connects to.
	// When none matches, SMC is offered only to destinations on this host
	// (loopback and this host's own addresses): some servers on the Internet echo
	// unknown TCP options, and SMC is useful only on the same host anyway.
	Dial []Rule
	// Listen rules are matched against a listener's local address. When none
	// matches, the listener offers SMC (it answers only clients that asked).
	Listen []Rule
}

// Negative-cache bounds: a destination that did not answer the SMC offer is not
// offered SMC again for negativeMinTTL, doubled for each further offer it did not
// answer, up to negativeTTL; the cache has negativeCacheSize slots. The first miss
// is forgiven quickly because one plain answer proves little: a server under a SYN
// flood answers with SYN cookies, which never carry the option, and a plain server
// stops being offered SMC after a few offers anyway.
const (
	negativeMinTTL    = time.Second
	negativeTTL       = 5 * time.Minute
	negativeCacheSize = 4096 // a power of two
)

// A Policy decides per connection whether SMC is offered, and remembers
// destinations that did not answer the offer so that repeated dials to a plain-TCP
// server stop paying for it. Its rules can be replaced at any time with
// [Policy.Set]; connections already made are not affected. A Policy is safe for
// concurrent use and must not be copied after first use.
//
// The zero Policy has no rules: it decides as [DefaultPolicy] does, with a negative
// cache of its own. It is the same as NewPolicy(Rules{}).
type Policy struct {
	rules atomic.Pointer[Rules] // nil in the zero Policy: no rules

	// negative is the negative cache, allocated when the first destination is
	// remembered: a direct-mapped table of the destinations that did not answer
	// the offer, each in the slot its key hashes to. A destination whose slot
	// another one takes is forgotten early, which costs one more offer to it.
	//
	// Every dial to a literal address looks it up before anything else, so that
	// a dial to a remembered plain server parses nothing and writes no shared
	// memory, and touches few cache lines: with the caches as cold as a TCP
	// connect leaves them, that is what a lookup costs. Parsing the address and a
	// sync.Map keyed by netip.AddrPort cost such a dial more than this table does
	// (BenchmarkDialCost; the figures are in BENCHMARKS.md).
	negative atomic.Pointer[negativeTable]
}

// negativeTable is the negative cache's slots; nil slots are empty.
type negativeTable [negativeCacheSize]atomic.Pointer[negativeEntry]

// A negativeEntry is one remembered destination, never modified once stored.
type negativeEntry struct {
	expires int64 // monoNow
	misses  uint8 // offers not answered in a row, this one included
	n       uint8
	key     [maxKeyLen]byte // the canonical "ip:port" of the unmapped address
}

// maxKeyLen is the longest key: an IPv6 address and port. Longer ones (with a
// zone) are not cached.
const maxKeyLen = len("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")

// DefaultPolicy is the Policy used when a [Config] has none: no rules, so SMC is
// offered to destinations on this host and by every listener.
var DefaultPolicy = NewPolicy(Rules{})

// NewPolicy returns a Policy with the given rules.
func NewPolicy(r Rules) *Policy {
	p := new(Policy)
	p.Set(r)
	return p
}

// Set replaces the rules. Dials and listeners created afterwards use the new rules.
func (p *Policy) Set(r Rules) {
	r.Dial = append([]Rule(nil), r.Dial...)
	r.Listen = append([]Rule(nil), r.Listen...)
	p.rules.Store(&r)
}

// Rules returns a copy of the current rules.
func (p *Policy) Rules() Rules {
	r := *p.current()
	r.Dial = append([]Rule(nil), r.Dial...)
	r.Listen = append([]Rule(nil), r.Listen...)
	return r
}

// current returns the rules in force: none in a zero Policy.
func (p *Policy) current() *Rules {
	if r := p.rules.Load(); r != nil {
		return r
	}
	return &noRules
}

// noRules are the rules of a zero Policy; never modified.
var noRules Rules

// OfferDial reports whether SMC is offered to dst: by the first matching dial
// rule, else only when dst is on this host; and never while dst is in the negative
// cache.
func (p *Policy) OfferDial(dst netip.AddrPort) bool {
	offer, matched := false, false
	for _, r := range p.current().Dial {
		if r.matches(dst) {
			offer, matched = r.Offer, true
			break
		}
	}
	if !matched {
		offer = isLocalAddr(dst.Addr())
	}
	return offer && !p.declined(dst)
}

// offerLiteral reports whether a dial to address is offered SMC as far as can be
// told before it is resolved: false for a literal "ip:port" that OfferDial
// refuses, true otherwise (a host name is decided per resolved address). A
// destination in the negative cache is answered without parsing address.
func (p *Policy) offerLiteral(address string) bool {
	if p.declinedAddress(address) {
		return false
	}
	dst, err := netip.ParseAddrPort(address)
	return err != nil || p.OfferDial(dst)
}

// OfferListen reports whether a listener bound to addr offers SMC.
func (p *Policy) OfferListen(addr netip.AddrPort) bool {
	for _, r := range p.current().Listen {
		if r.matches(addr) {
			return r.Offer
		}
	}
	return true
}

// ForgetDeclined empties the negative cache.
func (p *Policy) ForgetDeclined() {
	if t := p.negative.Load(); t != nil {
		for i := range t {
			t[i].Store(nil)
		}
	}
}

// declinedAddress reports whether address, as a dial was given it, is a
// destination in the negative cache. It needs no parsing: the cache's keys are
// the canonical form, which is how addresses are nearly always written (and what
// net.Addr.String gives); other forms are found once parsed, by declined.
func (p *Policy) declinedAddress(address string) bool {
	t := p.negative.Load()
	if t == nil || len(address) > maxKeyLen {
		return false
	}
	e := t[negativeSlot(address)].Load()
	return e != nil && string(e.key[:e.n]) == address && monoNow() <= e.expires
}

// declined reports whether dst is in the negative cache.
func (p *Policy) declined(dst netip.AddrPort) bool {
	var buf [maxKeyLen]byte
	key := negativeKey(buf[:0], dst)
	return len(key) <= maxKeyLen && p.declinedAddress(string(key))
}

// negativeKey appends the negative cache's key for dst: its address unmapped, in
// the canonical "ip:port" form of netip.AddrPort.String.
func negativeKey(b []byte, dst netip.AddrPort) []byte {
	return netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()).AppendTo(b)
}

// negativeSlot is the slot of key: its FNV-1a hash, folded.
func negativeSlot(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return (h ^ h>>16) & (negativeCacheSize - 1)
}

// remember puts dst in the negative cache, in place of whatever its slot held. A
// destination whose previous entry expired less than negativeTTL ago missed again:
// it stays out twice as long as last time.
func (p *Policy) remember(dst netip.AddrPort) {
	now := monoNow()
	e := &negativeEntry{misses: 1}
	key := negativeKey(e.key[:0], dst)
	if len(key) > maxKeyLen {
		return // a long zone: such a destination is always offered
	}
	e.n = uint8(len(key))
	t := p.negative.Load()
	if t == nil {
		p.negative.CompareAndSwap(nil, new(negativeTable))
		t = p.negative.Load()
	}
	slot := &t[negativeSlot(string(key))]
	if prev := slot.Load(); prev != nil && string(prev.key[:prev.n]) == string(key) &&
		now-prev.expires < int64(negativeTTL) && prev.misses < 255 {
		e.misses = prev.misses + 1
	}
	ttl := negativeTTL
	if e.misses <= 20 && negativeMinTTL<<(e.misses-1) < negativeTTL {
		ttl = negativeMinTTL << (e.misses - 1)
	}
	e.expires = now + int64(ttl)
	slot.Store(e)
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow is the monotonic clock in nanoseconds, for the expiry times of the
// caches that every dial consults: it reads one clock, where time.Now reads two
// (the wall clock too), a difference BenchmarkDialCost shows (BENCHMARKS.md).
func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// localAddrs caches this host's interface addresses; they are re-read at most once
// per localAddrsTTL, on demand, by one goroutine while the others use the previous
// set.
var localAddrs struct {
	set       atomic.Pointer[localAddrSet]
	refreshMu sync.Mutex
}

type localAddrSet struct {
	addrs   map[netip.Addr]struct{}
	expires int64 // monoNow
}

const localAddrsTTL = 5 * time.Second

// isLocalAddr reports whether a is a loopback, unspecified or own address of this host.
func isLocalAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	set := localAddrs.set.Load()
	if set == nil || monoNow() > set.expires {
		set = refreshLocalAddrs(set)
	}
	_, ok := set.addrs[a]
	return ok
}

// refreshLocalAddrs re-reads the interface addresses unless another goroutine is
// already doing so and a previous set exists.
func refreshLocalAddrs(old *localAddrSet) *localAddrSet {
	if old != nil && !localAddrs.refreshMu.TryLock() {
		return old
	} else if old == nil {
		localAddrs.refreshMu.Lock()
	}
	defer localAddrs.refreshMu.Unlock()
	if cur := localAddrs.set.Load(); cur != old && cur != nil {
		return cur
	}
	set := &localAddrSet{addrs: make(map[netip.Addr]struct{}), expires: monoNow() + int64(localAddrsTTL)}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ia := range addrs {
			if n, ok := ia.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					set.addrs[ip.Unmap()] = struct{}{}
				}
			}
		}
	}
	localAddrs.set.Store(set)
	return set
}
