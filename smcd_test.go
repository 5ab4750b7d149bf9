package smc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
)

// requireSignalling stops a test that needs both ends to announce SMC.
func requireSignalling(t *testing.T) {
	t.Helper()
	testenv.Require(t, "a child cgroup for the test binary", cgroupErr)
	testenv.Require(t, "eBPF signalling", SignallingError())
}

// TestDialListenSMCD: smc.Dial to smc.Listen on this host ends in SMC-D on both
// sides, with the TCP handshake carrying the option both ways.
func TestDialListenSMCD(t *testing.T) {
	requireSignalling(t)
	client, server := pair(t, listenSMC, dialSMC)
	defer client.Close()
	defer server.Close()
	for _, c := range []net.Conn{client, server} {
		if _, ok := c.(*Conn); !ok {
			t.Fatalf("conn is %T, want *smc.Conn", c)
		}
		st := State(c)
		if st.Mode != ModeSMCD || !st.Offered || !st.PeerAdvertised {
			t.Fatalf("state %+v, want ModeSMCD, offered and advertised", st)
		}
	}
	exchange(t, client, server, "hello over SMC-D\n")
}

// TestHTTPOverSMC: net/http server and client work unchanged over smc in SMC mode.
func TestHTTPOverSMC(t *testing.T) {
	requireSignalling(t)
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	modes := map[Mode]int{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateActive {
				mu.Lock()
				modes[State(c).Mode]++
				mu.Unlock()
			}
		},
	}
	go srv.Serve(ln)
	defer srv.Close()
	var d Dialer
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := make([]byte, 300<<10)
	for i := range 20 {
		resp, err := client.Post("http://"+ln.Addr().String()+"/p"+fmt.Sprint(i), "application/octet-stream", bytesReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("POST /p%d %d", i, len(body)); string(got) != want {
			t.Fatalf("response %q, want %q", got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if modes[ModeSMCD] == 0 || modes[ModeTCP] != 0 {
		t.Fatalf("server connection modes %v, want SMC-D only", modes)
	}
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestStressMixed moves data over many concurrent connections with random write
// and read sizes and checks every byte with a hash, mixing SMC-D pairs with
// fallback pairs (one side plain net).
func TestStressMixed(t *testing.T) {
	requireSignalling(t)
	total := int64(1 << 30) // 1 GiB across all connections
	if testing.Short() {
		total = 64 << 20
	}
	const conns = 16
	per := total / conns
	kinds := []struct {
		name   string
		listen listenFunc
		dial   dialFunc
	}{
		{"smc", listenSMC, dialSMC},
		{"smc-dial/net-listen", listenNet, dialSMC},
		{"net-dial/smc-listen", listenSMC, dialNet},
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		k := kinds[0] // mostly SMC-D, where the volume should go, and some fallback pairs
		if i < 2*len(kinds) {
			k = kinds[i%len(kinds)]
		}
		client, server := pair(t, k.listen, k.dial)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer client.Close()
			defer server.Close()
			if err := stream(client, server, per, uint64(i)); err != nil {
				errs <- fmt.Errorf("conn %d (%s): %w", i, k.name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// stream writes n pseudo-random bytes from w in random-sized writes while r reads
// them in random-sized reads, and compares hashes.
func stream(w, r net.Conn, n int64, seed uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w.SetDeadline(time.Now().Add(5 * time.Minute))
	r.SetDeadline(time.Now().Add(5 * time.Minute))
	sent := make(chan [32]byte, 1)
	werr := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(seed, 1))
		var key [32]byte
		key[0] = byte(seed)
		data := rand.NewChaCha8(key)
		h := sha256.New()
		buf := make([]byte, 256<<10)
		for left := n; left > 0; {
			sz := min(int64(1+rng.IntN(len(buf))), left)
			b := buf[:sz]
			data.Read(b)
			h.Write(b)
			if _, err := w.Write(b); err != nil {
				werr <- err
				return
			}
			left -= sz
		}
		sent <- [32]byte(h.Sum(nil))
		werr <- w.(interface{ CloseWrite() error }).CloseWrite()
	}()
	rng := rand.New(rand.NewPCG(seed, 2))
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var got int64
	for {
		m, err := r.Read(buf[:1+rng.IntN(len(buf))])
		h.Write(buf[:m])
		got += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read after %d bytes: %w", got, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if got != n {
		return fmt.Errorf("read %d bytes, want %d", got, n)
	}
	if want := <-sent; [32]byte(h.Sum(nil)) != want {
		return fmt.Errorf("checksum mismatch")
	}
	return nil
}

// TestCopy: io.Copy through a Conn uses its ReaderFrom and WriterTo, in SMC-D mode
// and over TCP with replayed bytes, and moves every byte.
func TestCopy(t *testing.T) {
	check := func(t *testing.T, w, r net.Conn, prefix string) {
		t.Helper()
		src := make([]byte, 3<<20+17)
		rand.NewChaCha8([32]byte{7}).Read(src)
		errc := make(chan error, 1)
		go func() {
			_, err := io.Copy(w, bytesReader(src))
			w.(interface{ CloseWrite() error }).CloseWrite()
			errc <- err
		}()
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got sliceWriter
		if _, err := io.Copy(&got, r); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		want := append([]byte(prefix), src...)
		if sha256.Sum256(got.b) != sha256.Sum256(want) {
			t.Fatalf("copied %d bytes, want %d, or content differs", len(got.b), len(want))
		}
	}
	t.Run("smcd", func(t *testing.T) {
		client, server := smcPair(t, nil, nil)
		check(t, client, server, "")
		if _, ok := any(server).(io.WriterTo); !ok {
			t.Fatal("Conn is not an io.WriterTo")
		}
	})
	t.Run("tcp-replayed", func(t *testing.T) {
		ct, st := tcpPair(t)
		server := newConn(st, false, nil, advertised)
		ct.Write([]byte("not clc: "))
		check(t, ct, server, "not clc: ")
	})
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// TestDeadlinesCarriedIntoSMCD: a deadline the server set before its handshake bounds
// its reads in SMC-D mode too, and a Conn whose caller set none has none once in
// SMC-D mode: its Read waits for the peer as long as the peer takes.
func TestDeadlinesCarriedIntoSMCD(t *testing.T) {
	requireSignalling(t)
	client, server := pairAccepting(t, listenSMC, dialSMC, func(c net.Conn) error {
		// Set before the handshake, which runs on the first Read.
		if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			return err
		}
		guard := time.AfterFunc(10*time.Second, func() { c.Close() }) // should the deadline be lost
		defer guard.Stop()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("server Read: %v, want a deadline error", err)
		}
		return nil
	})
	defer client.Close()
	defer server.Close()
	if st := State(server); st.Mode != ModeSMCD {
		t.Fatalf("server state %+v, want SMC-D", st)
	}
	// No deadline on the client: its Read waits until the server writes.
	go func() {
		time.Sleep(100 * time.Millisecond)
		server.Write([]byte("x"))
	}()
	buf := make([]byte, 1)
	if _, err := io.ReadFull(client, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("client Read: %q, %v", buf, err)
	}
}
