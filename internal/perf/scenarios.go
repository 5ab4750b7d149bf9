package perf

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/smc-go/smc"
)

// runSetup measures connection set-up: batches of setupBatch connections, each
// dialed one after the other until it can write (the dial, and the write of its
// header), until the server has read every header of the batch (for an
// *smc.Conn, its handshake is over and it can read). CPU of both processes and
// the time are measured around each batch, from its first dial to the server's
// last header, and summed over batches until they reach d; each dial's time
// until its header was written is a latency sample. The server does not read
// from a connection after its header. The connections of a batch are then
// closed, outside the measurement, and the next batch starts once the
// server has closed them too (and every other connection), so that no tear-down
// overlaps a measurement. The
// server's CPU includes answering the control polls that wait for the batch's
// headers (about one per batch).
func (c *Client) runSetup(ctx context.Context, dial func(context.Context) (net.Conn, error), d time.Duration) CellResult {
	hdr := header(nil, opHold, 0, 0)
	held := func(n int64) func(ServerStats) bool { return func(st ServerStats) bool { return st.Held == n } }
	// Open counts a connection until the server's Close has returned.
	closed := func(st ServerStats) bool { return st.Held == 0 && st.Open == 0 }
	if _, err := c.ctl.waitServer(ctx, 10*time.Second, "no open connection", closed); err != nil {
		return CellResult{Err: err}
	}
	var (
		res   CellResult
		conns = make([]net.Conn, 0, setupBatch)
	)
	closeAll := func() {
		for _, conn := range conns {
			conn.Close()
		}
		conns = conns[:0]
	}
	defer func() {
		closeAll()
		c.ctl.release() // a failed batch's connections are not left held
	}()
	for res.Elapsed < d {
		if err := ctx.Err(); err != nil {
			return CellResult{Err: err}
		}
		srv0, err := c.ctl.stats(false)
		if err != nil {
			return CellResult{Err: err}
		}
		cpu0, t0 := ProcessCPU(), time.Now()
		for range setupBatch {
			s := time.Now()
			conn, err := dial(ctx)
			if err != nil {
				return CellResult{Err: err}
			}
			conns = append(conns, conn)
			if _, err := conn.Write(hdr); err != nil {
				return CellResult{Err: err}
			}
			res.Lat = append(res.Lat, time.Since(s))
		}
		srv1, err := c.ctl.waitServer(ctx, 10*time.Second, "every header of the batch", held(setupBatch))
		if err != nil {
			return CellResult{Err: err}
		}
		res.Elapsed += time.Since(t0)
		res.ClientCPU += ProcessCPU() - cpu0
		res.ServerCPU += time.Duration(srv1.CPUNanos - srv0.CPUNanos)
		res.Ops += setupBatch
		closeAll()
		if err := c.ctl.release(); err != nil {
			return CellResult{Err: err}
		}
		if _, err := c.ctl.waitServer(ctx, 10*time.Second, "no open connection", closed); err != nil {
			return CellResult{Err: err}
		}
	}
	return res
}

// A MemResult is the memory that idle connections hold, per connection, in
// bytes: what the client and the server gained between before the connections
// were opened and after they had passed their data and idled, each time after a
// garbage collection that returned free memory to the system.
type MemResult struct {
	ClientRSS, ServerRSS float64
	ClientPSS, ServerPSS float64
	// PTE is the growth of both processes' page tables.
	PTE float64
	// Cgroup is the gain of the memory cgroup both processes run in (user and
	// kernel memory, TCP socket memory included); valid only with HasCgroup.
	Cgroup    float64
	HasCgroup bool
	// ShmAtStart is the shared memory the two processes still held (smc.Stats)
	// when the baseline was read: memory the connections may have reused, and
	// so left out of the figures. Zero when every earlier ring was gone.
	ShmAtStart int64
}

// shmQuiet bounds the wait of an idlemem cell for the shared memory of earlier
// connections to be returned: a library may keep freed rings for reuse a while.
const shmQuiet = 10 * time.Second

// runIdleMem opens sh.Conns connections one after the other; on each it passes
// sh.Size bytes each way once, through a small buffer on both sides, and then
// leaves it open and idle for d. It reports the memory the two processes gained
// per connection (see [MemResult]).
func (c *Client) runIdleMem(ctx context.Context, dial func(context.Context) (net.Conn, error), sh Shape, d time.Duration) CellResult {
	// The connections of earlier cells are closed first, and their shared memory
	// returned if it is within shmQuiet: their memory is not ours.
	if _, err := c.ctl.waitServer(ctx, 10*time.Second, "no open connection", func(st ServerStats) bool { return st.Open == 0 }); err != nil {
		return CellResult{Err: err}
	}
	st, err := c.ctl.waitServer(ctx, shmQuiet, "", func(st ServerStats) bool { return st.ShmInUse == 0 && smc.Stats().MemoryInUse == 0 })
	if err != nil && ctx.Err() != nil {
		return CellResult{Err: err}
	}
	shmAtStart := st.ShmInUse + smc.Stats().MemoryInUse
	before, err := c.memory()
	if err != nil {
		return CellResult{Err: err}
	}
	conns := make([]net.Conn, 0, sh.Conns)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	buf := make([]byte, min(passChunk, sh.Size))
	for range sh.Conns {
		conn, err := dial(ctx)
		if err != nil {
			return CellResult{Err: err}
		}
		conns = append(conns, conn)
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		if err := passClient(conn, buf, sh.Size); err != nil {
			return CellResult{Err: fmt.Errorf("smc: perf: passing data on connection %d: %w", len(conns), err)}
		}
		conn.SetDeadline(time.Time{})
	}
	t0 := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return CellResult{Err: ctx.Err()}
	}
	after, err := c.memory()
	if err != nil {
		return CellResult{Err: err}
	}
	n := float64(sh.Conns)
	m := &MemResult{
		ClientRSS: float64(after.client.RSS-before.client.RSS) / n,
		ServerRSS: float64(after.server.RSS-before.server.RSS) / n,
		ClientPSS: float64(after.client.PSS-before.client.PSS) / n,
		ServerPSS: float64(after.server.PSS-before.server.PSS) / n,
		PTE:       float64(after.client.PTE-before.client.PTE+after.server.PTE-before.server.PTE) / n,
	}
	if before.hasCgroup && after.hasCgroup {
		m.Cgroup, m.HasCgroup = float64(after.cgroup-before.cgroup)/n, true
	}
	m.ShmAtStart = shmAtStart
	return CellResult{Ops: int64(sh.Conns), Elapsed: time.Since(t0), Mem: m}
}

// passClient is the client side of opPass: the header, size bytes out, size
// bytes back, through buf.
func passClient(conn net.Conn, buf []byte, size int) error {
	if _, err := conn.Write(header(nil, opPass, size, size)); err != nil {
		return err
	}
	for left := size; left > 0; {
		n, err := conn.Write(buf[:min(len(buf), left)])
		left -= n
		if err != nil {
			return err
		}
	}
	for left := size; left > 0; {
		n, err := conn.Read(buf[:min(len(buf), left)])
		left -= n
		if err != nil {
			if err == io.EOF && left > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

type memSnapshot struct {
	client, server Memory
	cgroup         int64
	hasCgroup      bool
}

// memory collects garbage in both processes and reads their memory, then the
// memory cgroup's charge.
func (c *Client) memory() (memSnapshot, error) {
	var s memSnapshot
	var err error
	if s.server, err = c.ctl.mem(); err != nil {
		return s, err
	}
	if s.client, err = SelfMemory(); err != nil {
		return s, err
	}
	s.cgroup, s.hasCgroup = c.o.Memcg.Charge()
	return s, nil
}

// SideCounts flattens one side of smc.Stats into counts by the state a
// connection ended in ("SMCD", "TCP/<reason>", "failed"), plus "offered" and
// "negotiated", which [CellCounts] needs.
func SideCounts(s smc.SideStatistics) map[string]int64 {
	m := map[string]int64{
		"offered":                 int64(s.Offered),
		"negotiated":              int64(s.Negotiated),
		"SMCD":                    int64(s.SMCD),
		"failed":                  int64(s.Failed),
		"TCP/PEERNOSMC":           int64(s.PeerNoSMC),
		"TCP/NOT_SENT":            int64(s.NotSent),
		"TCP/SIGNALLING_CONFLICT": int64(s.Conflicts),
	}
	for r, n := range s.Fallbacks {
		m["TCP/"+r.String()] += int64(n)
	}
	return m
}

// notNegotiated are the states of SideCounts a connection ends in without a
// CLC handshake.
var notNegotiated = map[string]bool{"TCP/PEERNOSMC": true, "TCP/NOT_SENT": true, "TCP/SIGNALLING_CONFLICT": true}

// CellCounts counts the connections of one side of a cell by the state they
// ended in, from SideCounts before and after it and the number of connections
// that side made or accepted in it: those it did not offer SMC to are
// "TCP/NOT_OFFERED", and negotiated ones whose handshake had not ended are
// "unfinished".
func CellCounts(before, after map[string]int64, conns int64) map[string]int64 {
	out := map[string]int64{}
	var ended int64
	for k, v := range after {
		n := v - before[k]
		if n <= 0 || k == "offered" || k == "negotiated" {
			continue
		}
		out[k] = n
		if !notNegotiated[k] {
			ended += n
		}
	}
	if n := conns - (after["offered"] - before["offered"]); n > 0 {
		out["TCP/NOT_OFFERED"] = n
	}
	if n := after["negotiated"] - before["negotiated"] - ended; n > 0 {
		out["unfinished"] = n
	}
	return out
}
