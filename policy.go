package smc

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// A Rule matches connections by address and port and says whether SMC is offered
// to them.
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
// offered SMC again for negativeTTL; at most negativeCacheSize destinations are kept.
const (
	negativeTTL       = 5 * time.Minute
	negativeCacheSize = 4096
)

// A Policy decides per connection whether SMC is offered, and remembers
// destinations that did not answer the offer so that repeated dials to a plain-TCP
// server stop paying for it. Its rules can be replaced at any time with
// [Policy.Set]; connections already made are not affected. A Policy is safe for
// concurrent use; the zero value is not usable, use [NewPolicy].
type Policy struct {
	rules atomic.Pointer[Rules]

	// negative maps a destination, as the canonical "ip:port" string of its
	// unmapped address, to its expiry (monoNow). Every dial to a literal address
	// looks its string up here before anything else, so that a dial to a
	// remembered plain server parses nothing. With the caches as cold as a TCP
	// connect leaves them, parsing the address and a sync.Map keyed by
	// netip.AddrPort made such a dial 2.0 us slower than net.Dialer's; this
	// lookup makes it 0.8 us (BenchmarkDialCost, A/A control 0.2-0.3 us).
	// Writes are rare: once per plain destination per negativeTTL.
	negMu    sync.RWMutex
	negative map[string]int64
}

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
	r := *p.rules.Load()
	r.Dial = append([]Rule(nil), r.Dial...)
	r.Listen = append([]Rule(nil), r.Listen...)
	return r
}

// OfferDial reports whether SMC is offered to dst: by the first matching dial
// rule, else only when dst is on this host; and never while dst is in the negative
// cache.
func (p *Policy) OfferDial(dst netip.AddrPort) bool {
	offer, matched := false, false
	for _, r := range p.rules.Load().Dial {
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
	for _, r := range p.rules.Load().Listen {
		if r.matches(addr) {
			return r.Offer
		}
	}
	return true
}

// ForgetDeclined empties the negative cache.
func (p *Policy) ForgetDeclined() {
	p.negMu.Lock()
	clear(p.negative)
	p.negMu.Unlock()
}

// declinedAddress reports whether address, as a dial was given it, is a
// destination in the negative cache. It needs no parsing: the cache's keys are
// the canonical form, which is how addresses are nearly always written (and what
// net.Addr.String gives); other forms are found once parsed, by declined.
func (p *Policy) declinedAddress(address string) bool {
	p.negMu.RLock()
	exp, ok := p.negative[address]
	p.negMu.RUnlock()
	return ok && monoNow() <= exp
}

// declined reports whether dst is in the negative cache.
func (p *Policy) declined(dst netip.AddrPort) bool {
	var buf [len("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")]byte
	key := negativeKey(buf[:0], dst)
	p.negMu.RLock()
	exp, ok := p.negative[string(key)] // no allocation: the compiler looks up the bytes
	p.negMu.RUnlock()
	return ok && monoNow() <= exp
}

// negativeKey appends the negative cache's key for dst: its address unmapped, in
// the canonical "ip:port" form of netip.AddrPort.String.
func negativeKey(b []byte, dst netip.AddrPort) []byte {
	return netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()).AppendTo(b)
}

// remember puts dst in the negative cache. When the cache is full it drops expired
// entries, then arbitrary ones, down to seven eighths of its bound, so that a full
// cache is scanned once per eighth of its size rather than once per insert.
func (p *Policy) remember(dst netip.AddrPort) {
	key := string(negativeKey(nil, dst))
	now := monoNow()
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if p.negative == nil {
		p.negative = make(map[string]int64)
	}
	p.negative[key] = now + int64(negativeTTL)
	if len(p.negative) <= negativeCacheSize {
		return
	}
	const target = negativeCacheSize - negativeCacheSize/8
	for _, expiredOnly := range []bool{true, false} {
		for k, exp := range p.negative { // map order: arbitrary
			if len(p.negative) <= target {
				return
			}
			if k != key && (!expiredOnly || now > exp) {
				delete(p.negative, k)
			}
		}
	}
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow is the monotonic clock in nanoseconds, for the expiry times of the
// caches that every dial consults: it reads one clock, where time.Now reads two
// (the wall clock too), which was a third of the dial path's own cost here.
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
