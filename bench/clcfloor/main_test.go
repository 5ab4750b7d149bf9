package main

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// TestQuick builds clcfloor and runs one short round with a few clients: both
// processes come up, every shape completes connections (clcu's wake-ups reach their
// connections through the Unix socket, or the run fails), and the summary has a
// positive rate and CPU for each shape. The figures themselves are not judged.
func TestQuick(t *testing.T) {
	goBin, err := testenv.GoTool()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "clcfloor")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-rounds=2", "-duration=100ms", "-clients=4").CombinedOutput()
	if err != nil {
		t.Fatalf("clcfloor: %v\n%s", err, out)
	}
	summary := false
	seen := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "medians of ") {
			summary = true
			continue
		}
		f := strings.Fields(line)
		if !summary || len(f) < 11 {
			continue
		}
		rate, err1 := strconv.ParseFloat(f[1], 64)
		cli, err2 := strconv.ParseFloat(f[7], 64)
		srv, err3 := strconv.ParseFloat(f[10], 64)
		if err1 != nil || err2 != nil || err3 != nil || rate <= 0 || cli <= 0 || srv <= 0 {
			t.Errorf("summary line %q: rate, client and server CPU must be positive numbers", line)
		}
		seen[f[0]] = true
	}
	for _, sh := range shapes {
		if !seen[sh] {
			t.Errorf("no summary line for %s in:\n%s", sh, out)
		}
	}
}
