package signal

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// TestOwnCgroupInNamespace: inside a cgroup namespace /proc/self/cgroup says "/",
// and mountinfo shows the host's cgroup v2 mount with root "/..". ownCgroup must
// still find the process's real cgroup, by the ID the kernel gives its sockets.
func TestOwnCgroupInNamespace(t *testing.T) {
	if os.Getenv("SMC_TEST_OWN_CGROUP") != "" {
		cg, err := ownCgroup()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("cgroup %d %s %s\n", cg.id, cg.rel, cg.dir)
		os.Exit(0)
	}
	testenv.RequireRoot(t)
	unshare := testenv.RequireTool(t, "unshare")
	dir := testenv.NewCgroup(t, "")
	id, err := cgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(unshare, "--cgroup", os.Args[0], "-test.run=^TestOwnCgroupInNamespace$")
	cmd.Env = append(os.Environ(), "SMC_TEST_OWN_CGROUP=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := fmt.Sprintf("cgroup %d / %s", id, dir)
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, want) {
		t.Errorf("in a cgroup namespace: %q, want %q", got, want)
	}
}

// TestParseDiagCgroupID checks the sock_diag reply parser against hostile replies.
func TestParseDiagCgroupID(t *testing.T) {
	for _, b := range [][]byte{nil, {1, 2, 3}, make([]byte, 16), make([]byte, 200)} {
		if _, err := parseDiagCgroupID(b); err == nil {
			t.Errorf("parseDiagCgroupID(%d bytes of junk) succeeded", len(b))
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/sys/fs/cgroup`:       "/sys/fs/cgroup",
		`/mnt/cg\040v2`:        "/mnt/cg v2",
		`/a\134b`:              `/a\b`,
		`/trailing\04`:         `/trailing\04`,
		`/not\999octal\040end`: "/not\\999octal end",
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMountEntryBelow: a mount shows its root relative to our cgroup namespace's
// root; only a root at or above it (not "/..") contains our cgroup by path.
func TestMountEntryBelow(t *testing.T) {
	tests := []struct {
		root, rel, want string
		ok              bool
	}{
		{"/", "/a/b", "/m/a/b", true},
		{"/", "/", "/m", true},
		{"/a", "/a/b", "/m/b", true},
		{"/a", "/a", "/m", true},
		{"/a", "/ab", "", false},
		{"/..", "/", "", false},
		{"/../..", "/x", "", false},
	}
	for _, tt := range tests {
		got, ok := mountEntry{root: tt.root, point: "/m"}.below(tt.rel)
		if got != tt.want || ok != tt.ok {
			t.Errorf("mount root %q, cgroup %q: %q, %v; want %q, %v", tt.root, tt.rel, got, ok, tt.want, tt.ok)
		}
	}
}
