package smc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/signal"
	"github.com/smc-go/smc/internal/testenv"
)

func init() { runProc = procMain }

// procMain is a process of the multi-process tests. It reads commands, one per line,
// and answers each with one line; a listener it runs also reports, on a line of its
// own, every connection it accepted:
//
//	sig                  -> "sig ok" or "sig <SignallingError>"
//	listen [ADDR]        -> "listening ADDR": smc.Listen (on 127.0.0.1:0 unless
//	                        ADDR is given), echoing
//	                        each connection; "accepted MODE REASON" per connection
//	plainlisten          -> "listening ADDR": net.Listen, echoing
//	dial ADDR N          -> "dial MODE REASON ok" when N random bytes came back
//	                        intact, "dial error ..." otherwise
//	xlisten ADDR DIR     -> listen, with EndpointDir DIR
//	xdial ADDR N DIR     -> dial, with EndpointDir DIR and SMC offered to every
//	                        destination
//	quit                 -> exits
func procMain() int {
	out := make(chan string, 64)
	go func() {
		for line := range out {
			fmt.Println(line)
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "sig":
			if err := SignallingError(); err != nil {
				out <- "sig " + err.Error()
			} else {
				out <- "sig ok"
			}
		case "listen", "plainlisten":
			var ln net.Listener
			var err error
			addr := "127.0.0.1:0"
			if len(f) > 1 {
				addr = f[1]
			}
			if f[0] == "listen" {
				ln, err = Listen("tcp", addr)
			} else {
				ln, err = net.Listen("tcp", addr)
			}
			if err != nil {
				out <- "listening error " + err.Error()
				continue
			}
			go serveEcho(ln, out)
			out <- "listening " + ln.Addr().String()
		case "dial":
			n, _ := strconv.Atoi(f[2])
			out <- "dial " + dialEcho(f[1], n)
		case "xlisten":
			lc := ListenConfig{Config: &Config{EndpointDir: f[2]}}
			ln, err := lc.Listen(context.Background(), "tcp", f[1])
			if err != nil {
				out <- "listening error " + err.Error()
				continue
			}
			go serveEcho(ln, out)
			out <- "listening " + ln.Addr().String()
		case "xdial":
			n, _ := strconv.Atoi(f[2])
			d := &Dialer{Config: &Config{EndpointDir: f[3], Policy: NewPolicy(Rules{Dial: []Rule{{Offer: true}}})}}
			out <- "dial " + dialEchoWith(d, f[1], n)
		case "quit":
			close(out)
			time.Sleep(10 * time.Millisecond)
			return 0
		default:
			if reply, ok := procMore(f); ok {
				out <- reply
				continue
			}
			if reply, ok := procLink(f); ok { // link_proc_linux_test.go
				out <- reply
				continue
			}
			out <- "unknown command " + f[0]
		}
	}
	return 0
}

// serveEcho accepts connections and echoes each, reporting its state once the SMC
// handshake (if any) is over.
func serveEcho(ln net.Listener, out chan<- string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			if sc, ok := c.(*Conn); ok {
				if err := sc.Handshake(); err != nil {
					out <- "accepted error " + err.Error()
					return
				}
			}
			st := State(c)
			out <- fmt.Sprintf("accepted %v %v", st.Mode, st.Fallback)
			io.Copy(c, c)
		}()
	}
}

// dialEcho dials addr, sends n random bytes, reads them back and says how it went.
func dialEcho(addr string, n int) string { return dialEchoWith(&Dialer{}, addr, n) }

func dialEchoWith(d *Dialer, addr string, n int) string {
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return "error " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	st := State(c)
	data := make([]byte, n)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Sprintf("error reading the echo (%v %v): %v", st.Mode, st.Fallback, err)
	}
	if err := <-werr; err != nil {
		return "error writing: " + err.Error()
	}
	if !bytes.Equal(got, data) {
		return fmt.Sprintf("error: %v %v: the echo differs from what was sent", st.Mode, st.Fallback)
	}
	return fmt.Sprintf("%v %v ok", st.Mode, st.Fallback)
}

// A proc is a process of the multi-process tests, started in a cgroup.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// procOptions says how to start a proc.
type procOptions struct {
	wrap         []string // a command that runs the test binary (unshare, setpriv, ip netns exec)
	unprivileged bool     // run as user and group 65534 with no capabilities
}

// startProc starts the test binary as a proc in the cgroup at dir.
func startProc(t *testing.T, name, dir string, opt procOptions) *proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{}, opt.wrap...)
	if opt.unprivileged {
		var prefix []string
		prefix, self = testenv.Unprivileged(t)
		args = append(args, prefix...)
	}
	args = append(args, self, "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), procEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testenv.CgroupFD(t, dir)}
	cmd.Stderr = &prefixWriter{t: t, prefix: name + ": "}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, in: in, lines: make(chan string, 256)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process (politely, then by force) and waits for it.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	fmt.Fprintln(p.in, "quit")
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// do sends a command and returns the first line that starts with want.
func (p *proc) do(cmd, want string) string {
	p.t.Helper()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, cmd, err)
	}
	return p.expect(want)
}

// expect returns the next line that starts with want, within 15 s; other lines are
// kept for later.
func (p *proc) expect(want string) string {
	p.t.Helper()
	return p.expectWithin(want, 15*time.Second)
}

// expectWithin is expect with a bound of d instead of 15 s, for commands that open
// or move a lot.
func (p *proc) expectWithin(want string, d time.Duration) string {
	p.t.Helper()
	var other []string
	defer func() {
		for _, l := range other {
			p.lines <- l
		}
	}()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s exited while the test waited for %q", p.name, want)
			}
			if strings.HasPrefix(l, want) {
				return l
			}
			other = append(other, l)
		case <-timeout:
			p.t.Fatalf("%s: no %q within %v (other lines: %q)", p.name, want, d, other)
		}
	}
}

// listen makes p listen with smc.Listen and returns the address.
func (p *proc) listen(at ...string) string {
	p.t.Helper()
	l := p.do(strings.Join(append([]string{"listen"}, at...), " "), "listening ")
	addr := strings.TrimPrefix(l, "listening ")
	if strings.HasPrefix(addr, "error") {
		p.t.Fatalf("%s: %s", p.name, l)
	}
	return addr
}

type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(b), nil
}

// echoSMCD has client dial server's listener at addr and checks that both ends are
// in SMC-D mode and the echo is intact.
func echoSMCD(t *testing.T, client, server *proc, addr string) {
	t.Helper()
	if got := client.do("dial "+addr+" 100000", "dial "); got != "dial SMCD NONE ok" {
		t.Errorf("%s dialing %s (%s): %q, want SMCD and an intact echo (%s: %s)", client.name, server.name, addr, got,
			client.name, client.do("sig", "sig"))
	}
	if got := server.expect("accepted "); got != "accepted SMCD NONE" {
		t.Errorf("%s accepted from %s: %q, want SMCD", server.name, client.name, got)
	}
}

// requireProcs requires what the multi-process tests need: root, eBPF and cgroup v2.
func requireProcs(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBPF(t)
	_, err := testenv.Cgroup2Mount()
	testenv.Require(t, "cgroup v2", err)
}

// TestProcessesShareSignalling runs the shapes services have: several processes of
// one cgroup, each opening its signalling on its own, in any start and restart
// order. Every pairing must negotiate SMC-D, on both ends, and echo intact.
func TestProcessesShareSignalling(t *testing.T) {
	requireProcs(t)
	t.Run("client first, server restarted", func(t *testing.T) {
		cg := testenv.NewCgroup(t, "")
		client := startProc(t, "client", cg, procOptions{})
		// The client opens its signalling first (the order that broke: its
		// instance, then the server's, on the same sockets).
		if got := client.do("sig", "sig"); got != "sig ok" {
			t.Fatalf("client: %s", got)
		}
		for i := range 4 {
			server := startProc(t, fmt.Sprintf("server#%d", i), cg, procOptions{})
			addr := server.listen()
			echoSMCD(t, client, server, addr)
			echoSMCD(t, client, server, addr)
			wantInstances(t, cg, 1) // the server joined the client's
			if i%2 == 0 {
				server.stop()
			} else {
				server.kill()
			}
		}
	})
	t.Run("server first, clients later", func(t *testing.T) {
		cg := testenv.NewCgroup(t, "")
		server := startProc(t, "server", cg, procOptions{})
		addr := server.listen()
		for i := range 3 {
			client := startProc(t, fmt.Sprintf("client#%d", i), cg, procOptions{})
			echoSMCD(t, client, server, addr)
			client.stop()
		}
	})
	t.Run("two servers, two clients, interleaved", func(t *testing.T) {
		cg := testenv.NewCgroup(t, "")
		s1 := startProc(t, "server1", cg, procOptions{})
		c1 := startProc(t, "client1", cg, procOptions{})
		c1.do("sig", "sig")
		a1 := s1.listen()
		s2 := startProc(t, "server2", cg, procOptions{})
		c2 := startProc(t, "client2", cg, procOptions{})
		a2 := s2.listen()
		for _, c := range []*proc{c1, c2} {
			echoSMCD(t, c, s1, a1)
			echoSMCD(t, c, s2, a2)
		}
		// The first process to open its signalling goes; the rest carry on.
		s1.kill()
		c3 := startProc(t, "client3", cg, procOptions{})
		for _, c := range []*proc{c1, c2, c3} {
			echoSMCD(t, c, s2, a2)
		}
		wantInstances(t, cg, 1)
	})
	t.Run("nested cgroups", func(t *testing.T) {
		parent := testenv.NewCgroup(t, "")
		child := testenv.NewCgroup(t, parent)
		grandchild := testenv.NewCgroup(t, child)
		inner := startProc(t, "grandchild-server", grandchild, procOptions{})
		ia := inner.listen() // attaches to the grandchild first
		outer := startProc(t, "parent-server", parent, procOptions{})
		oa := outer.listen() // then to the parent: both run on the grandchild's sockets
		mid := startProc(t, "child-client", child, procOptions{})
		deep := startProc(t, "grandchild-client", grandchild, procOptions{})
		for _, c := range []*proc{mid, deep} {
			echoSMCD(t, c, inner, ia)
			echoSMCD(t, c, outer, oa)
		}
		wantInstances(t, grandchild, 2) // its own, then its grandparent's
		wantInstances(t, child, 1)
	})
	t.Run("prepared parent, processes in a child", func(t *testing.T) {
		parent := testenv.NewCgroup(t, "")
		prepare(t, parent)
		child := testenv.NewCgroup(t, parent)
		// One process joins the prepared instance; one without CAP_SYS_ADMIN
		// cannot read it and attaches a second instance to the child; one in the
		// parent and an unprivileged one use the pins.
		server := startProc(t, "child-server", child, procOptions{})
		sa := server.listen()
		second := startProc(t, "child-server-no-sys-admin", child, procOptions{wrap: noSysAdmin(t)})
		sa2 := second.listen()
		clients := []*proc{
			startProc(t, "parent-client", parent, procOptions{}),
			startProc(t, "child-client-unprivileged", child, procOptions{unprivileged: true}),
		}
		for _, c := range clients {
			echoSMCD(t, c, server, sa)
			echoSMCD(t, c, second, sa2)
		}
		wantInstances(t, child, 2)
	})
	t.Run("cgroup namespaces", func(t *testing.T) {
		unshare := testenv.RequireTool(t, "unshare")
		prepared := testenv.NewCgroup(t, "")
		prepare(t, prepared)
		own := testenv.NewCgroup(t, "")
		// In a cgroup namespace /proc/self/cgroup says "/": each process must find
		// its real cgroup, prepared or one it attaches to itself.
		ns := procOptions{wrap: []string{unshare, "--cgroup"}}
		server := startProc(t, "server-in-prepared-ns", prepared, ns)
		unpriv := startProc(t, "unprivileged-client-in-prepared-ns", prepared,
			procOptions{wrap: []string{unshare, "--cgroup"}, unprivileged: true})
		selfServer := startProc(t, "server-in-own-ns", own, ns)
		selfClient := startProc(t, "client-in-own-ns", own, ns)
		plainClient := startProc(t, "client-in-own", own, procOptions{})
		sa, ssa := server.listen(), selfServer.listen()
		echoSMCD(t, unpriv, server, sa)
		echoSMCD(t, selfClient, selfServer, ssa)
		echoSMCD(t, plainClient, selfServer, ssa)
		echoSMCD(t, selfClient, server, sa)
		wantInstances(t, prepared, 1)
		wantInstances(t, own, 1)
	})
	t.Run("ip netns exec", func(t *testing.T) {
		ns := testenv.NewNetns(t)
		ipExec := procOptions{wrap: []string{testenv.RequireTool(t, "ip"), "netns", "exec", ns}}
		cg := testenv.NewCgroup(t, "")
		// ip netns exec mounts a fresh /sys: no cgroup v2 or bpffs mount in sight.
		server := startProc(t, "server", cg, ipExec)
		client := startProc(t, "client", cg, ipExec)
		echoSMCD(t, client, server, server.listen())
		wantInstances(t, cg, 1)
	})
}

// prepare prepares the cgroup at dir with smc attach's function, for members of
// group 65534 too (the unprivileged processes), and detaches it afterwards.
func prepare(t *testing.T, dir string) {
	t.Helper()
	if _, err := signal.AttachCgroup(dir, signal.AttachOptions{Group: strconv.Itoa(testenv.Nobody)}); err != nil {
		t.Fatalf("preparing %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := signal.DetachCgroup(dir); err != nil {
			t.Errorf("detaching %s: %v", dir, err)
		}
	})
}

// noSysAdmin returns a wrapper that runs a process as root without CAP_SYS_ADMIN:
// it may attach programs but not open another process's by ID.
func noSysAdmin(t *testing.T) []string {
	return []string{testenv.RequireTool(t, "setpriv"), "--bounding-set=-sys_admin", "--inh-caps=-sys_admin"}
}

// wantInstances checks how many instances of this package's program run on the
// sockets of the cgroup at dir, and that nothing else does.
func wantInstances(t *testing.T, dir string, want int) {
	t.Helper()
	in, err := signal.Instances(dir)
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, i := range in {
		if i.Kind == "ours" {
			ours++
		} else {
			t.Errorf("%s: program %d is %s", dir, i.ID, i.Kind)
		}
	}
	if ours != want {
		t.Errorf("%s: %d instances of the signalling run on its sockets, want %d", dir, ours, want)
	}
}

// TestConflictingProgram: another program that writes the SMC option into every
// handshake of the cgroup makes announcing SMC unsafe. The processes must detect
// it and use plain TCP with reason SIGNALLING_CONFLICT, and no CLC byte may reach
// an application: a plain-TCP server reads exactly what the client wrote.
func TestConflictingProgram(t *testing.T) {
	requireProcs(t)
	cg := testenv.NewCgroup(t, "")
	testenv.AttachForeignSMCWriter(t, cg)
	server := startProc(t, "server", cg, procOptions{})
	plain := startProc(t, "plain-server", cg, procOptions{})
	client := startProc(t, "client", cg, procOptions{})
	if got := client.do("sig", "sig"); !strings.Contains(got, "signalling conflict") {
		t.Errorf("client: %q, want a signalling conflict", got)
	}
	addr := server.listen()
	if got := client.do("dial "+addr+" 100000", "dial "); got != "dial TCP SIGNALLING_CONFLICT ok" {
		t.Errorf("client to smc server: %q", got)
	}
	if got := server.expect("accepted "); got != "accepted TCP SIGNALLING_CONFLICT" {
		t.Errorf("smc server: %q", got)
	}
	paddr := strings.TrimPrefix(plain.do("plainlisten", "listening "), "listening ")
	// An echo with any CLC message in it would not equal what was sent.
	if got := client.do("dial "+paddr+" 100000", "dial "); got != "dial TCP SIGNALLING_CONFLICT ok" {
		t.Errorf("client to plain server: %q", got)
	}
}

// TestCrossNamespace runs a client and a server in two network namespaces joined by a
// veth pair, sharing an endpoint directory: their connections are SMC-D over a link.
// A client that looks for the server's endpoint in another directory cannot reach it,
// and declines with PEER_UNREACHABLE.
func TestCrossNamespace(t *testing.T) {
	requireProcs(t)
	ip := testenv.RequireTool(t, "ip")
	srv, cli := testenv.NewNetns(t), testenv.NewNetns(t)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	veth := fmt.Sprintf("smcx%d", os.Getpid()%100000)
	run("link", "add", veth+"s", "netns", srv, "type", "veth", "peer", "name", veth+"c", "netns", cli)
	run("-n", srv, "addr", "add", "10.77.0.1/24", "dev", veth+"s")
	run("-n", cli, "addr", "add", "10.77.0.2/24", "dev", veth+"c")
	run("-n", srv, "link", "set", veth+"s", "up")
	run("-n", cli, "link", "set", veth+"c", "up")
	dir := t.TempDir()
	cg := testenv.NewCgroup(t, "")
	server := startProc(t, "server", cg, procOptions{wrap: []string{ip, "netns", "exec", srv}})
	client := startProc(t, "client", cg, procOptions{wrap: []string{ip, "netns", "exec", cli}})
	l := server.do("xlisten 10.77.0.1:0 "+dir, "listening ")
	addr := strings.TrimPrefix(l, "listening ")
	if strings.HasPrefix(addr, "error") {
		t.Fatal(l)
	}
	for i := range 3 { // the first sets the link up, the others reuse it
		if got := client.do("xdial "+addr+" 100000 "+dir, "dial "); got != "dial SMCD NONE ok" {
			t.Fatalf("dial %d across namespaces: %q, want SMCD and an intact echo", i, got)
		}
		if got := server.expect("accepted "); got != "accepted SMCD NONE" {
			t.Fatalf("accepted %d across namespaces: %q, want SMCD", i, got)
		}
	}
	if got := client.do("xdial "+addr+" 1000 "+t.TempDir(), "dial "); got != "dial TCP PEER_UNREACHABLE ok" {
		t.Fatalf("dial without the server's directory: %q, want TCP with PEER_UNREACHABLE", got)
	}
	if got := server.expect("accepted "); got != "accepted TCP PEERDECL" {
		t.Fatalf("accepted from a client without the directory: %q, want TCP with PEERDECL", got)
	}
}
