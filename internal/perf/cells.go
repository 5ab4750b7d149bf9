package perf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// runEcho runs sh.Conns connections doing request/response of sh.Size bytes each
// way for d; with lat it records every round trip's latency (one connection).
// start is called once every connection is set up, just before the clock starts.
func runEcho(ctx context.Context, dial func(context.Context) (net.Conn, error), sh Shape, d time.Duration, start func() error, stop func(), lat bool) CellResult {
	conns := make([]net.Conn, 0, sh.Conns)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	hdr := header(nil, opEcho, sh.Size, sh.Size)
	for range sh.Conns {
		conn, err := dial(ctx)
		if err != nil {
			return CellResult{Err: err}
		}
		conns = append(conns, conn)
		if _, err := conn.Write(hdr); err != nil {
			return CellResult{Err: err}
		}
	}
	if err := start(); err != nil {
		return CellResult{Err: err}
	}
	var (
		ops   atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		lats  []time.Duration
	)
	t0 := time.Now()
	end := t0.Add(d)
	for i, conn := range conns {
		conn.SetDeadline(end.Add(10 * time.Second))
		wg.Go(func() {
			buf := make([]byte, sh.Size)
			for j := range buf {
				buf[j] = byte(j)
			}
			var n int64
			var mine []time.Duration
			if lat && i == 0 {
				mine = make([]time.Duration, 0, 1<<14)
			}
			for {
				s := time.Now()
				// Every connection makes at least one round trip, so that a cell
				// whose goroutines start late on a loaded machine measures something.
				if n > 0 && s.After(end) {
					break
				}
				if _, err := conn.Write(buf); err != nil {
					errMu.Lock()
					first = cmpOr(first, err)
					errMu.Unlock()
					break
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					errMu.Lock()
					first = cmpOr(first, err)
					errMu.Unlock()
					break
				}
				n++
				if mine != nil {
					mine = append(mine, time.Since(s))
				}
			}
			ops.Add(n)
			if mine != nil {
				lats = mine
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	stop()
	if first != nil {
		return CellResult{Err: first}
	}
	return CellResult{Ops: ops.Load(), Bytes: ops.Load() * int64(sh.Size), Elapsed: elapsed, Lat: lats}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// runIdle makes one round trip of size bytes on a new connection, then leaves it
// open and idle for d: the CPU both processes spend meanwhile is what an idle
// connection costs (a data path that keeps spinning shows here).
func runIdle(ctx context.Context, dial func(context.Context) (net.Conn, error), size int, d time.Duration, start func() error, stop func()) CellResult {
	conn, err := dial(ctx)
	if err != nil {
		return CellResult{Err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(d + 10*time.Second))
	buf := make([]byte, size)
	if _, err := conn.Write(append(header(nil, opEcho, size, size), buf...)); err != nil {
		return CellResult{Err: err}
	}
	if _, err := io.ReadFull(conn, buf); err != nil {
		return CellResult{Err: err}
	}
	if err := start(); err != nil {
		return CellResult{Err: err}
	}
	t0 := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return CellResult{Err: ctx.Err()}
	}
	elapsed := time.Since(t0)
	stop()
	return CellResult{Ops: 1, Elapsed: elapsed}
}

// runBulk writes size-byte chunks one way for d, then half-closes and waits for
// the server's count of what it received; the time includes that drain.
func runBulk(ctx context.Context, dial func(context.Context) (net.Conn, error), size int, d time.Duration, start func() error, stop func()) CellResult {
	conn, err := dial(ctx)
	if err != nil {
		return CellResult{Err: err}
	}
	defer conn.Close()
	if _, err := conn.Write(header(nil, opSink, 0, 0)); err != nil {
		return CellResult{Err: err}
	}
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		return CellResult{Err: fmt.Errorf("smc: perf: %T has no CloseWrite", conn)}
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	if err := start(); err != nil {
		return CellResult{Err: err}
	}
	t0 := time.Now()
	conn.SetDeadline(t0.Add(d + 10*time.Second))
	var total, ops int64
	for ops == 0 || time.Since(t0) < d { // at least one write, however late it starts
		n, err := conn.Write(buf)
		total += int64(n)
		if err != nil {
			return CellResult{Err: err}
		}
		ops++
	}
	if err := cw.CloseWrite(); err != nil {
		return CellResult{Err: err}
	}
	var got [8]byte
	if _, err := io.ReadFull(conn, got[:]); err != nil {
		return CellResult{Err: fmt.Errorf("smc: perf: reading the sink's count: %w", err)}
	}
	elapsed := time.Since(t0)
	stop()
	if n := int64(binary.BigEndian.Uint64(got[:])); n != total {
		return CellResult{Err: fmt.Errorf("smc: perf: the server received %d bytes of %d", n, total)}
	}
	return CellResult{Ops: ops, Bytes: total, Elapsed: elapsed}
}

// runShort runs sh.Conns workers, each repeatedly connecting, sending one request
// of sh.Size bytes (with the header, in one write), reading the response and
// closing, for d.
func runShort(ctx context.Context, dial func(context.Context) (net.Conn, error), sh Shape, d time.Duration, start func() error, stop func()) CellResult {
	if err := start(); err != nil {
		return CellResult{Err: err}
	}
	var (
		ops, errs atomic.Int64
		wg        sync.WaitGroup
		lastErr   atomic.Value
	)
	t0 := time.Now()
	end := t0.Add(d)
	for range sh.Conns {
		wg.Go(func() {
			req := header(make([]byte, 0, headerLen+sh.Size), opEcho, sh.Size, sh.Size)
			req = append(req, make([]byte, sh.Size)...)
			resp := make([]byte, sh.Size)
			var n int64
			for first := true; first || time.Now().Before(end); first = false { // one try at least
				if err := shortOnce(ctx, dial, req, resp); err != nil {
					errs.Add(1)
					lastErr.Store(err)
					continue
				}
				n++
			}
			ops.Add(n)
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	stop()
	if ops.Load() == 0 {
		err, _ := lastErr.Load().(error)
		if err == nil {
			err = errors.New("smc: perf: no connection completed")
		}
		return CellResult{Err: err}
	}
	return CellResult{Ops: ops.Load(), Elapsed: elapsed, Errors: errs.Load()}
}

func shortOnce(ctx context.Context, dial func(context.Context) (net.Conn, error), req, resp []byte) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		return err
	}
	_, err = io.ReadFull(conn, resp)
	return err
}
