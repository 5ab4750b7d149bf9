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

	mu       sync.Mutex
	negative map[netip.AddrPort]time.Time // guarded by mu: destination → expiry
}

// DefaultPolicy is the Policy used when a [Config] has none: no rules, so SMC is
// offered to destinations on this host and by every listener.
var DefaultPolicy = NewPolicy(Rules{})

// NewPolicy returns a Policy with the given rules.
func NewPolicy(r Rules) *Policy {
	p := &Policy{negative: make(map[netip.AddrPort]time.Time)}
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
	p.mu.Lock()
	clear(p.negative)
	p.mu.Unlock()
}

// declined reports whether dst is in the negative cache.
func (p *Policy) declined(dst netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.negative[dst]
	if !ok {
		return false
	}
	if time.Now().After(exp) {
		delete(p.negative, dst)
		return false
	}
	return true
}

// remember puts dst in the negative cache. When the cache is full it first drops
// expired entries, then arbitrary ones.
func (p *Policy) remember(dst netip.AddrPort) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.negative[dst]; !ok && len(p.negative) >= negativeCacheSize {
		for k, exp := range p.negative {
			if now.After(exp) {
				delete(p.negative, k)
			}
		}
		for k := range p.negative {
			if len(p.negative) < negativeCacheSize {
				break
			}
			delete(p.negative, k)
		}
	}
	p.negative[dst] = now.Add(negativeTTL)
}

// localAddrs caches this host's interface addresses; they are re-read at most
// once per localAddrsTTL, on demand.
var localAddrs struct {
	mu      sync.Mutex
	set     map[netip.Addr]struct{} // guarded by mu
	expires time.Time               // guarded by mu
}

const localAddrsTTL = 5 * time.Second

// isLocalAddr reports whether a is a loopback, unspecified or own address of this host.
func isLocalAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	localAddrs.mu.Lock()
	defer localAddrs.mu.Unlock()
	if now := time.Now(); now.After(localAddrs.expires) {
		set := make(map[netip.Addr]struct{})
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range addrs {
				if n, ok := ia.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok {
						set[ip.Unmap()] = struct{}{}
					}
				}
			}
		}
		localAddrs.set, localAddrs.expires = set, now.Add(localAddrsTTL)
	}
	_, ok := localAddrs.set[a]
	return ok
}
