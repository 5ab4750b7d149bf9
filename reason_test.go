package smc

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
	"github.com/smc-go/smc/internal/wire"
)

// TestReasonTable checks every exported Reason's value and printed name, written out
// independently of reason.go: Linux's SMC_CLC_DECL_* values and names, and the
// project's local codes.
func TestReasonTable(t *testing.T) {
	for _, tc := range []struct {
		r     Reason
		v     uint32
		name  string
		local bool
	}{
		{ReasonNone, 0, "NONE", false},
		{ReasonMem, 0x01010000, "MEM", false},
		{ReasonPeerNoSMC, 0x03010000, "PEERNOSMC", false},
		{ReasonNoSMCDev, 0x03030000, "NOSMCDEV", false},
		{ReasonNoSMCDDev, 0x03030001, "NOSMCDDEV", false},
		{ReasonNoV2Ext, 0x03030004, "NOV2EXT", false},
		{ReasonNoV2DExt, 0x03030005, "NOV2DEXT", false},
		{ReasonNoSMCD2Dev, 0x03030007, "NOSMCD2DEV", false},
		{ReasonNoUEID, 0x03030008, "NOUEID", false},
		{ReasonModeUnsupp, 0x03040000, "MODEUNSUPP", false},
		{ReasonVersMismatch, 0x030c0000, "VERSMISMAT", false},
		{ReasonMaxDMB, 0x030d0000, "MAX_DMB", false},
		{ReasonPeerDecl, 0x05000000, "PEERDECL", false},
		{ReasonIntErr, 0x09990000, "INTERR", false},
		{ReasonSignallingUnavailable, 0x7f000001, "SIGNALLING_UNAVAILABLE", true},
		{ReasonNotOffered, 0x7f000002, "NOT_OFFERED", true},
		{ReasonHandshakeLimit, 0x7f000003, "HANDSHAKE_LIMIT", true},
		{ReasonPeerNotCLC, 0x7f000004, "PEER_NOT_CLC", true},
		{ReasonSignallingConflict, 0x7f000005, "SIGNALLING_CONFLICT", true},
		{ReasonPeerUnreachable, 0x7f000006, "PEER_UNREACHABLE", true},
		{ReasonLinkSetup, 0x7f000007, "LINK_SETUP", true},
		// Codes a peer may send that have no constant here.
		{Reason(wire.CodeCnfErr), 0x03000000, "CNFERR", false},
		{Reason(0x0a0b0c0d), 0x0a0b0c0d, "0x0a0b0c0d", false},
	} {
		if uint32(tc.r) != tc.v || tc.r.String() != tc.name || tc.r.Local() != tc.local {
			t.Errorf("Reason %#08x %q local %v, want %#08x %q local %v",
				uint32(tc.r), tc.r.String(), tc.r.Local(), tc.v, tc.name, tc.local)
		}
	}
}

// TestReasonNamesGenerated: reason_string.go is what reason_gen.go writes from
// reason.go, so that a local reason added to reason.go has its name.
func TestReasonNamesGenerated(t *testing.T) {
	gotool := testenv.RequireTool(t, "go")
	want, err := exec.Command(gotool, "run", "reason_gen.go", "-o", "-").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go run reason_gen.go: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	got, err := os.ReadFile("reason_string.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reason_string.go is stale: run go generate\nwant:\n%s", want)
	}
}

// TestDeclineErrorAs: a handshake error is a *DeclineError for errors.As, with its
// reasons, and unwraps to its cause.
func TestDeclineErrorAs(t *testing.T) {
	cause := errors.New("cause")
	var err error = &DeclineError{Reason: ReasonPeerDecl, Peer: ReasonNoSMCDev, Err: cause}
	var de *DeclineError
	if !errors.As(err, &de) || de.Reason != ReasonPeerDecl || de.Peer != ReasonNoSMCDev || !errors.Is(err, cause) {
		t.Fatalf("errors.As/Is on %v failed", err)
	}
	if want := "smc: handshake declined: PEERDECL (peer: NOSMCDEV): cause"; err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
}

// TestReasonModeText: reasons and modes marshal as their names and back, as JSON
// map keys too; an unknown name is an error.
func TestReasonModeText(t *testing.T) {
	reasons := []Reason{ReasonNone, ReasonPeerNoSMC, ReasonMaxDMB, ReasonPeerDecl, ReasonSignallingUnavailable,
		ReasonNotOffered, ReasonHandshakeLimit, ReasonPeerNotCLC, ReasonSignallingConflict, 0x0a0b0c0d, 0x7f0000ff}
	m := map[Reason]uint64{}
	for i, r := range reasons {
		m[r] = uint64(i)
	}
	b, err := json.Marshal(m)
	if err != nil || !strings.Contains(string(b), `"PEERNOSMC":1`) {
		t.Fatalf("JSON %s, %v", b, err)
	}
	var back map[Reason]uint64
	if err := json.Unmarshal(b, &back); err != nil || !maps.Equal(m, back) {
		t.Errorf("round trip: %v, %v; want %v", back, err, m)
	}
	for _, s := range []string{"", "none", "PEERNOSMC ", "0x7f000001", "0x0"} {
		var r Reason
		if err := r.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("UnmarshalText(%q) = %v, want an error", s, r)
		}
	}
	for _, md := range []Mode{ModeTCP, ModeSMCD, Mode(7)} {
		b, _ := md.MarshalText()
		var back Mode
		if err := back.UnmarshalText(b); err != nil || back != md {
			t.Errorf("mode %v: %q back to %v, %v", md, b, back, err)
		}
	}
	var md Mode
	if err := md.UnmarshalText([]byte("Mode(300)")); err == nil {
		t.Error("Mode(300) parsed")
	}
}
