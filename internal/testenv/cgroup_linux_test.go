package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChildCgroup(t *testing.T) {
	before, err := OwnCgroup()
	Require(t, "cgroup v2", err)
	var dir string
	t.Run("enter", func(t *testing.T) {
		dir = ChildCgroup(t)
		now, err := OwnCgroup()
		if err != nil {
			t.Fatal(err)
		}
		if now != dir || filepath.Dir(dir) != before {
			t.Fatalf("in cgroup %s, want %s below %s", now, dir, before)
		}
	})
	if dir == "" {
		return
	}
	after, err := OwnCgroup()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("after cleanup in %s, want %s", after, before)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("child cgroup %s still exists: %v", dir, err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134y`: `/x\y`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPacketHasSMC(t *testing.T) {
	for _, tc := range []struct {
		opts []byte
		want bool
	}{
		{[]byte{2, 4, 0x05, 0xb4, 1, 1, 254, 6, 0xE2, 0xD4, 0xC3, 0xD9}, true},
		{[]byte{254, 6, 0xE2, 0xD4, 0xC3, 0xD8}, false},
		{[]byte{254, 4, 0xE2, 0xD4}, false},
		{[]byte{0, 254, 6, 0xE2, 0xD4, 0xC3, 0xD9}, false},
		{[]byte{2, 40}, false},
	} {
		if got := (Packet{Options: tc.opts}).HasSMC(); got != tc.want {
			t.Errorf("HasSMC(% x) = %v, want %v", tc.opts, got, tc.want)
		}
	}
}
