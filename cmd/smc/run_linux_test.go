package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/signal"
	"github.com/smc-go/smc/internal/testenv"
)

// TestRun: as root, smc run starts a command in a fresh child of its own cgroup,
// where the library can attach its signalling, exits with the command's status and
// removes the cgroup; with --cgroup it starts the command in a prepared cgroup,
// whose pins the command's signalling then uses.
func TestRun(t *testing.T) {
	testenv.RequireBPF(t)
	bin := buildSMC(t)
	run := func(args ...string) (string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if errOut.Len() > 0 {
			t.Logf("smc %s: stderr: %s", strings.Join(args, " "), errOut.Bytes())
		}
		return out.String(), cmd.ProcessState.ExitCode()
	}
	out, code := run("run", "--", "sh", "-c", "cat /proc/self/cgroup; exit 7")
	var cg string
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			cg = p
		}
	}
	if code != 7 || !strings.HasPrefix(filepath.Base(cg), "smc-run-") {
		t.Fatalf("smc run: exit %d, cgroup %q; want exit 7 in smc-run-<pid>\n%s", code, cg, out)
	}
	mnt, err := testenv.Cgroup2Mount()
	testenv.Require(t, "cgroup v2", err)
	if _, err := os.Stat(filepath.Join(mnt, cg)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("smc run left its cgroup %s: %v", cg, err)
	}
	if _, code := run("run", "--", "sh", "-c", "kill -TERM $$"); code != 128+15 {
		t.Errorf("a command ended by SIGTERM: smc run exits %d, want %d", code, 128+15)
	}
	if out, code := run("run", "--", bin, "probe"); code != 0 || !strings.Contains(out, "signalling: works (self-attached to cgroup") {
		t.Errorf("smc probe under smc run: exit %d\n%s", code, out)
	}
	if _, code := run("-h"); code != 0 {
		t.Errorf("smc -h exits %d", code)
	}

	prepared := testenv.NewCgroup(t, "")
	if _, err := signal.AttachCgroup(prepared, signal.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { signal.DetachCgroup(prepared) })
	out, code = run("run", "--cgroup="+prepared, "--", bin, "probe")
	if code != 0 || !strings.Contains(out, "signalling: works") || !strings.Contains(out, "prepared cgroup        "+"/") {
		t.Errorf("smc probe under smc run --cgroup (prepared): exit %d\n%s", code, out)
	}
	if _, err := os.Stat(prepared); err != nil {
		t.Errorf("smc run --cgroup removed the cgroup it was given: %v", err)
	}
}

// TestAttachList: smc attach --list shows a prepared cgroup as attached, and once
// the cgroup is removed as such; --detach with its ID removes the pins.
func TestAttachList(t *testing.T) {
	testenv.RequireBPF(t)
	dir := testenv.NewCgroup(t, "")
	captureStdout(t, func() {
		if err := runAttach([]string{dir}); err != nil {
			t.Fatal(err)
		}
	})
	id := ""
	t.Cleanup(func() {
		if id != "" {
			captureStdout(t, func() { runAttach([]string{"--detach", id}) })
		}
	})
	list := func() map[string]string {
		out := captureStdout(t, func() {
			if err := runAttach([]string{"--list"}); err != nil {
				t.Fatal(err)
			}
		})
		states := map[string]string{}
		for _, l := range strings.Split(out, "\n")[1:] {
			f := strings.Fields(l)
			if len(f) >= 3 {
				states[f[0]] = strings.Join(f[1:len(f)-2], " ") + "|" + f[len(f)-2]
			}
		}
		return states
	}
	for k, v := range list() {
		if strings.HasSuffix(v, "|"+dir) {
			id = k
		}
	}
	if id == "" {
		t.Fatalf("smc attach --list does not show %s: %v", dir, list())
	}
	if got := list()[id]; got != "attached|"+dir {
		t.Errorf("prepared cgroup %s: %q, want attached", id, got)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if got := list()[id]; got != "cgroup removed|(removed)" {
		t.Errorf("removed cgroup %s: %q, want cgroup removed", id, got)
	}
	captureStdout(t, func() {
		if err := runAttach([]string{"--detach", id}); err != nil {
			t.Fatalf("smc attach --detach %s: %v", id, err)
		}
	})
	if got, ok := list()[id]; ok {
		t.Errorf("after --detach %s, --list still shows it: %q", id, got)
	}
	id = ""
}
