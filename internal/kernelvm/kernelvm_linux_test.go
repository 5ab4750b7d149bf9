package kernelvm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
	"github.com/smc-go/smc/internal/wire"
)

// What the 6.1 kernel puts on the wire, captured in the VM; both are checked
// against the capture byte for byte and against this module's encoder.
var (
	// A kernel client without an SMC device sends a v1 Decline instead of a
	// Proposal: sender ID zero (it has no RoCE device to take it from), NOSMCDEV,
	// OS type 0.
	kernelClientDecline = mustHex("e2d4c3d9 04 001c 10 0000000000000000 03030000 00000000 e2d4c3d9")
	// The kernel server answers our v2 Proposal (SMC-D v2 only) with a v2 Decline:
	// NOISM2SUPP, because it has no ISMv2-capable device (6.1 smc_listen_v2_check
	// stops there before looking at our GIDs), OS type Linux in the high nibble.
	kernelServerDecline = mustHex("e2d4c3d9 04 002c 20 0000000000000000 03030003 20000000" +
		" 00000000 00000000 00000000 00000000 e2d4c3d9")
)

// The labels the payload's data starts with in each direction (payload/main_linux.go).
var (
	clientDataStart = hex.EncodeToString([]byte("kernelvm client data\n"))
	serverDataStart = hex.EncodeToString([]byte("kernelvm server data\n"))
)

// TestKernelInterop boots Debian's 6.1 kernel with smc.ko under QEMU and runs the
// payload in it: a kernel AF_SMC client against smc.Listen, and smc.Dial against a
// kernel AF_SMC server. In both, the kernel has no SMC device and declines; both
// sides must carry on over the same TCP connection with every byte intact, ours
// reporting ModeTCP with PEERDECL and the kernel's diagnosis, the kernel reporting
// FALLBACK_TCP in smc_diag, and the wire showing exactly the CLC messages expected.
func TestKernelInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel under QEMU (10-20 s with TCG); not in -short mode")
	}
	bash := testenv.RequireTool(t, "bash")
	tmp := t.TempDir()
	payload := buildPayload(t, filepath.Join(tmp, "payload"))
	vm := buildVM(t, bash, filepath.Join(tmp, "vm"))
	console := runVM(t, bash, vm, payload)
	reports := parseReports(t, console)

	env := reports["env"]
	switch {
	case env == nil:
		t.Fatalf("the payload reported no environment; console:\n%s", console)
	case env.Err != "":
		t.Fatalf("guest set-up failed: %s", env.Err)
	case env.Signalling != "":
		t.Fatalf("the eBPF signalling does not work in the guest (kernel %s): %s", env.Kernel, env.Signalling)
	case !strings.HasPrefix(env.Kernel, "6.1."):
		t.Errorf("guest kernel %q, want Debian's 6.1", env.Kernel)
	}
	t.Logf("guest kernel %s; payload in cgroup %s", env.Kernel, env.Cgroup)

	t.Run("kernel-client", func(t *testing.T) {
		r := reports["kernel-client"]
		if r == nil {
			t.Fatalf("no report; console:\n%s", console)
		}
		checkScenario(t, r, "NOSMCDEV")
		// The kernel client fell back on its own, before any answer.
		checkDiag(t, r, "NOSMCDEV", "")
		w := checkWire(t, r)
		if w == nil {
			return
		}
		if len(w.ClientCLC) != 1 {
			t.Fatalf("client sent %d CLC messages, want its one Decline: %+v", len(w.ClientCLC), w.ClientCLC)
		}
		d := checkDecline(t, "kernel client's", w.ClientCLC[0], kernelClientDecline)
		if d != nil && (d.Version != wire.Version1 || d.Diagnosis != wire.CodeNoSMCDev) {
			t.Errorf("kernel client's Decline: version %d, diagnosis %v; want 1, NOSMCDEV", d.Version, d.Diagnosis)
		}
		if len(w.ServerCLC) != 0 {
			t.Errorf("our server answered the Decline with CLC messages: %+v", w.ServerCLC)
		}
	})

	t.Run("kernel-server", func(t *testing.T) {
		r := reports["kernel-server"]
		if r == nil {
			t.Fatalf("no report; console:\n%s", console)
		}
		checkScenario(t, r, "NOISM2SUPP")
		// The kernel server reports its own reason, not PEERDECL: it declined.
		checkDiag(t, r, "NOISM2SUPP", "")
		w := checkWire(t, r)
		if w == nil {
			return
		}
		if len(w.ClientCLC) != 1 || w.ClientCLC[0].Type != wire.TypeProposal.String() {
			t.Fatalf("our client sent %+v, want one Proposal", w.ClientCLC)
		}
		checkProposal(t, w.ClientCLC[0])
		if len(w.ServerCLC) != 1 {
			t.Fatalf("kernel server sent %d CLC messages, want one Decline: %+v", len(w.ServerCLC), w.ServerCLC)
		}
		d := checkDecline(t, "kernel server's", w.ServerCLC[0], kernelServerDecline)
		if d != nil && (d.Version != wire.Version2 || d.Diagnosis != wire.CodeNoISM2Supp || d.OSType != wire.OSLinux) {
			t.Errorf("kernel server's Decline: version %d, diagnosis %v, OS type %d; want 2, NOISM2SUPP, %d",
				d.Version, d.Diagnosis, d.OSType, wire.OSLinux)
		}
	})
}

// checkScenario checks our side: a *smc.Conn (both sides advertised SMC) that
// settled on TCP because the kernel declined with peerDiag, and data intact both
// ways.
func checkScenario(t *testing.T, r *Report, peerDiag string) {
	t.Helper()
	if r.Err != "" {
		t.Errorf("scenario failed: %s", r.Err)
	}
	if r.ConnType != "*smc.Conn" {
		t.Errorf("our side got a %s, want *smc.Conn: SMC was not advertised both ways", r.ConnType)
	}
	want := State{Mode: "TCP", Fallback: "PEERDECL", PeerDiagnosis: peerDiag,
		HandshakeComplete: true, Offered: true, PeerAdvertised: true}
	if r.Ours == nil || *r.Ours != want {
		t.Errorf("our ConnectionState = %+v, want %+v", r.Ours, want)
	}
	if !r.SentIntact || !r.ReceivedIntact || r.Sent == 0 || r.Received != r.Sent {
		t.Errorf("data: sent %d bytes (intact at the kernel: %v), received %d (intact: %v)",
			r.Sent, r.SentIntact, r.Received, r.ReceivedIntact)
	}
}

// checkDiag checks the kernel's own socket as smc_diag showed it.
func checkDiag(t *testing.T, r *Report, reason, peerDiag string) {
	t.Helper()
	if r.DiagErr != "" {
		t.Errorf("smc_diag: %s", r.DiagErr)
	}
	if len(r.Diag) != 1 {
		t.Errorf("smc_diag shows %d AF_SMC sockets on the connection, want the kernel's one: %+v", len(r.Diag), r.Diag)
		return
	}
	want := DiagSock{Local: r.Diag[0].Local, Remote: r.Diag[0].Remote, State: "ACTIVE", Mode: "FALLBACK_TCP",
		Reason: reason, PeerDiagnosis: peerDiag}
	if r.Diag[0] != want {
		t.Errorf("kernel socket in smc_diag = %+v, want %+v", r.Diag[0], want)
	}
}

// checkWire checks the capture: the SMC option both ways, and application data
// right after the CLC messages in both directions.
func checkWire(t *testing.T, r *Report) *Wire {
	t.Helper()
	w := r.Wire
	if w == nil || w.Err != "" {
		t.Errorf("capture failed: %+v", w)
		return nil
	}
	if !w.SYNOption || !w.SYNACKOption {
		t.Errorf("SMC option in SYN: %v, in SYN-ACK: %v; want both", w.SYNOption, w.SYNACKOption)
	}
	if !strings.HasPrefix(w.ClientData, clientDataStart) {
		t.Errorf("client's bytes after its CLC messages: %s, want the data (%s...)", w.ClientData, clientDataStart)
	}
	if !strings.HasPrefix(w.ServerData, serverDataStart) {
		t.Errorf("server's bytes after its CLC messages: %s, want the data (%s...)", w.ServerData, serverDataStart)
	}
	return w
}

// checkDecline checks a captured Decline against the bytes expected and against
// this module's parser and encoder, and returns it parsed.
func checkDecline(t *testing.T, who string, c CLC, want []byte) *wire.Decline {
	t.Helper()
	raw, err := hex.DecodeString(c.Hex)
	if err != nil {
		t.Fatalf("%s message: %v", who, err)
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("%s Decline on the wire:\n%x\nwant\n%x", who, raw, want)
	}
	d, err := wire.ParseDecline(raw)
	if err != nil {
		t.Errorf("%s Decline does not parse: %v", who, err)
		return nil
	}
	if again := d.Append(nil); !bytes.Equal(again, raw) {
		t.Errorf("%s Decline re-encoded by wire:\n%x\nwant the kernel's\n%x", who, again, raw)
	}
	return d
}

// checkProposal checks the Proposal our client sent, as captured.
func checkProposal(t *testing.T, c CLC) {
	t.Helper()
	raw, err := hex.DecodeString(c.Hex)
	if err != nil {
		t.Fatal(err)
	}
	p, err := wire.ParseProposal(raw)
	if err != nil {
		t.Fatalf("our Proposal does not parse: %v", err)
	}
	if p.Version != wire.Version2 || p.TypeV1 != wire.SMCTypeN || p.TypeV2 != wire.SMCTypeD {
		t.Errorf("our Proposal: version %d, v1 %v, v2 %v; want 2, none, SMC-D", p.Version, p.TypeV1, p.TypeV2)
	}
	if len(p.GIDs) != 2 || p.GIDs[0].CHID != 0xFFFE || p.GIDs[1].CHID != 0xFFFE {
		t.Errorf("our Proposal offers GID/CHID entries %+v, want our device (CHID 0xFFFE, two entries)", p.GIDs)
	}
}

// buildPayload builds ./payload as a static amd64 binary into dir, next to the
// run.sh the guest's /init runs.
func buildPayload(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gotool, err := testenv.GoTool()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gotool, "build", "-trimpath", "-o", filepath.Join(dir, "payload"), "./payload")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the payload: %v\n%s", err, out)
	}
	script := "#!/bin/sh\nexec /payload/payload -timeout 20s\n"
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildVM runs build.sh, which installs missing host tools (as root), downloads the
// kernel package into the cache once, and writes the kernel and initramfs to dir.
func buildVM(t *testing.T, bash, dir string) string {
	t.Helper()
	cache := cacheDir()
	t.Logf("kernel cache: %s (SMC_VM_CACHE)", cache)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "build.sh", dir)
	cmd.Env = append(os.Environ(), "SMC_VM_CACHE="+cache)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		testenv.Require(t, "the kernel VM's host tools and kernel package (internal/kernelvm/build.sh)",
			errors.New(lastLine(out)))
	}
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	t.Logf("build.sh: %s", lastLine(out))
	return dir
}

// cacheDir is where build.sh keeps the kernel package: $SMC_VM_CACHE, else
// /var/cache/smc-kernel-vm for root, else the user's cache directory.
func cacheDir() string {
	if d := os.Getenv("SMC_VM_CACHE"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/smc-kernel-vm"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "smc-kernel-vm")
	}
	return filepath.Join(os.TempDir(), "smc-kernel-vm")
}

// runVM boots the VM with the payload and returns the console output. QEMU and
// everything run.sh started are killed if it overruns.
func runVM(t *testing.T, bash, vm, payload string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "run.sh", vm, payload, "120")
	cmd.Env = append(os.Environ(), "SMC_VM_CACHE="+cacheDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	console := bytes.ReplaceAll(stdout.Bytes(), []byte("\r"), nil)
	t.Logf("run.sh: %s (%.1fs)", lastLine(stderr.Bytes()), time.Since(start).Seconds())
	if err != nil {
		t.Errorf("run.sh: %v\n%s\nconsole:\n%s", err, stderr.Bytes(), console)
	}
	return console
}

// parseReports collects the payload's reports by name.
func parseReports(t *testing.T, console []byte) map[string]*Report {
	t.Helper()
	out := make(map[string]*Report)
	sc := bufio.NewScanner(bytes.NewReader(console))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		_, js, ok := strings.Cut(sc.Text(), ReportPrefix)
		if !ok {
			continue
		}
		var r Report
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("bad report %q: %v", js, err)
		}
		t.Logf("report %s", js)
		out[r.Name] = &r
	}
	if w := out["watchdog"]; w != nil {
		t.Errorf("payload: %s", w.Err)
	}
	return out
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(fmt.Sprintf("bad hex %q: %v", s, err))
	}
	return b
}
