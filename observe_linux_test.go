package smc

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/testenv"
)

// held are the connections a process of the multi-process tests keeps open for
// the observability tests, by number.
var held struct {
	mu    sync.Mutex
	conns []net.Conn
}

// procMore runs the commands of the observability tests in a process of the
// multi-process tests (see procMain):
//
//	hold ADDR       -> "held I MODE REASON": smc.Dial, kept open as connection I
//	plainhold ADDR  -> "held I": net.Dial, kept open
//	send I N        -> "sent I": N random bytes written on connection I and read back
//	memlimit N      -> "memlimit N": shm.SetMemoryLimit(N)
func procMore(f []string) (string, bool) {
	switch {
	case (f[0] == "hold" || f[0] == "plainhold") && len(f) == 2:
		dial := Dial
		if f[0] == "plainhold" {
			dial = net.Dial
		}
		c, err := dial("tcp", f[1])
		if err != nil {
			return "held error " + err.Error(), true
		}
		held.mu.Lock()
		defer held.mu.Unlock()
		held.conns = append(held.conns, c)
		st := State(c)
		return fmt.Sprintf("held %d %v %v", len(held.conns)-1, st.Mode, st.Fallback), true
	case f[0] == "send" && len(f) == 3:
		i, _ := strconv.Atoi(f[1])
		n, _ := strconv.Atoi(f[2])
		held.mu.Lock()
		c := held.conns[i]
		held.mu.Unlock()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		data := make([]byte, n)
		rand.Read(data)
		go c.Write(data)
		got := make([]byte, n)
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
			return fmt.Sprintf("sent error %v", err), true
		}
		return "sent " + f[1], true
	case f[0] == "memlimit" && len(f) == 2:
		n, _ := strconv.ParseInt(f[1], 10, 64)
		shm.SetMemoryLimit(n)
		return "memlimit " + f[1], true
	}
	return "", false
}

// hold makes p dial addr with smc.Dial and keep the connection; it returns the
// connection's number and checks its mode and reason.
func (p *proc) hold(addr, want string) string {
	p.t.Helper()
	l := p.do("hold "+addr, "held ")
	f := strings.Fields(l)
	if len(f) != 4 || f[2]+" "+f[3] != want {
		p.t.Fatalf("%s: %q, want a connection in %s", p.name, l, want)
	}
	return f[1]
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// ssRow is what smc ss -j prints per connection.
type ssRow struct {
	PID         int
	Process     string
	TCPState    string
	Local       netip.AddrPort
	Remote      netip.AddrPort
	Listener    bool
	State       struct{ Mode, Fallback, PeerDiagnosis string }
	Client      bool
	ReceiveRing int
	SendRing    int
	BytesSent   uint64
	BytesRecv   uint64 `json:"BytesReceived"`
	SendQueued  uint64
	CountsKnown bool
	Source      string
}

// buildSMC builds the smc command into a directory every user may read, removed
// after the test.
func buildSMC(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "smc-cmd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "smc")
	goBin, err := testenv.GoTool()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, "./cmd/smc").CombinedOutput(); err != nil {
		t.Fatalf("building smc: %v\n%s", err, out)
	}
	return bin
}

// smcCmd runs the smc command (after prefix, which may run it as another user) with
// args and returns its standard output; it fails the test unless smc exits 0.
func smcCmd(t *testing.T, env []string, prefix []string, bin string, args ...string) []byte {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("smc %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Logf("smc %s: %s", strings.Join(args, " "), stderr.Bytes())
	}
	return out
}

// ssRows runs smc ss -j with args and returns the rows of the processes pids.
func ssRows(t *testing.T, prefix []string, bin string, pids []int, args ...string) []ssRow {
	t.Helper()
	var rows []ssRow
	out := smcCmd(t, nil, prefix, bin, append([]string{"ss", "-j"}, args...)...)
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("smc ss -j: %v\n%s", err, out)
	}
	var mine []ssRow
	for _, r := range rows {
		for _, p := range pids {
			if r.PID == p {
				mine = append(mine, r)
			}
		}
	}
	return mine
}

// findRow returns the row of process pid whose remote (or, with remote invalid,
// local) address is the given one.
func findRow(t *testing.T, rows []ssRow, pid int, local, remote netip.AddrPort) ssRow {
	t.Helper()
	for _, r := range rows {
		if r.PID == pid && (!local.IsValid() || r.Local == local) && (!remote.IsValid() || r.Remote == remote) {
			return r
		}
	}
	t.Fatalf("smc ss shows no connection of pid %d from %v to %v; it shows:\n%s", pid, local, remote, dumpRows(rows))
	return ssRow{}
}

func dumpRows(rows []ssRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %+v\n", r)
	}
	return b.String()
}

// TestSmcSS: with real processes, smc ss lists an SMC-D pair, a pair that fell back
// after a Decline, a client whose server never announced SMC and a server whose
// client never did, each on the right process with its mode, reason and the
// peer's diagnosis, and the byte counters move as data flows; the filters keep
// what they name. smc stats counts the Decline by reason on each side, and counts
// from zero after --clear.
func TestSmcSS(t *testing.T) {
	requireProcs(t)
	bin := buildSMC(t)
	cg := testenv.NewCgroup(t, "")
	server := startProc(t, "server", cg, procOptions{})
	decliner := startProc(t, "decliner", cg, procOptions{})
	client := startProc(t, "client", cg, procOptions{})
	plain := startProc(t, "plain", cg, procOptions{})
	decliner.do("memlimit 0", "memlimit")
	sa, da := netip.MustParseAddrPort(server.listen()), netip.MustParseAddrPort(decliner.listen())
	pa := netip.MustParseAddrPort(strings.TrimPrefix(plain.do("plainlisten", "listening "), "listening "))
	smcd := client.hold(sa.String(), "SMCD NONE")
	if got := server.expect("accepted "); got != "accepted SMCD NONE" {
		t.Fatalf("server: %s", got)
	}
	declined := client.hold(da.String(), "TCP PEERDECL")
	if got := decliner.expect("accepted "); got != "accepted TCP MAX_DMB" {
		t.Fatalf("decliner: %s", got)
	}
	client.hold(pa.String(), "TCP PEERNOSMC")
	plain.do("plainhold "+sa.String(), "held ")
	if got := server.expect("accepted "); got != "accepted TCP PEERNOSMC" {
		t.Fatalf("server, plain client: %s", got)
	}
	pids := []int{server.pid(), decliner.pid(), client.pid(), plain.pid()}

	rows := ssRows(t, nil, bin, pids)
	cs := findRow(t, rows, client.pid(), netip.AddrPort{}, sa)
	ss := findRow(t, rows, server.pid(), sa, cs.Local)
	for _, r := range []ssRow{cs, ss} {
		if r.State.Mode != "SMCD" || r.State.Fallback != "NONE" || r.ReceiveRing != DefaultBufferSize || r.SendRing != DefaultBufferSize ||
			r.TCPState != "ESTAB" || !r.CountsKnown || r.BytesSent != 0 || r.Source != "registry" {
			t.Errorf("SMC-D connection: %+v", r)
		}
	}
	if !cs.Client || ss.Client || !strings.HasPrefix(cs.Process, "smc.test") {
		t.Errorf("SMC-D pair: client %+v, server %+v", cs, ss)
	}
	cd := findRow(t, rows, client.pid(), netip.AddrPort{}, da)
	sd := findRow(t, rows, decliner.pid(), da, cd.Local)
	if cd.State.Mode != "TCP" || cd.State.Fallback != "PEERDECL" || cd.State.PeerDiagnosis != "MAX_DMB" || !cd.Client {
		t.Errorf("declined client: %+v", cd)
	}
	if sd.State.Mode != "TCP" || sd.State.Fallback != "MAX_DMB" || sd.State.PeerDiagnosis != "NONE" || sd.Client {
		t.Errorf("declining server: %+v", sd)
	}
	cp := findRow(t, rows, client.pid(), netip.AddrPort{}, pa)
	if cp.State.Mode != "TCP" || cp.State.Fallback != "PEERNOSMC" || !cp.Client || cp.Source != "socket" {
		t.Errorf("client of a plain server: %+v", cp)
	}
	var sp ssRow
	for _, r := range rows {
		if r.PID == server.pid() && r.Local == sa && r.Remote != cs.Local && !r.Listener {
			sp = r
		}
	}
	if sp.State.Mode != "TCP" || sp.State.Fallback != "PEERNOSMC" || sp.Client || sp.Source != "socket" {
		t.Errorf("server of a plain client: %+v\nrows:\n%s", sp, dumpRows(rows))
	}
	for _, r := range rows {
		if r.PID == plain.pid() {
			t.Errorf("a process that does not use smc is listed: %+v", r)
		}
	}

	// Bytes move: through the rings, and over TCP after the Decline.
	client.do("send "+smcd+" 100000", "sent ")
	client.do("send "+declined+" 50000", "sent ")
	rows = ssRows(t, nil, bin, pids)
	cs, ss = findRow(t, rows, client.pid(), cs.Local, sa), findRow(t, rows, server.pid(), sa, cs.Local)
	if cs.BytesSent != 100000 || cs.BytesRecv != 100000 || ss.BytesSent != 100000 || ss.BytesRecv != 100000 {
		t.Errorf("after 100000 bytes each way: client sent %d received %d, server sent %d received %d",
			cs.BytesSent, cs.BytesRecv, ss.BytesSent, ss.BytesRecv)
	}
	cd = findRow(t, rows, client.pid(), cd.Local, da)
	if cd.BytesSent+cd.SendQueued < 50000 || cd.BytesRecv < 50000 || !cd.CountsKnown {
		t.Errorf("after 50000 bytes each way over TCP: %+v", cd)
	}

	// Filters.
	for _, r := range ssRows(t, nil, bin, pids, "--smc-only") {
		if r.State.Mode != "SMCD" {
			t.Errorf("--smc-only shows %+v", r)
		}
	}
	if got := ssRows(t, nil, bin, pids, "--fallback-only", "--port="+strconv.Itoa(int(da.Port()))); len(got) != 2 ||
		got[0].State.Mode != "TCP" || got[1].State.Mode != "TCP" {
		t.Errorf("--fallback-only --port=%d shows:\n%s", da.Port(), dumpRows(got))
	}
	if got := ssRows(t, nil, bin, pids, "-l"); len(got) != 2 || !got[0].Listener || !got[1].Listener {
		t.Errorf("-l shows:\n%s", dumpRows(got))
	}
	if got := ssRows(t, nil, bin, pids, "--state=time-wait"); len(got) != 0 {
		t.Errorf("--state=time-wait shows:\n%s", dumpRows(got))
	}
	text := string(smcCmd(t, nil, nil, bin, "ss", "--pid="+strconv.Itoa(client.pid())))
	if !strings.Contains(text, "Peer diag") || !strings.Contains(text, fmt.Sprintf("%d/smc.test", client.pid())) ||
		!strings.Contains(text, "MAX_DMB") || !strings.Contains(text, "SMCD") {
		t.Errorf("smc ss prints:\n%s", text)
	}

	// smc stats: the Decline on each side, by reason.
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	stats := func(p *proc) Statistics {
		t.Helper()
		var r struct{ Processes []struct{ Statistics } }
		out := smcCmd(t, env, nil, bin, "stats", "-j", "--pid="+strconv.Itoa(p.pid()))
		if err := json.Unmarshal(out, &r); err != nil || len(r.Processes) != 1 {
			t.Fatalf("smc stats -j: %v\n%s", err, out)
		}
		return r.Processes[0].Statistics
	}
	ds, cl := stats(decliner), stats(client)
	if ds.Server.LocalDeclines[ReasonMaxDMB] != 1 || ds.Server.Fallbacks[ReasonMaxDMB] != 1 || len(ds.Server.PeerDeclines) != 0 ||
		ds.Client.Offered != 0 || ds.Server.Negotiated != 1 {
		t.Errorf("declining server's stats: %+v", ds)
	}
	if cl.Client.PeerDeclines[ReasonMaxDMB] != 1 || cl.Client.Fallbacks[ReasonPeerDecl] != 1 || len(cl.Client.LocalDeclines) != 0 ||
		cl.Client.PeerNoSMC != 1 || cl.Client.SMCD != 1 || cl.Client.Offered != 3 || cl.Client.Negotiated != 2 {
		t.Errorf("client's stats: %+v", cl)
	}
	if sv := stats(server); sv.Server.PeerNoSMC != 1 || sv.Server.SMCD != 1 || sv.OpenSMCD != 1 || sv.Links != 1 {
		t.Errorf("server's stats: %+v", sv)
	}
	smcCmd(t, env, nil, bin, "stats", "--clear")
	if ds := stats(decliner); len(ds.Server.LocalDeclines) != 0 || ds.Server.Offered != 0 || ds.OpenTCP != 1 {
		t.Errorf("declining server's stats after --clear: %+v", ds)
	}
	client.hold(da.String(), "TCP PEERDECL")
	decliner.expect("accepted ")
	if ds := stats(decliner); ds.Server.LocalDeclines[ReasonMaxDMB] != 1 {
		t.Errorf("declining server's stats after --clear and one more Decline: %+v", ds)
	}
}

// TestSmcSSUnprivileged: a user sees its own processes' connections, with their
// byte counts, and no other user's.
func TestSmcSSUnprivileged(t *testing.T) {
	requireProcs(t)
	bin := buildSMC(t)
	prefix, _ := testenv.Unprivileged(t)
	prepared := testenv.NewCgroup(t, "")
	prepare(t, prepared)
	user := procOptions{unprivileged: true}
	userServer := startProc(t, "user-server", prepared, user)
	userClient := startProc(t, "user-client", prepared, user)
	cg := testenv.NewCgroup(t, "")
	rootServer := startProc(t, "root-server", cg, procOptions{})
	rootClient := startProc(t, "root-client", cg, procOptions{})
	ua, ra := userServer.listen(), rootServer.listen()
	ui := userClient.hold(ua, "SMCD NONE")
	rootClient.hold(ra, "SMCD NONE")
	userServer.expect("accepted ")
	rootServer.expect("accepted ")
	userClient.do("send "+ui+" 4096", "sent ")
	pids := []int{userServer.pid(), userClient.pid(), rootServer.pid(), rootClient.pid()}

	rows := ssRows(t, prefix, bin, pids)
	if len(rows) != 2 {
		t.Fatalf("as user %d, smc ss shows %d connections of the test's processes, want the user's 2:\n%s",
			testenv.Nobody, len(rows), dumpRows(rows))
	}
	for _, r := range rows {
		if r.PID != userServer.pid() && r.PID != userClient.pid() {
			t.Errorf("as user %d, smc ss shows another user's connection: %+v", testenv.Nobody, r)
		}
		if r.State.Mode != "SMCD" || !r.CountsKnown || r.BytesSent != 4096 {
			t.Errorf("the user's own connection: %+v", r)
		}
	}
	if all := ssRows(t, nil, bin, pids); len(all) != 4 {
		t.Errorf("as root, smc ss shows %d connections of the test's processes, want 4:\n%s", len(all), dumpRows(all))
	}
	var r struct{ Processes []struct{ PID int } }
	noBaseline := []string{"XDG_CACHE_HOME=" + filepath.Join(os.TempDir(), "smc-test-no-baseline")}
	if err := json.Unmarshal(smcCmd(t, noBaseline, prefix, bin, "stats", "-j"), &r); err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Processes {
		if p.PID == rootServer.pid() || p.PID == rootClient.pid() {
			t.Errorf("as user %d, smc stats shows root's process %d", testenv.Nobody, p.PID)
		}
	}
}

// TestSmcSSNetns: smc ss reads the sockets of processes in another network
// namespace in that namespace: their connections show their TCP state.
func TestSmcSSNetns(t *testing.T) {
	requireProcs(t)
	bin := buildSMC(t)
	ns := testenv.NewNetns(t)
	ipExec := procOptions{wrap: []string{testenv.RequireTool(t, "ip"), "netns", "exec", ns}}
	cg := testenv.NewCgroup(t, "")
	server := startProc(t, "server", cg, ipExec)
	client := startProc(t, "client", cg, ipExec)
	sa := netip.MustParseAddrPort(server.listen())
	client.hold(sa.String(), "SMCD NONE")
	server.expect("accepted ")
	rows := ssRows(t, nil, bin, []int{server.pid(), client.pid()})
	if len(rows) != 2 {
		t.Fatalf("smc ss shows %d connections of the processes in %s, want 2:\n%s", len(rows), ns, dumpRows(rows))
	}
	for _, r := range rows {
		if r.TCPState != "ESTAB" || r.State.Mode != "SMCD" {
			t.Errorf("connection in network namespace %s: %+v", ns, r)
		}
	}
}
