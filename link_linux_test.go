package smc

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
)

// The acceptance tests of link groups (issue 18), with real processes: the test
// binary again as server and client processes (startProc), driven with the commands
// of link_proc_linux_test.go. Each names what it needs through requireProcs, so it
// skips with a reason, and fails under SMC_REQUIRE_PRIVILEGED=1.

// call sends a command and decodes the JSON of its answer, which starts with word.
func call[T any](p *proc, cmd, word string, d time.Duration) T {
	p.t.Helper()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, cmd, err)
	}
	l := p.expectWithin(word+" ", d)
	var v T
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, word+" ")), &v); err != nil {
		p.t.Fatalf("%s: %s: %q: %v", p.name, cmd, l, err)
	}
	return v
}

// lserve starts an lserve echo server in p and returns its address.
func (p *proc) lserve(args ...string) string {
	p.t.Helper()
	l := p.do(strings.Join(append([]string{"lserve"}, args...), " "), "lserving ")
	addr := strings.TrimPrefix(l, "lserving ")
	if strings.HasPrefix(addr, "error") {
		p.t.Fatalf("%s: %s", p.name, l)
	}
	return addr
}

func (p *proc) counters() procCounters {
	p.t.Helper()
	return call[procCounters](p, "counters", "counters", 15*time.Second)
}

func (p *proc) srvStats() srvStats {
	p.t.Helper()
	return call[srvStats](p, "lstats", "lstats", 15*time.Second)
}

// open makes p dial n connections with the extra arguments args and keep them.
func (p *proc) open(addr string, n int, args string, d time.Duration) openStats {
	p.t.Helper()
	return call[openStats](p, fmt.Sprintf("open addr=%s n=%d %s", addr, n, args), "opened", d)
}

// waitCounters polls p's counters until ok accepts them, for up to d; it returns
// the last ones and whether ok accepted them.
func (p *proc) waitCounters(d time.Duration, ok func(procCounters) bool) (procCounters, bool) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c := p.counters()
		if ok(c) {
			return c, true
		}
		if time.Now().After(deadline) {
			return c, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitServer polls an lserve server's tallies until ok accepts them, for up to d.
func (p *proc) waitServer(d time.Duration, ok func(srvStats) bool) (srvStats, bool) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := p.srvStats()
		if ok(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantAllSMCD checks that every one of n connections was in SMC-D and echoed intact.
func wantAllSMCD(t *testing.T, who string, st openStats, n int) {
	t.Helper()
	if st.Modes["SMCD NONE"] != n || st.Intact != n || st.Errors != 0 {
		t.Errorf("%s: %d of %d connections in SMCD, %d echoed intact, %d errors (first: %q); modes %v",
			who, st.Modes["SMCD NONE"], n, st.Intact, st.Errors, st.FirstError, st.Modes)
	}
}

// TestLinkTenThousand: 10,000 SMC connections held open at once between two
// processes, all in SMC-D over links, each echoing its own data intact while all
// are open.
func TestLinkTenThousand(t *testing.T) {
	requireProcs(t)
	const n = 10000
	cg := testenv.NewCgroup(t, "")
	server := startProc(t, "server", cg, procOptions{})
	client := startProc(t, "client", cg, procOptions{})
	// A connection costs each side one descriptor, its TCP socket, with a link
	// carrying its data; the process needs a few hundred more of its own.
	for _, p := range []*proc{server, client} {
		got := p.do("rlimit n=40000", "rlimit")
		if lim, err := strconv.Atoi(strings.TrimPrefix(got, "rlimit ")); err != nil || lim < n+500 {
			testenv.Require(t, "RLIMIT_NOFILE above the connections", fmt.Errorf("%s: %s", p.name, got))
		}
	}
	// The server echoes each connection's first 1024 bytes and then holds it with no
	// goroutine: under the race detector a process may have at most 8128.
	addr := server.lserve("first=1024")
	opened := client.open(addr, n, "size=1024 conc=64", 5*time.Minute)
	t.Logf("opened %d connections in %d ms: %v", n, opened.Millis, opened.Modes)
	wantAllSMCD(t, "opening", opened, n)
	if s, ok := server.waitServer(30*time.Second, func(s srvStats) bool { return s.Open == n }); !ok ||
		s.Accepted["SMCD NONE"] != n {
		t.Errorf("server: %d open, accepted %v, failed %d (%q), want %d open in SMCD", s.Open, s.Accepted, s.Failed, s.Errors, n)
	}
	// Every connection works while all of them are open: another echo on each, in
	// batches that both ends take in the same order (by the client's port).
	const batch = 4000
	for from := 0; from < n; from += batch {
		r := fmt.Sprintf("from=%d to=%d size=4096", from, min(from+batch, n))
		if got := server.do("round "+r, "round"); got != fmt.Sprintf("round %d", min(batch, n-from)) {
			t.Fatalf("server: %q", got)
		}
		again := call[openStats](client, "echorange conc=64 "+r, "echoed", 5*time.Minute)
		t.Logf("echoed on %s in %d ms", r, again.Millis)
		wantAllSMCD(t, "echo with all open, client", again, min(batch, n-from))
		wantAllSMCD(t, "echo with all open, server", call[openStats](server, "roundwait", "rounded", 5*time.Minute), min(batch, n-from))
	}
	for _, p := range []*proc{server, client} {
		c := p.counters().Counters
		t.Logf("%s: %+v", p.name, c)
		if c.Links != 1 || c.SlotsInUse < n {
			t.Errorf("%s: %d links and %d slots in use with %d connections open, want 1 link and at least %d slots",
				p.name, c.Links, c.SlotsInUse, n, n)
		}
	}
	if got := client.do("closeall", "closed"); got != "closed "+strconv.Itoa(n) {
		t.Errorf("client: %q", got)
	}
}

// TestLinkConcurrentFirstDials: a burst of dials from a process that has no link to
// the server yet, as a connection pool's warm-up makes, sets up one link, and every
// connection of the burst is in SMC-D. (The 10,000-connection test opens its
// connections the same way; this one says it with a burst of 64.)
func TestLinkConcurrentFirstDials(t *testing.T) {
	requireProcs(t)
	const n = 64
	cg := testenv.NewCgroup(t, "")
	server := startProc(t, "server", cg, procOptions{})
	client := startProc(t, "client", cg, procOptions{})
	addr := server.lserve()
	wantAllSMCD(t, "a burst of first dials", client.open(addr, n, fmt.Sprintf("conc=%d", n), time.Minute), n)
	for _, p := range []*proc{server, client} {
		if c := p.counters().Counters; c.LinksOpened != 1 {
			t.Errorf("%s: %d links opened for a burst of %d dials, want 1: %+v", p.name, c.LinksOpened, n, c)
		}
	}
}

// TestLinkMemoryLimit: the process bound set with SetMemoryLimit holds. Within it
// connections are SMC-D; beyond it they fall back with MAX_DMB, and their data is
// intact; once connections close, new ones get SMC-D again. The bound is set on the
// server (which declines) and on the client (which falls back on its own).
func TestLinkMemoryLimit(t *testing.T) {
	requireProcs(t)
	// The bound counts what is resident: per connection, a slot header and the ring's
	// first window (4 KiB), which an echo of 4 KiB grows to 8 KiB. A bound that holds
	// a hundred or so, and more connections than it holds.
	const (
		limit   = 1 << 20
		perConn = 512 + 8<<10
	)
	n := 2*limit/perConn + 8
	for _, side := range []string{"server", "client"} {
		t.Run("bound on the "+side, func(t *testing.T) {
			cg := testenv.NewCgroup(t, "")
			server := startProc(t, "server", cg, procOptions{})
			client := startProc(t, "client", cg, procOptions{})
			bounded := server
			if side == "client" {
				bounded = client
			}
			got := bounded.do(fmt.Sprintf("setmem n=%d", limit), "setmem")
			if f := strings.Fields(got); len(f) != 3 || f[2] != strconv.Itoa(limit) || f[1] == "0" {
				t.Fatalf("%s: %q, want the previous bound, then %d", side, got, limit)
			}
			addr := server.lserve()
			st := client.open(addr, n, "size=4096 conc=1", 3*time.Minute)
			t.Logf("order %s, modes %v", st.Order, st.Modes)
			if st.Intact != n || st.Errors != 0 {
				t.Errorf("%d of %d echoes intact, %d errors (first: %q)", st.Intact, n, st.Errors, st.FirstError)
			}
			within := strings.Count(st.Order, "D")
			if within == 0 || within == n || strings.TrimLeft(st.Order, "D") != strings.Repeat("T", n-within) {
				t.Errorf("connections in order (D SMCD, T TCP, E error): %s; want SMCD within the bound, then TCP", st.Order)
			}
			// The bound is there to be used: at least half of it holds the rings of
			// connections in SMC-D before any falls back.
			if within*perConn < limit/2 {
				t.Errorf("only %d connections in SMCD within a bound of %d bytes", within, limit)
			}
			// Each connection beyond the bound falls back with MAX_DMB: one side
			// declines with it, the other hears it as the peer's diagnosis. Which
			// side sends the Decline is the link's choice.
			maxDMB := func(m map[string]int) int { return m["TCP MAX_DMB"] + m["TCP PEERDECL/MAX_DMB"] }
			if maxDMB(st.Modes) != n-within {
				t.Errorf("client modes %v, want %d fallbacks with MAX_DMB", st.Modes, n-within)
			}
			s, _ := server.waitServer(10*time.Second, func(s srvStats) bool { return s.Open == n })
			if maxDMB(s.Accepted) != n-within || s.Accepted["TCP MAX_DMB"] != st.Modes["TCP PEERDECL/MAX_DMB"] {
				t.Errorf("server accepted %v, client %v: want %d fallbacks with MAX_DMB, declined on one side",
					s.Accepted, st.Modes, n-within)
			}
			c := bounded.counters()
			t.Logf("%s with %d in SMCD: %+v", side, within, c.Counters)
			if c.MemoryInUse > limit || c.Counters.MemoryInUse > limit {
				t.Errorf("%s: %d bytes in use (counters: %d), over the bound of %d", side, c.MemoryInUse, c.Counters.MemoryInUse, limit)
			}
			client.do("closeall", "closed")
			bounded.waitCounters(10*time.Second, func(c procCounters) bool { return c.Counters.SlotsInUse == 0 })
			if again := client.open(addr, 1, "size=4096", time.Minute); again.Modes["SMCD NONE"] != 1 || again.Intact != 1 {
				t.Errorf("after the connections closed: %+v, want SMCD again", again)
			}
		})
	}
}

// TestLinkPeerKilled: when one process is SIGKILLed, the survivor's connections to
// it fail at once with a reset (not EOF, not a hang), and once it has closed them it
// holds no link, no peer segment and no slot.
func TestLinkPeerKilled(t *testing.T) {
	requireProcs(t)
	const n = 50
	released := func(c procCounters) bool {
		return c.Counters.Links == 0 && c.Counters.PeerSegments == 0 && c.Counters.SlotsInUse == 0
	}
	// Connections are opened one after the other: a burst of first dials has a test
	// of its own (TestLinkConcurrentFirstDials).
	t.Run("client killed", func(t *testing.T) {
		const others = 10
		cg := testenv.NewCgroup(t, "")
		server := startProc(t, "server", cg, procOptions{})
		client := startProc(t, "client", cg, procOptions{})
		other := startProc(t, "other-client", cg, procOptions{})
		addr := server.lserve()
		opened := client.open(addr, n, "size=65536", time.Minute)
		wantAllSMCD(t, "client", opened, n)
		wantAllSMCD(t, "other client", other.open(addr, others, "size=65536", time.Minute), others)
		server.waitServer(10*time.Second, func(s srvStats) bool { return s.Open == n+others })
		t.Logf("server before: %+v", server.counters().Counters)
		client.kill()
		// The server's echo loops sit in Read; each of the killed client's must end
		// with a reset, and the other client's carry on over their own link.
		s, ok := server.waitServer(10*time.Second, func(s srvStats) bool { return s.Open == others })
		// A connection that fell back (wantAllSMCD said so) is TCP, and ends as TCP does.
		if smcd := opened.Modes["SMCD NONE"]; !ok || s.Ended["reset"] != smcd || s.Ended["timeout"]+s.Ended["tcp timeout"] != 0 {
			t.Errorf("server after the kill: %d still open, ended %v (errors %q), want %d resets", s.Open, s.Ended, s.Errors, smcd)
		}
		wantAllSMCD(t, "other client after the kill", call[openStats](other, "echoall size=65536", "echoed", time.Minute), others)
		// The other client's links (one, unless its dials raced) stay; TestLinkTenThousand
		// counts links per pair of processes.
		oc := other.counters().Counters
		if c := server.counters().Counters; c.Links != oc.Links || c.SlotsInUse < others {
			t.Errorf("server with the other client's %d connections on %d links: %+v, want those links and slots",
				others, oc.Links, c)
		}
		other.kill()
		if c, ok := server.waitCounters(10*time.Second, released); !ok {
			t.Errorf("server after closing its connections: %+v, want no link, peer segment or slot in use", c.Counters)
		}
	})
	t.Run("server killed", func(t *testing.T) {
		cg := testenv.NewCgroup(t, "")
		server := startProc(t, "server", cg, procOptions{})
		client := startProc(t, "client", cg, procOptions{})
		addr := server.lserve()
		opened := client.open(addr, n, "size=65536", time.Minute)
		wantAllSMCD(t, "client", opened, n)
		t.Logf("client before: %+v", client.counters().Counters)
		fmt.Fprintln(client.in, "readall secs=10")
		time.Sleep(300 * time.Millisecond) // let the Reads block
		server.kill()
		var r readStats
		l := client.expectWithin("readall ", 30*time.Second)
		if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "readall ")), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if smcd := opened.Modes["SMCD NONE"]; r.Ended["reset"] != smcd || r.MaxMillis > 5000 {
			t.Errorf("client Reads after the kill: %v, the slowest after %d ms (errors %q), want %d resets at once",
				r.Ended, r.MaxMillis, r.Errors, smcd)
		}
		client.do("closeall", "closed")
		if c, ok := client.waitCounters(10*time.Second, released); !ok {
			t.Errorf("client after closing its connections: %+v, want no link, peer segment or slot in use", c.Counters)
		}
	})
}

// TestLinkShortReuse: 1000 short connections in a row between two processes share
// one link: one link opened, and no new memfd or mapping per connection, on both
// sides.
func TestLinkShortReuse(t *testing.T) {
	requireProcs(t)
	const n = 1000
	const few = 4 // segments a pool may grow by: a small constant, not one per connection
	cg := testenv.NewCgroup(t, "")
	server := startProc(t, "server", cg, procOptions{})
	client := startProc(t, "client", cg, procOptions{})
	addr := server.lserve()
	before := map[*proc]procCounters{server: server.counters(), client: client.counters()}
	st := call[openStats](client, fmt.Sprintf("short addr=%s n=%d size=1024", addr, n), "short", 3*time.Minute)
	t.Logf("%d short connections in %d ms", n, st.Millis)
	wantAllSMCD(t, "short connections", st, n)
	for _, p := range []*proc{server, client} {
		b, a := before[p].Counters, p.counters().Counters
		t.Logf("%s: before %+v, after %+v", p.name, b, a)
		if d := a.LinksOpened - b.LinksOpened; d != 1 {
			t.Errorf("%s: %d links opened for %d connections in a row, want 1", p.name, d, n)
		}
		if d := a.SegmentsMade - b.SegmentsMade; d > few {
			t.Errorf("%s: %d segments made for %d connections, want at most %d", p.name, d, n, few)
		}
		if d := a.PeerSegmentsMapped - b.PeerSegmentsMapped; d > few {
			t.Errorf("%s: %d peer segments mapped for %d connections, want at most %d", p.name, d, n, few)
		}
	}
}

// TestLinkOversizedRing: a peer announcing a ring larger than this side accepts
// (its own BufferSize, at least the 64 KiB default) is declined: the connection
// falls back to TCP with a reason and its data intact, and nothing of the peer is
// mapped. Either side may be the one announcing it. Both are honest peers configured
// with a large buffer; TestHostileAcceptOversizedRing and TestHostileClientOversizedRing
// have peers write their own CLC messages.
func TestLinkOversizedRing(t *testing.T) {
	requireProcs(t)
	const huge = 512 << 20
	for _, big := range []string{"client", "server"} {
		t.Run(big+" announces 512 MiB", func(t *testing.T) {
			cg := testenv.NewCgroup(t, "")
			server := startProc(t, "server", cg, procOptions{})
			client := startProc(t, "client", cg, procOptions{})
			var addr, dialArgs string
			decider := server
			if big == "client" {
				addr, dialArgs = server.lserve(), fmt.Sprintf("buf=%d", huge)
			} else {
				addr, decider = server.lserve(fmt.Sprintf("buf=%d", huge)), client
			}
			st := client.open(addr, 1, "size=65536 "+dialArgs, time.Minute)
			if st.Intact != 1 || st.Modes["SMCD NONE"] != 0 || st.Modes["TCP NONE"] != 0 {
				t.Errorf("client: %+v, want TCP with a reason and the echo intact", st)
			}
			s, _ := server.waitServer(10*time.Second, func(s srvStats) bool { return s.Open == 1 })
			if s.Accepted["SMCD NONE"] != 0 {
				t.Errorf("server accepted %v, want TCP", s.Accepted)
			}
			c := decider.counters()
			t.Logf("client %v, server %v; %s: %+v", st.Modes, s.Accepted, decider.name, c)
			if c.Counters.PeerSegmentsMapped != 0 || c.Counters.PeerMemory != 0 || c.MaxMemfdMap > huge/2 {
				t.Errorf("%s mapped its peer's segments: %+v, largest memfd mapping %d bytes", decider.name, c.Counters, c.MaxMemfdMap)
			}
		})
	}
}

// TestLinkMemoryCgroup: a client that leaks connections cannot raise the charge of
// the server's memory cgroup. The server runs in a memory cgroup limited to 128 MiB
// (the v1 memory controller here), the client in another; the client opens 60
// connections, moves 8 MiB each way on each and never closes them. The server must
// survive (with 4 MiB rings that the writer faulted in, it was OOM-killed after about
// 30), and its charge for shared memory (memory.stat shmem) may grow by the segments
// it owns only. Since both ends of a connection have rings of one size, that alone
// cannot tell whose pages the server paid for; so a second run has the client only
// write: the server, which owns the rings it receives into, must be the one charged
// for them, not the client that wrote. A third run echoes 64 bytes only: the server's
// charge may grow by about a page per ring then, the first window, not by the rings.
func TestLinkMemoryCgroup(t *testing.T) {
	requireProcs(t)
	const limit, n, size = 128 << 20, 60, 8 << 20
	// Room for rounding to pages and segment headers; the heap and the race
	// detector's state are charged too, but not as shmem.
	const slack = 1 << 20
	type setup struct {
		server, client *proc
		srvMem, cliMem string
		addr           string
		openLeaking    func(args string) openStats // the client's n connections, kept
	}
	start := func(t *testing.T, serve ...string) setup {
		s := setup{srvMem: testenv.MemoryCgroupV1(t, limit), cliMem: testenv.MemoryCgroupV1(t, 0)}
		cg := testenv.NewCgroup(t, "")
		s.server = startProc(t, "server", cg, procOptions{})
		s.client = startProc(t, "client", cg, procOptions{})
		for p, dir := range map[*proc]string{s.server: s.srvMem, s.client: s.cliMem} {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(p.pid())), 0); err != nil {
				t.Fatalf("moving %s into %s: %v", p.name, dir, err)
			}
		}
		s.addr = s.server.lserve(serve...)
		s.server.counters()
		// One connection sets the link up, then the rest come four at a time (a
		// burst of first dials has a test of its own).
		s.openLeaking = func(args string) openStats {
			st := s.client.open(s.addr, 1, args, time.Minute)
			rest := s.client.open(s.addr, n-1, "conc=4 "+args, 4*time.Minute)
			for k, v := range rest.Modes {
				st.Modes[k] += v
			}
			st.Intact += rest.Intact
			st.Errors += rest.Errors
			st.Millis += rest.Millis
			if st.FirstError == "" {
				st.FirstError = rest.FirstError
			}
			return st
		}
		return s
	}
	survived := func(t *testing.T, s setup, st openStats) {
		t.Helper()
		if oom := readOOMKills(t, s.srvMem); s.server.cmd.ProcessState != nil || oom > 0 || !alive(s.server.pid()) {
			t.Fatalf("the server died (%d OOM kills in its memory cgroup); the client: %v intact %d, errors %d (first: %q)",
				oom, st.Modes, st.Intact, st.Errors, st.FirstError)
		}
	}
	t.Run("echo", func(t *testing.T) {
		s := start(t)
		base, baseShmem := readInt(t, filepath.Join(s.srvMem, "memory.usage_in_bytes")), readStat(t, s.srvMem, "shmem")
		st := s.openLeaking(fmt.Sprintf("size=%d", size))
		survived(t, s, st)
		c := s.server.counters()
		now, shmem := readInt(t, filepath.Join(s.srvMem, "memory.usage_in_bytes")), readStat(t, s.srvMem, "shmem")
		t.Logf("client: %v in %d ms; server charge %d -> %d, of it shared memory %d -> %d; server counters %+v",
			st.Modes, st.Millis, base, now, baseShmem, shmem, c.Counters)
		wantAllSMCD(t, "client", st, n)
		if grew := shmem - baseShmem; grew > c.Counters.MemoryInUse+slack {
			t.Errorf("the server's shared-memory charge grew by %d bytes, more than the %d bytes of segments it owns",
				grew, c.Counters.MemoryInUse)
		}
	})
	t.Run("idle rings", func(t *testing.T) {
		s := start(t)
		base := readStat(t, s.srvMem, "shmem")
		st := s.openLeaking("size=64")
		survived(t, s, st)
		wantAllSMCD(t, "client", st, n)
		grew := readStat(t, s.srvMem, "shmem") - base
		t.Logf("shared-memory charge of %d connections that echoed 64 bytes: server +%d", n, grew)
		// A ring that moved 64 bytes holds its first window (a page), not the ring.
		if most := int64(n*DefaultBufferSize/4) + slack; grew > most {
			t.Errorf("the server's shared-memory charge grew by %d bytes for %d idle connections, more than %d: idle rings are resident",
				grew, n, most)
		}
	})
	t.Run("the owner pays", func(t *testing.T) {
		s := start(t, "sink=1")
		srvBase, cliBase := readStat(t, s.srvMem, "shmem"), readStat(t, s.cliMem, "shmem")
		st := s.openLeaking(fmt.Sprintf("size=%d oneway=1", size))
		survived(t, s, st)
		if st.Modes["SMCD NONE"] != n || st.Intact != n {
			t.Fatalf("client: %+v, want %d connections in SMCD, each writing %d bytes", st, n, size)
		}
		if r, ok := s.server.waitServer(time.Minute, func(r srvStats) bool { return r.Received == n*size }); !ok {
			t.Fatalf("the server read %d bytes, want %d", r.Received, n*size)
		}
		sc, cc := s.server.counters(), s.client.counters()
		srvGrew, cliGrew := readStat(t, s.srvMem, "shmem")-srvBase, readStat(t, s.cliMem, "shmem")-cliBase
		t.Logf("shared-memory charge: server +%d (owns %d), client +%d (owns %d)",
			srvGrew, sc.Counters.MemoryInUse, cliGrew, cc.Counters.MemoryInUse)
		// Every ring the server received into was written all over (8 MiB through
		// each); its pages must be charged to the server.
		if rings := int64(n * DefaultBufferSize); srvGrew < rings {
			t.Errorf("the server's shared-memory charge grew by %d bytes, less than the %d bytes of rings it received into: the writer paid",
				srvGrew, rings)
		}
		if cliGrew > cc.Counters.MemoryInUse+slack {
			t.Errorf("the client's shared-memory charge grew by %d bytes, more than the %d bytes of segments it owns",
				cliGrew, cc.Counters.MemoryInUse)
		}
	})
}

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// readStat returns a field of a v1 memory cgroup's memory.stat.
func readStat(t *testing.T, dir, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("memory.stat %s: %v", field, err)
			}
			return n
		}
	}
	t.Fatalf("%s/memory.stat has no %s", dir, field)
	return 0
}

// readOOMKills returns the oom_kill count of a v1 memory cgroup.
func readOOMKills(t *testing.T, dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// unixListeners returns the listening Unix sockets of process pid as path and type
// (/proc/net/unix's: 1 stream, 5 seqpacket).
func unixListeners(t *testing.T, pid int) map[string]string {
	t.Helper()
	inodes := map[string]bool{}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		// Num RefCount Protocol Flags Type St Inode Path
		f := strings.Fields(l)
		if len(f) >= 8 && inodes[f[6]] && f[3] == "00010000" {
			out[f[7]] = strings.TrimLeft(f[4], "0")
		}
	}
	return out
}

// TestLinkRendezvousFlood: 1024 idle connections from another user to the server's
// rendezvous sockets, kept up, do not stop a legitimate client from attaching: it
// gets SMC-D.
func TestLinkRendezvousFlood(t *testing.T) {
	requireProcs(t)
	cg := testenv.NewCgroup(t, "")
	server := startProc(t, "server", cg, procOptions{})
	addr := server.lserve()
	// A first client makes the server set up its rendezvous.
	warm := startProc(t, "first-client", cg, procOptions{})
	wantAllSMCD(t, "first client", warm.open(addr, 1, "", time.Minute), 1)
	socks := unixListeners(t, server.pid())
	if len(socks) == 0 {
		t.Fatalf("the server (pid %d) has no listening Unix socket", server.pid())
	}
	flooder := startProc(t, "flooder", cg, procOptions{unprivileged: true})
	for path, typ := range socks {
		fs := call[floodStats](flooder, fmt.Sprintf("flood path=%s type=%s n=1024", path, typ), "flooded", 2*time.Minute)
		t.Logf("uid %d holds %d idle connections to %s (first error %q)", testenv.Nobody, fs.Connected, path, fs.FirstError)
	}
	// The flooder dials again whatever the server closes, so that the flood is on
	// while the new client attaches, whatever deadline the server gives strangers.
	client := startProc(t, "client", cg, procOptions{})
	var before floodStats
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// Wait until the server's answer to the flood (holding it, or closing
		// and being dialed again) is under way.
		if before = call[floodStats](flooder, "floodstats", "floodstats", 15*time.Second); before.Redials > 0 || before.Live >= 1024 {
			break
		}
	}
	wantAllSMCD(t, "a new client during the flood", client.open(addr, 1, "", time.Minute), 1)
	after := call[floodStats](flooder, "floodstats", "floodstats", 15*time.Second)
	t.Logf("flood connections open before the attach %d, after %d; %d dialed again", before.Live, after.Live, after.Redials)
}

// TestLinkImpostor: a process that takes over the server's socket file in
// EndpointDir never receives the application's data: the client's Dial does not end
// in SMC-D through it, and the data reaches the server (over TCP, or over shared
// memory the impostor cannot see) or the Dial fails. The impostor either listens in
// the server's place, or relays between the client and the real socket, which it
// moved aside, passing on every message and descriptor.
func TestLinkImpostor(t *testing.T) {
	requireProcs(t)
	const pattern = "APPLICATION-DATA-7f3a9c-"
	for _, relay := range []bool{false, true} {
		name := "listener"
		if relay {
			name = "relay"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cg := testenv.NewCgroup(t, "")
			server := startProc(t, "server", cg, procOptions{})
			addr := server.lserve("dir=" + dir)
			// A first client makes the server create its socket file; the client
			// under test comes later, with no link to the server yet.
			warm := startProc(t, "first-client", cg, procOptions{})
			wantAllSMCD(t, "first client", warm.open(addr, 1, "dir="+dir, time.Minute), 1)
			impostor := startProc(t, "impostor", cg, procOptions{})
			cmd := fmt.Sprintf("impostor dir=%s relay=%d", dir, map[bool]int{false: 0, true: 1}[relay])
			if got := impostor.do(cmd, "impostor"); got == "impostor 0" || strings.HasPrefix(got, "impostor error") {
				t.Fatalf("impostor: %q: no socket file of the server to take over in %s", got, dir)
			}
			client := startProc(t, "client", cg, procOptions{})
			st := client.open(addr, 1, "size=262144 secs=5 dir="+dir+" pat="+pattern, time.Minute)
			seen := call[impStats](impostor, "impreport pat="+pattern, "impreport", 30*time.Second)
			t.Logf("client: %+v; the impostor saw %+v", st, seen)
			if seen.Conns == 0 {
				t.Logf("the client never connected to the impostor's socket")
			}
			if seen.PatternHits != 0 {
				t.Errorf("the impostor received the application's data (%d hits)", seen.PatternHits)
			}
			if st.Modes["SMCD NONE"] != 0 && st.Intact == 0 {
				t.Errorf("the client's Dial ended in SMCD through the impostor: %+v", st)
			}
			if st.Modes["SMCD NONE"] == 0 && st.Intact == 0 && len(st.Modes) != 0 {
				t.Errorf("the client fell back but its data did not reach the server: %+v", st)
			}
		})
	}
}

// TestLinkNetns: SMC-D between two network namespaces (joined by a veth pair with
// test-local addresses) through a shared EndpointDir, with a client Policy that
// offers SMC to the server's address. Without a shared directory the client falls
// back with PEER_UNREACHABLE.
func TestLinkNetns(t *testing.T) {
	requireProcs(t)
	ip := testenv.RequireTool(t, "ip")
	nsA, nsB := testenv.NewNetns(t), testenv.NewNetns(t)
	k := os.Getpid()%200 + 20
	va, vb := fmt.Sprintf("smcva%d", k), fmt.Sprintf("smcvb%d", k)
	srvIP := netip.AddrFrom4([4]byte{10, 213, byte(k), 1})
	cliIP := netip.AddrFrom4([4]byte{10, 213, byte(k), 2})
	for _, args := range [][]string{
		{"link", "add", va, "netns", nsA, "type", "veth", "peer", "name", vb, "netns", nsB},
		{"-n", nsA, "addr", "add", srvIP.String() + "/24", "dev", va},
		{"-n", nsB, "addr", "add", cliIP.String() + "/24", "dev", vb},
		{"-n", nsA, "link", "set", va, "up"},
		{"-n", nsB, "link", "set", vb, "up"},
	} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	in := func(ns string) procOptions { return procOptions{wrap: []string{ip, "netns", "exec", ns}} }
	offer := "offer=" + netip.PrefixFrom(srvIP, 24).String()
	cg := testenv.NewCgroup(t, "")
	t.Run("shared EndpointDir", func(t *testing.T) {
		dir := t.TempDir()
		server := startProc(t, "server", cg, in(nsA))
		client := startProc(t, "client", cg, in(nsB))
		addr := server.lserve("addr="+srvIP.String()+":0", "dir="+dir)
		st := client.open(addr, 4, "size=262144 dir="+dir+" "+offer, time.Minute)
		wantAllSMCD(t, "client in the other namespace", st, 4)
		if s, _ := server.waitServer(10*time.Second, func(s srvStats) bool { return s.Open == 4 }); s.Accepted["SMCD NONE"] != 4 {
			t.Errorf("server accepted %v, want 4 in SMCD", s.Accepted)
		}
	})
	t.Run("no shared directory", func(t *testing.T) {
		server := startProc(t, "server", cg, in(nsA))
		client := startProc(t, "client", cg, in(nsB))
		addr := server.lserve("addr=" + srvIP.String() + ":0")
		st := client.open(addr, 1, "size=65536 "+offer, time.Minute)
		if st.Modes["TCP PEER_UNREACHABLE"] != 1 || st.Intact != 1 {
			t.Errorf("client: %+v, want TCP PEER_UNREACHABLE and the echo intact", st)
		}
	})
}
