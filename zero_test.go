package smc

import (
	"context"
	"errors"
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// zeroValueTests checks each exported type's zero value: that it is usable as its
// documentation says, or, for a type whose zero value is documented as invalid, that
// the documentation says so.
var zeroValueTests = map[string]func(t *testing.T, typeDoc string){
	"Dialer": func(t *testing.T, _ string) {
		var lc ListenConfig
		var d Dialer
		dialPair(t, &lc, &d)
	},
	"ListenConfig": func(t *testing.T, _ string) {
		var lc ListenConfig
		dialPair(t, &lc, &Dialer{})
	},
	"Config": func(t *testing.T, _ string) {
		var c Config
		if c.bufferSize() != DefaultBufferSize || c.handshakeTimeout() != DefaultHandshakeTimeout ||
			c.maxHandshakes() != DefaultMaxHandshakes || c.policy() != DefaultPolicy ||
			c.endpointDir() != "" || c.logger() != nil {
			t.Fatal("the zero Config does not give the defaults")
		}
		dialPair(t, &ListenConfig{Config: &Config{}}, &Dialer{Config: &Config{}})
	},
	"Policy": func(t *testing.T, _ string) {
		var p Policy
		ap := netip.MustParseAddrPort
		if !p.OfferDial(ap("127.0.0.1:80")) || p.OfferDial(ap("192.0.2.1:80")) || !p.OfferListen(ap("0.0.0.0:80")) {
			t.Fatal("the zero Policy does not decide as DefaultPolicy")
		}
		if r := p.Rules(); r.Dial != nil || r.Listen != nil {
			t.Fatalf("the zero Policy has rules %+v", r)
		}
		p.remember(ap("127.0.0.1:80"))
		if p.OfferDial(ap("127.0.0.1:80")) || DefaultPolicy.declined(ap("127.0.0.1:80")) {
			t.Fatal("the zero Policy has no negative cache of its own")
		}
		p.ForgetDeclined()
		// In use by a dialer and a listener, which panicked before it worked.
		dialPair(t, &ListenConfig{Config: &Config{Policy: new(Policy)}}, &Dialer{Config: &Config{Policy: new(Policy)}})
		p.Set(Rules{Dial: []Rule{{Offer: false}}})
		if p.OfferDial(ap("127.0.0.1:81")) {
			t.Fatal("Set on a zero Policy did not take effect")
		}
	},
	"Rule": func(t *testing.T, _ string) {
		p := NewPolicy(Rules{Dial: []Rule{{}}, Listen: []Rule{{}}})
		for _, a := range []string{"127.0.0.1:80", "[::1]:443", "192.0.2.1:1"} {
			if p.OfferDial(netip.MustParseAddrPort(a)) || p.OfferListen(netip.MustParseAddrPort(a)) {
				t.Fatalf("the zero Rule offers SMC to %s", a)
			}
		}
	},
	"Rules": func(t *testing.T, _ string) {
		p := NewPolicy(Rules{})
		ap := netip.MustParseAddrPort
		if !p.OfferDial(ap("127.0.0.1:80")) || p.OfferDial(ap("192.0.2.1:80")) || !p.OfferListen(ap("192.0.2.1:80")) {
			t.Fatal("the zero Rules do not give the defaults")
		}
	},
	"Conn": func(t *testing.T, typeDoc string) {
		if !strings.Contains(typeDoc, "the zero Conn is not usable") {
			t.Fatalf("Conn's documentation does not say its zero value is invalid:\n%s", typeDoc)
		}
	},
	"ConnectionState": func(t *testing.T, _ string) {
		var s ConnectionState
		if s.Mode != ModeTCP || s.Fallback != ReasonNone || s.HandshakeComplete {
			t.Fatalf("zero ConnectionState %+v", s)
		}
	},
	"Mode": func(t *testing.T, _ string) {
		var m Mode
		if m != ModeTCP || m.String() != "TCP" {
			t.Fatalf("zero Mode is %v", m)
		}
	},
	"Reason": func(t *testing.T, _ string) {
		var r Reason
		if r != ReasonNone || r.String() != "NONE" || r.Local() {
			t.Fatalf("zero Reason is %v", r)
		}
	},
	"Statistics": func(t *testing.T, _ string) {
		var s Statistics
		if s.Client.Offered != 0 || s.Server.Fallbacks[ReasonPeerDecl] != 0 || s.HandshakesInFlight != 0 {
			t.Fatalf("zero Statistics count %+v", s)
		}
	},
	"SideStatistics": func(t *testing.T, _ string) {
		var s SideStatistics
		if s.Offered != 0 || s.Fallbacks[ReasonMaxDMB] != 0 || len(s.PeerDeclines) != 0 {
			t.Fatalf("zero SideStatistics count %+v", s)
		}
	},
	"ConnInfo": func(t *testing.T, _ string) {
		var i ConnInfo
		if i.State.Mode != ModeTCP || i.State.HandshakeComplete || i.BytesSent != 0 || i.Link != (LinkInfo{}) {
			t.Fatalf("zero ConnInfo %+v", i)
		}
	},
	"LinkInfo": func(t *testing.T, _ string) {
		if (LinkInfo{}).ID != 0 {
			t.Fatal("the zero LinkInfo names a link")
		}
	},
	"DeclineError": func(t *testing.T, _ string) {
		var e DeclineError
		var err error = &e
		var de *DeclineError
		if err.Error() != "smc: handshake declined: NONE" || errors.Unwrap(err) != nil || e.Timeout() || !errors.As(err, &de) {
			t.Fatalf("zero DeclineError: %q", err.Error())
		}
	},
}

// TestZeroValues: every exported type documents what its zero value is, and passes
// its check in zeroValueTests; a new exported type fails until it has one.
func TestZeroValues(t *testing.T) {
	for _, typ := range exportedTypes(t) {
		t.Run(typ.Name, func(t *testing.T) {
			if !strings.Contains(strings.ToLower(typ.Doc), "zero") {
				t.Errorf("%s's documentation does not say what its zero value is:\n%s", typ.Name, typ.Doc)
			}
			check, ok := zeroValueTests[typ.Name]
			if !ok {
				t.Fatalf("no zero-value check for %s in zeroValueTests", typ.Name)
			}
			check(t, typ.Doc)
		})
	}
}

// exportedTypes returns the documentation of the package's exported types.
func exportedTypes(t *testing.T) []*doc.Type {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	p, err := doc.NewFromFiles(fset, files, pkg.ImportPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Types) == 0 {
		t.Fatal("no exported types found")
	}
	return p.Types
}

// dialPair connects d to a listener made by lc, both maybe zero, and moves a line
// each way.
func dialPair(t *testing.T, lc *ListenConfig, d *Dialer) {
	t.Helper()
	c, s := pair(t,
		func() (net.Listener, error) { return lc.Listen(context.Background(), "tcp", "127.0.0.1:0") },
		func(a string) (net.Conn, error) { return d.Dial("tcp", a) })
	defer c.Close()
	defer s.Close()
	exchange(t, c, s, "request\n")
	exchange(t, s, c, "response\n")
}
