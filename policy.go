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

	// negative maps a destination (netip.AddrPort) to its expiry (int64 Unix
	// nanoseconds). It is read on every dial, by many goroutines at once, and
	// written rarely, so reads take no lock. negativeLen counts its entries;
	// evictMu serialises making room when it is full.
	negative    sync.Map
	negativeLen atomic.Int64
	evictMu     sync.Mutex
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
	p.negative.Range(func(k, _ any) bool {
		if _, ok := p.negative.LoadAndDelete(k); ok {
			p.negativeLen.Add(-1)
		}
		return true
	})
}

// declined reports whether dst is in the negative cache.
func (p *Policy) declined(dst netip.AddrPort) bool {
	v, ok := p.negative.Load(dst)
	if !ok {
		return false
	}
	if time.Now().UnixNano() > v.(int64) {
		if p.negative.CompareAndDelete(dst, v) {
			p.negativeLen.Add(-1)
		}
		return false
	}
	return true
}

// remember puts dst in the negative cache. When the cache is full it drops expired
// entries, then arbitrary ones, down to seven eighths of its bound.
func (p *Policy) remember(dst netip.AddrPort) {
	now := time.Now().UnixNano()
	if _, loaded := p.negative.Swap(dst, now+int64(negativeTTL)); loaded {
		return
	}
	if p.negativeLen.Add(1) <= negativeCacheSize {
		return
	}
	p.evictMu.Lock()
	defer p.evictMu.Unlock()
	// Make room for a batch of inserts, so that a full cache is scanned once per
	// eighth of its size rather than once per insert.
	const target = negativeCacheSize - negativeCacheSize/8
	drop := func(expiredOnly bool) {
		p.negative.Range(func(k, v any) bool {
			if p.negativeLen.Load() <= target {
				return false
			}
			if k != dst && (!expiredOnly || now > v.(int64)) && p.negative.CompareAndDelete(k, v) {
				p.negativeLen.Add(-1)
			}
			return true
		})
	}
	drop(true)
	drop(false)
}

// localAddrs caches this host's interface addresses; they are re-read at most once
// per localAddrsTTL, on demand, by one goroutine while the others use the previous
// set.
var localAddrs struct {
	set       atomic.Pointer[localAddrSet]
	refreshMu sync.Mutex
}

type localAddrSet struct {
	addrs   map[netip.Addr]struct{}
	expires time.Time
}

const localAddrsTTL = 5 * time.Second

// isLocalAddr reports whether a is a loopback, unspecified or own address of this host.
func isLocalAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	set := localAddrs.set.Load()
	if set == nil || time.Now().After(set.expires) {
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
	set := &localAddrSet{addrs: make(map[netip.Addr]struct{}), expires: time.Now().Add(localAddrsTTL)}
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
