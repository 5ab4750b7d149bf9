package wire

import (
	"bytes"
	"reflect"
	"testing"
)

// checkCanonical asserts the invariants of a message m parsed from b: Length equals
// len(b) and len(Append(nil)); Append appends without touching its prefix; the
// encoding parses back to an equal message and is a fixed point of parse→Append
// (it equals b except for reserved fields, which the parser ignores); Parse agrees
// with the typed parser.
func checkCanonical(t *testing.T, b []byte, m Message, parse func([]byte) (Message, error)) {
	t.Helper()
	enc := m.Append(nil)
	if m.Length() != len(enc) || len(enc) != len(b) {
		t.Fatalf("Length %d, len(Append) %d, input %d", m.Length(), len(enc), len(b))
	}
	prefix := []byte("prefix")
	if got := m.Append(prefix[:len(prefix):len(prefix)]); !bytes.Equal(got[:len(prefix)], []byte("prefix")) || !bytes.Equal(got[len(prefix):], enc) {
		t.Fatalf("Append to a prefix changed it or the encoding")
	}
	m2, err := parse(enc)
	if err != nil {
		t.Fatalf("re-parse of\n% x\nfailed: %v", enc, err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("re-parse differs:\n%+v\n%+v", m, m2)
	}
	if enc2 := m2.Append(nil); !bytes.Equal(enc, enc2) {
		t.Fatalf("Append is not a fixed point:\n% x\n% x", enc, enc2)
	}
	m3, err := Parse(b)
	if err != nil || !reflect.DeepEqual(m, m3) {
		t.Fatalf("Parse disagrees with the typed parser: %v", err)
	}
}
