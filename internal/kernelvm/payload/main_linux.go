// Command payload runs inside the kernel VM of internal/kernelvm, as root, with the
// guest's smc.ko loaded, and pits this module against the kernel's SMC code on
// 127.0.0.1:
//
//   - kernel-client: a kernel AF_SMC client against smc.Listen;
//   - kernel-server: smc.Dial against a kernel AF_SMC listener.
//
// Each scenario sends data both ways (each side writes, half-closes and reads to
// the end), reads smc_diag for the kernel side's view while the sockets are open,
// and captures the connection on lo. It prints one kernelvm.Report per line after
// kernelvm.ReportPrefix and exits 0 when every scenario ran to the end; the test
// decides whether the results are right.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/kernelvm"
	"github.com/smc-go/smc/internal/testenv"
)

var (
	scenarioTimeout = flag.Duration("timeout", 20*time.Second, "time limit of each scenario")
	dataSize        = flag.Int("size", 256<<10, "bytes sent in each direction")
)

func main() {
	flag.Parse()
	watchdog := time.AfterFunc(3**scenarioTimeout, func() {
		emit(kernelvm.Report{Name: "watchdog", Err: "smc: payload: global time limit reached"})
		os.Exit(3)
	})
	ok := run()
	watchdog.Stop()
	if !ok {
		os.Exit(1)
	}
}

func emit(r kernelvm.Report) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(kernelvm.Report{Name: r.Name, Err: "smc: payload: " + err.Error()})
	}
	os.Stdout.Write(append([]byte(kernelvm.ReportPrefix), append(b, '\n')...))
}

func run() bool {
	env := kernelvm.Report{Name: "env"}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		env.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	// The signalling refuses the root cgroup, where /init started us. The VM powers
	// off afterwards, so the cgroup is never left.
	dir, _, err := testenv.EnterChildCgroup()
	if err != nil {
		env.Err = err.Error()
		emit(env)
		return false
	}
	env.Cgroup = dir
	if err := smc.SignallingError(); err != nil {
		env.Signalling = err.Error()
		emit(env)
		return false
	}
	emit(env)
	toServer = pattern("kernelvm client data\n", 1, *dataSize)
	toClient = pattern("kernelvm server data\n", 2, *dataSize)
	ok := true
	for _, sc := range []func(*kernelvm.Report) error{kernelClient, kernelServer} {
		r := kernelvm.Report{}
		if err := sc(&r); err != nil {
			r.Err = err.Error()
			ok = false
		}
		emit(r)
	}
	return ok
}

// pattern returns n bytes that start with a readable label, so that the capture
// shows where CLC ends and data begins, followed by pseudo-random bytes.
func pattern(label string, seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	rng.Read(b)
	copy(b, label)
	return b
}

// The data each side sends, set by run once the flags are parsed.
var toServer, toClient []byte

// kernelClient: a kernel AF_SMC client connects to smc.Listen. The kernel has no
// SMC device, so it sends a v1 Decline instead of a Proposal; our server must fall
// back with PEERDECL and hand the application every byte after the Decline.
func kernelClient(r *kernelvm.Report) error {
	r.Name = "kernel-client"
	ln, err := smc.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	r.Port = uint16(ln.Addr().(*net.TCPAddr).Port)
	sn := sniff(r)

	fd, err := unix.Socket(afSMC, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("smc: payload: socket(AF_SMC): %w", err)
	}
	peer := &fdConn{fd: fd}
	defer peer.Close()
	stop := time.AfterFunc(*scenarioTimeout, func() { ln.Close(); peer.Shutdown() })
	defer stop.Stop()

	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		acc <- accepted{c, err}
	}()
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(r.Port), Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("smc: payload: connect(AF_SMC): %w", err)
	}
	a := <-acc
	if a.err != nil {
		return a.err
	}
	c := a.c
	defer c.Close()
	stop.Stop()
	stop = time.AfterFunc(*scenarioTimeout, func() { c.Close(); peer.Shutdown() })
	diag(r)
	err = exchange(r, c, peer, false)
	c.Close()
	peer.Close()
	if sn != nil {
		settle()
		r.Wire = sn.Stop()
	}
	return err
}

// kernelServer: smc.Dial connects to a kernel AF_SMC listener. Our client sends its
// Proposal; the kernel, with no SMC device, must decline it, and our client must
// report ModeTCP with PEERDECL and carry on over TCP.
func kernelServer(r *kernelvm.Report) error {
	r.Name = "kernel-server"
	lfd, err := unix.Socket(afSMC, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("smc: payload: socket(AF_SMC): %w", err)
	}
	lpeer := &fdConn{fd: lfd}
	defer lpeer.Close()
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("smc: payload: bind(AF_SMC): %w", err)
	}
	if err := unix.Listen(lfd, 8); err != nil {
		return fmt.Errorf("smc: payload: listen(AF_SMC): %w", err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		return fmt.Errorf("smc: payload: getsockname(AF_SMC): %w", err)
	}
	sa4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fmt.Errorf("smc: payload: getsockname(AF_SMC) returned %T", sa)
	}
	r.Port = uint16(sa4.Port)
	sn := sniff(r)

	type accepted struct {
		peer *fdConn
		err  error
	}
	acc := make(chan accepted, 1)
	go func() {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			acc <- accepted{nil, fmt.Errorf("smc: payload: accept(AF_SMC): %w", err)}
			return
		}
		acc <- accepted{&fdConn{fd: fd}, nil}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), *scenarioTimeout)
	defer cancel()
	var d smc.Dialer
	c, err := d.DialContext(ctx, "tcp4", fmt.Sprintf("127.0.0.1:%d", r.Port))
	if err != nil {
		lpeer.Shutdown()
		return err
	}
	defer c.Close()
	stop := time.AfterFunc(*scenarioTimeout, func() { c.Close(); lpeer.Shutdown() })
	defer stop.Stop()
	a := <-acc
	if a.err != nil {
		return a.err
	}
	peer := a.peer
	defer peer.Close()
	stop.Stop()
	stop = time.AfterFunc(*scenarioTimeout, func() { c.Close(); peer.Shutdown() })
	diag(r)
	err = exchange(r, c, peer, true)
	c.Close()
	peer.Close()
	if sn != nil {
		settle()
		r.Wire = sn.Stop()
	}
	return err
}

// exchange moves the data both ways between our conn c and the kernel's peer: the
// client writes and half-closes, the server reads to the end, then the server
// writes and half-closes and the client reads to the end. It fills in our side's
// state and whether every byte arrived exactly.
func exchange(r *kernelvm.Report, c net.Conn, peer *fdConn, weAreClient bool) error {
	type halfCloser interface{ CloseWrite() error }
	ours := func(send []byte) (got []byte, err error) {
		if weAreClient {
			if _, err := c.Write(send); err != nil {
				return nil, err
			}
			if err := c.(halfCloser).CloseWrite(); err != nil {
				return nil, err
			}
			return io.ReadAll(c)
		}
		if got, err = io.ReadAll(c); err != nil {
			return got, err
		}
		if _, err := c.Write(send); err != nil {
			return got, err
		}
		return got, c.(halfCloser).CloseWrite()
	}
	theirs := func(send []byte) (got []byte, err error) {
		if !weAreClient {
			if _, err := peer.Write(send); err != nil {
				return nil, err
			}
			if err := peer.CloseWrite(); err != nil {
				return nil, err
			}
			return io.ReadAll(peer)
		}
		if got, err = io.ReadAll(peer); err != nil {
			return got, err
		}
		if _, err := peer.Write(send); err != nil {
			return got, err
		}
		return got, peer.CloseWrite()
	}
	ourData, theirData := toClient, toServer
	if weAreClient {
		ourData, theirData = toServer, toClient
	}
	var (
		wg        sync.WaitGroup
		theirGot  []byte
		theirErr  error
		ourGot    []byte
		ourErr    error
		ourResult = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		theirGot, theirErr = theirs(theirData)
	}()
	go func() {
		defer close(ourResult)
		ourGot, ourErr = ours(ourData)
	}()
	<-ourResult
	wg.Wait()
	r.ConnType = fmt.Sprintf("%T", c)
	st := smc.State(c)
	r.Ours = &kernelvm.State{
		Mode:              st.Mode.String(),
		Fallback:          st.Fallback.String(),
		PeerDiagnosis:     st.PeerDiagnosis.String(),
		HandshakeComplete: st.HandshakeComplete,
		Offered:           st.Offered,
		PeerAdvertised:    st.PeerAdvertised,
	}
	r.Sent, r.Received = len(ourData), len(ourGot)
	r.SentIntact = bytes.Equal(theirGot, ourData)
	r.ReceivedIntact = bytes.Equal(ourGot, theirData)
	if ourErr != nil {
		return fmt.Errorf("smc: payload: our side: %w", ourErr)
	}
	if theirErr != nil {
		return fmt.Errorf("smc: payload: kernel side: %w", theirErr)
	}
	return nil
}

// diag records the kernel's AF_SMC sockets of the scenario's connection, leaving
// out the listener.
func diag(r *kernelvm.Report) {
	all, err := smcDiag()
	if err != nil {
		r.DiagErr = err.Error()
	}
	suffix := fmt.Sprintf(":%d", r.Port)
	for _, s := range all {
		if s.State != "LISTEN" && (strings.HasSuffix(s.Local, suffix) || strings.HasSuffix(s.Remote, suffix)) {
			r.Diag = append(r.Diag, s)
		}
	}
	if err == nil && len(r.Diag) == 0 {
		r.DiagErr = fmt.Sprintf("smc: payload: smc_diag listed %d sockets, none on port %d: %v", len(all), r.Port, all)
	}
}

// sniff starts a capture of the port, or records why it could not.
func sniff(r *kernelvm.Report) *sniffer {
	sn, err := startSniffer(r.Port)
	if err != nil {
		r.Wire = &kernelvm.Wire{Err: err.Error()}
		return nil
	}
	return sn
}

// fdConn is a blocking kernel socket (here AF_SMC) used as an io.ReadWriter.
type fdConn struct {
	mu     sync.Mutex
	fd     int
	closed bool
}

func (f *fdConn) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, b)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *fdConn) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(f.fd, b[done:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

func (f *fdConn) CloseWrite() error { return unix.Shutdown(f.fd, unix.SHUT_WR) }

// Shutdown unblocks a pending Read, Write or Accept.
func (f *fdConn) Shutdown() { unix.Shutdown(f.fd, unix.SHUT_RDWR) }

func (f *fdConn) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	return unix.Close(f.fd)
}
