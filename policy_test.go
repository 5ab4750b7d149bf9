package smc

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestPolicyDial(t *testing.T) {
	ap := netip.MustParseAddrPort
	p := NewPolicy(Rules{Dial: []Rule{
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Port: 443, Offer: true},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Offer: false},
		{Port: 6379, Offer: true},
		{Prefix: netip.MustParsePrefix("127.0.0.2/32"), Offer: false},
	}})
	for _, tc := range []struct {
		dst  netip.AddrPort
		want bool
	}{
		{ap("10.1.2.3:443"), true},          // first rule
		{ap("10.1.2.3:80"), false},          // second rule: the prefix without port
		{ap("[::ffff:10.1.2.3]:443"), true}, // IPv4-mapped matches IPv4 prefix
		{ap("10.9.9.9:6379"), false},        // second rule wins over the third
		{ap("192.0.2.1:6379"), true},        // port-only rule
		{ap("127.0.0.2:80"), false},         // explicit rule overrides the local default
		{ap("127.0.0.1:80"), true},          // no rule: loopback is local
		{ap("[::1]:80"), true},              // no rule: IPv6 loopback
		{ap("0.0.0.0:80"), true},            // unspecified connects to this host
		{ap("192.0.2.1:80"), false},         // no rule: not on this host
		{ap("[2001:db8::1]:80"), false},     // no rule: not on this host
	} {
		if got := p.OfferDial(tc.dst); got != tc.want {
			t.Errorf("OfferDial(%v) = %v, want %v", tc.dst, got, tc.want)
		}
	}
}

func TestPolicyListen(t *testing.T) {
	p := NewPolicy(Rules{Listen: []Rule{{Port: 8080, Offer: false}}})
	if p.OfferListen(netip.MustParseAddrPort("0.0.0.0:8080")) {
		t.Error("listener on 8080 offered SMC despite the rule")
	}
	if !p.OfferListen(netip.MustParseAddrPort("0.0.0.0:8081")) {
		t.Error("listener without a matching rule did not offer SMC")
	}
	if !offerListenAddress(p, ":8081") || offerListenAddress(p, ":8080") || offerListenAddress(p, "[::]:http-alt") {
		t.Error("offerListenAddress does not apply the rules to unresolved addresses")
	}
}

// TestPolicySetAtRunTime: Set replaces the rules for later decisions, and Rules
// returns a copy the caller cannot use to change the policy.
func TestPolicySetAtRunTime(t *testing.T) {
	dst := netip.MustParseAddrPort("192.0.2.7:9000")
	p := NewPolicy(Rules{})
	if p.OfferDial(dst) {
		t.Fatal("remote destination offered by default")
	}
	rules := []Rule{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Offer: true}}
	p.Set(Rules{Dial: rules})
	rules[0].Offer = false // the policy holds its own copy
	if !p.OfferDial(dst) {
		t.Fatal("Set did not take effect")
	}
	got := p.Rules()
	got.Dial[0].Offer = false
	if !p.OfferDial(dst) {
		t.Fatal("changing the result of Rules changed the policy")
	}
}

func TestNegativeCache(t *testing.T) {
	p := NewPolicy(Rules{})
	dst := netip.MustParseAddrPort("127.0.0.1:5000")
	if !p.OfferDial(dst) {
		t.Fatal("loopback not offered")
	}
	p.remember(dst)
	if p.OfferDial(dst) {
		t.Fatal("destination in the negative cache still offered")
	}
	if !p.OfferDial(netip.MustParseAddrPort("127.0.0.1:5001")) {
		t.Fatal("negative cache entry covers another port")
	}
	// A remembered destination is refused however the dial writes it; a host name
	// is left to the resolved address.
	for _, a := range []string{"127.0.0.1:5000", "[::ffff:127.0.0.1]:5000", "[::ffff:7f00:1]:5000"} {
		if p.offerLiteral(a) {
			t.Errorf("dial to %q offered SMC, but 127.0.0.1:5000 is in the negative cache", a)
		}
	}
	if p.OfferDial(netip.MustParseAddrPort("[::ffff:127.0.0.1]:5000")) {
		t.Error("the IPv4-mapped form of a remembered destination is offered SMC")
	}
	if !p.offerLiteral("localhost:5000") || !p.offerLiteral("127.0.0.1:5001") {
		t.Error("a host name or another port was refused before resolution")
	}
	// Expired entries are forgotten.
	e := *p.negative.Load()[negativeSlot(dst.String())].Load()
	e.expires = monoNow() - int64(time.Second)
	p.negative.Load()[negativeSlot(dst.String())].Store(&e)
	if !p.OfferDial(dst) {
		t.Fatal("expired negative entry still applies")
	}
	// Filling the cache forgets destinations, never invents them: what it refuses
	// was remembered, and the last one remembered is refused.
	for i := range 2 * negativeCacheSize {
		p.remember(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(i)))
	}
	if p.offerLiteral(fmt.Sprintf("127.0.0.1:%d", 2*negativeCacheSize-1)) {
		t.Error("the destination remembered last is offered SMC")
	}
	refused := 0
	for port := range 3 * negativeCacheSize {
		if !p.offerLiteral(fmt.Sprintf("127.0.0.1:%d", port)) {
			if port >= 2*negativeCacheSize {
				t.Fatalf("127.0.0.1:%d refused but never remembered", port)
			}
			refused++
		}
	}
	if refused < negativeCacheSize/2 || refused > negativeCacheSize {
		t.Errorf("%d of %d remembered destinations refused; the cache has %d slots", refused, 2*negativeCacheSize, negativeCacheSize)
	}
	p.ForgetDeclined()
	if !p.OfferDial(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), negativeCacheSize+99)) {
		t.Fatal("ForgetDeclined left entries")
	}
}

func TestConfigDefaults(t *testing.T) {
	var nilConfig *Config
	if nilConfig.bufferSize() != DefaultBufferSize || nilConfig.handshakeTimeout() != DefaultHandshakeTimeout ||
		nilConfig.maxHandshakes() != DefaultMaxHandshakes || nilConfig.policy() != DefaultPolicy {
		t.Fatal("nil Config does not give the defaults")
	}
	c := &Config{BufferSize: 100 << 10}
	if got := c.bufferSize(); got != 128<<10 {
		t.Fatalf("BufferSize 100 KiB rounds to %d, want 128 KiB", got)
	}
	c2 := c.Clone()
	c2.BufferSize = 1
	if c.BufferSize != 100<<10 {
		t.Fatal("Clone shares fields with the original")
	}
	if nilConfig.Clone() == nil {
		t.Fatal("Clone of nil returned nil")
	}
}

// TestNegativeCacheConcurrent: concurrent dials that remember and look up
// destinations leave every entry whole and in its slot (and race-free under -race).
func TestNegativeCacheConcurrent(t *testing.T) {
	p := NewPolicy(Rules{})
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2 * negativeCacheSize {
				dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(g*10000+i))
				p.remember(dst)
				p.OfferDial(dst)
			}
		}()
	}
	for range 8 {
		<-done
	}
	// Every entry sits in the slot its key hashes to.
	for i := range p.negative.Load() {
		if e := p.negative.Load()[i].Load(); e != nil && negativeSlot(string(e.key[:e.n])) != uint32(i) {
			t.Fatalf("slot %d holds %q, which belongs in slot %d", i, e.key[:e.n], negativeSlot(string(e.key[:e.n])))
		}
	}
}

// BenchmarkOfferDial measures the per-dial policy decision under parallel dials,
// the steady state of an smc.Dialer talking to a remembered plain server.
func BenchmarkOfferDial(b *testing.B) {
	p := NewPolicy(Rules{})
	dst := netip.MustParseAddrPort("127.0.0.1:80")
	p.remember(dst)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p.OfferDial(dst) {
				b.Fatal("remembered destination offered")
			}
		}
	})
}

// TestNegativeCacheBackoff: a destination is kept out for negativeMinTTL after its
// first unanswered offer, twice as long after each further one, never longer than
// negativeTTL, and from the start again once it answered for negativeTTL.
func TestNegativeCacheBackoff(t *testing.T) {
	p := NewPolicy(Rules{})
	dst := netip.MustParseAddrPort("127.0.0.1:7")
	ttl := func() time.Duration {
		e := p.negative.Load()[negativeSlot(dst.String())].Load()
		return time.Duration(e.expires - monoNow())
	}
	want := negativeMinTTL
	for i := range 12 {
		p.remember(dst)
		if got := ttl(); got > want || got < want-time.Second {
			t.Fatalf("miss %d: kept out for %v, want %v", i+1, got, want)
		}
		want = min(2*want, negativeTTL)
	}
	// An entry that expired longer than negativeTTL ago starts over.
	e := p.negative.Load()[negativeSlot(dst.String())].Load()
	old := *e
	old.expires = monoNow() - int64(negativeTTL) - 1
	p.negative.Load()[negativeSlot(dst.String())].Store(&old)
	p.remember(dst)
	if got := ttl(); got > negativeMinTTL {
		t.Errorf("after a long quiet time: kept out for %v, want %v", got, negativeMinTTL)
	}
}
