package wire

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// unhex decodes a hand-written byte vector: hex digits with optional whitespace,
// "//" comments to the end of the line, and "xx*n" for n copies of byte xx.
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		for _, tok := range strings.Fields(line) {
			if byteHex, count, ok := strings.Cut(tok, "*"); ok {
				b, err := hex.DecodeString(byteHex)
				n, err2 := strconv.Atoi(count)
				if err != nil || err2 != nil || len(b) != 1 {
					tb.Fatalf("bad repeat token %q", tok)
				}
				out = append(out, []byte(strings.Repeat(string(b), n))...)
				continue
			}
			b, err := hex.DecodeString(tok)
			if err != nil {
				tb.Fatalf("bad hex token %q: %v", tok, err)
			}
			out = append(out, b...)
		}
	}
	return out
}

// eid returns s blank-padded to an EID, as Linux pads UEIDs.
func eid(s string) EID {
	var e EID
	copy(e[:], s+strings.Repeat(" ", EIDLen))
	return e
}

// wantParseError checks that err is a *ParseError with code c.
func wantParseError(t *testing.T, err error, c Code) *ParseError {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	if pe.Code != c {
		t.Fatalf("error %v has code %v, want %v", err, pe.Code, c)
	}
	if !strings.HasPrefix(pe.Error(), "smc: wire: ") {
		t.Fatalf("error %q lacks the package prefix", pe.Error())
	}
	return pe
}

// patch returns a copy of b with b[off:] overwritten by v.
func patch(b []byte, off int, v ...byte) []byte {
	c := append([]byte(nil), b...)
	copy(c[off:], v)
	return c
}

// withLen returns a copy of b with its header length field set to n.
func withLen(b []byte, n int) []byte { return patch(b, 5, byte(n>>8), byte(n)) }
