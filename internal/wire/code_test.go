package wire

import "testing"

// TestCodeTable checks every SMC_CLC_DECL_* value of current Linux
// (net/smc/smc_clc.h) against its name, written out independently of
// code.go.
func TestCodeTable(t *testing.T) {
	table := []struct {
		v    uint32
		name string
	}{
		{0x01010000, "MEM"},
		{0x02010000, "TIMEOUT_CL"},
		{0x02020000, "TIMEOUT_AL"},
		{0x03000000, "CNFERR"},
		{0x03010000, "PEERNOSMC"},
		{0x03020000, "IPSEC"},
		{0x03030000, "NOSMCDEV"},
		{0x03030001, "NOSMCDDEV"},
		{0x03030002, "NOSMCRDEV"},
		{0x03030003, "NOISM2SUPP"},
		{0x03030004, "NOV2EXT"},
		{0x03030005, "NOV2DEXT"},
		{0x03030006, "NOSEID"},
		{0x03030007, "NOSMCD2DEV"},
		{0x03030008, "NOUEID"},
		{0x03030009, "RELEASEERR"},
		{0x0303000a, "MAXCONNERR"},
		{0x0303000b, "MAXLINKERR"},
		{0x03040000, "MODEUNSUPP"},
		{0x03050000, "RMBE_EC"},
		{0x03060000, "OPTUNSUPP"},
		{0x03070000, "DIFFPREFIX"},
		{0x03080000, "GETVLANERR"},
		{0x03090000, "ISMVLANERR"},
		{0x030a0000, "NOACTLINK"},
		{0x030b0000, "NOSRVLINK"},
		{0x030c0000, "VERSMISMAT"},
		{0x030d0000, "MAX_DMB"},
		{0x030e0000, "NOROUTE"},
		{0x030f0000, "NOINDIRECT"},
		{0x04000000, "SYNCERR"},
		{0x05000000, "PEERDECL"},
		{0x09990000, "INTERR"},
		{0x09990001, "ERR_RTOK"},
		{0x09990002, "ERR_RDYLNK"},
		{0x09990003, "ERR_REGBUF"},
	}
	seen := map[string]bool{}
	for _, tt := range table {
		c := Code(tt.v)
		if got := c.String(); got != tt.name {
			t.Errorf("Code(%#08x).String() = %q, want %q", tt.v, got, tt.name)
		}
		if !c.Known() {
			t.Errorf("Code(%#08x) not Known", tt.v)
		}
		if seen[tt.name] {
			t.Errorf("duplicate name %s", tt.name)
		}
		if p, ok := ParseCode(tt.name); !ok || p != c {
			t.Errorf("ParseCode(%q) = %v, %v", tt.name, p, ok)
		}
		seen[tt.name] = true
	}
	// Historical 4.x values and others print as hex.
	for _, v := range []uint32{0, 0x02000000, 0x06000000, 0x07000000, 0x99990000, 0x02040000, 0x0a0b0c0d} {
		c := Code(v)
		if c.Known() {
			t.Errorf("Code(%#08x) is Known", v)
		}
	}
	if got := Code(0x0a0b0c0d).String(); got != "0x0a0b0c0d" {
		t.Errorf("unknown code prints %q", got)
	}
	if got := Code(0).String(); got != "0x00000000" {
		t.Errorf("zero code prints %q", got)
	}
	if len(namedCodes) != len(table) {
		t.Errorf("namedCodes has %d codes, Linux %d", len(namedCodes), len(table))
	}
	for _, s := range []string{"0x0a0b0c0d", "0x00000000"} {
		if c, ok := ParseCode(s); !ok || c.String() != s {
			t.Errorf("ParseCode(%q) = %v, %v", s, c, ok)
		}
	}
	for _, s := range []string{"", "mem", "0xa0b0c0d", "0x0a0b0c0d ", "7", "NONE"} {
		if c, ok := ParseCode(s); ok {
			t.Errorf("ParseCode(%q) = %v", s, c)
		}
	}
	// Spot-check the exported names against their values.
	if CodePeerNoSMC != 0x03010000 || CodeNoSMCDev != 0x03030000 || CodePeerDecl != 0x05000000 || CodeMaxLinkErr != 0x0303000b {
		t.Error("exported constants disagree with Linux")
	}
}

func TestCodeStringAllocs(t *testing.T) {
	var s string
	allocs := testing.AllocsPerRun(100, func() { s = CodePeerNoSMC.String() })
	if allocs != 0 || s != "PEERNOSMC" {
		t.Fatalf("String allocates %v times (%q)", allocs, s)
	}
}
