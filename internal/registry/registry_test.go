package registry

import (
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

// TestCounters: counters, gauges and reasons read back as counted, from many
// goroutines at once, and a full reason table counts into its overflow entry.
func TestCounters(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				r.Add(ServerPeerNoSMC)
				r.CountReason(Client, PeerDecline, 0x030d0000)
			}
		})
	}
	wg.Wait()
	r.Gauge(HandshakesInFlight).Add(3)
	s := r.Snapshot()
	if got := s.Counters[ServerPeerNoSMC]; got != 8000 {
		t.Errorf("ServerPeerNoSMC = %d, want 8000", got)
	}
	if got := s.Gauges[HandshakesInFlight]; got != 3 {
		t.Errorf("HandshakesInFlight = %d, want 3", got)
	}
	want := ReasonCount{Role: Client, Kind: PeerDecline, Code: 0x030d0000, Count: 8000}
	if len(s.Reasons) != 1 || s.Reasons[0] != want {
		t.Errorf("reasons = %+v, want [%+v]", s.Reasons, want)
	}
	for code := range uint32(2 * ReasonSlots) {
		r.CountReason(Server, LocalDecline, code)
	}
	s = r.Snapshot()
	var total, other uint64
	for _, rc := range s.Reasons {
		total += rc.Count
		if rc.Code == Other {
			other = rc.Count
		}
	}
	if total != 8000+2*ReasonSlots || other != 2*ReasonSlots-(ReasonSlots-2) {
		t.Errorf("after filling the table: total %d, overflow %d; want %d, %d", total, other,
			8000+2*ReasonSlots, 2*ReasonSlots-(ReasonSlots-2))
	}
	d := s.Sub(s)
	for _, c := range d.Counters {
		if c != 0 {
			t.Fatalf("s.Sub(s) has a counter %d", c)
		}
	}
	if len(d.Reasons) != 0 || d.Gauges != s.Gauges {
		t.Errorf("s.Sub(s) = %+v", d)
	}
	if p := s.Plus(s); p.Counters[ServerPeerNoSMC] != 16000 || p.Gauges[HandshakesInFlight] != 6 {
		t.Errorf("s.Plus(s) = %+v", p)
	}
}

// scanCursors are the cursor words of TestScanOwnProcess's connection, read through
// /proc by address as smc ss reads another process's.
var scanCursors [4]uint64

// TestScanOwnProcess: Scan finds this process's registry with its status, counters
// and records, through /proc as another process would; a record grows the file past
// its first size, reads back intact, and is gone once unregistered; a connection's
// byte counts are read from this process's memory.
func TestScanOwnProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the shared registry is Linux only")
	}
	r := New()
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	r.SetStatus("works (test)", 42)
	r.Add(ClientNegotiated)
	cursors := &scanCursors // a global: a stack variable may move, its address with it
	*cursors = [4]uint64{1000, 900, 5000, 4000}
	var addrs [4]uint64
	for i := range cursors {
		addrs[i] = uint64(uintptr(unsafe.Pointer(&cursors[i])))
	}
	want := Record{
		Kind: Conn, Server: true, Mode: ModeSMCD, Offered: true, PeerAdvertised: true,
		Fallback: 0, PeerDiagnosis: 0x030d0000,
		Local:  netip.MustParseAddrPort("127.0.0.1:80"),
		Remote: netip.MustParseAddrPort("127.0.0.1:40000"),
		Start:  12345, RxRing: 1 << 16, TxRing: 1 << 20, LinkID: 7, Slot: 3, PeerSlot: 4,
		Cursors: addrs,
	}
	var slots []Slot
	for i := range 3 * initialRecords {
		rec := want
		rec.Local = netip.AddrPortFrom(netip.MustParseAddr("::1"), uint16(i))
		if i == 100 {
			rec = want
		}
		s := r.Register(&rec)
		if s == 0 {
			t.Fatalf("record %d not registered", i)
		}
		slots = append(slots, s)
	}
	p := scanSelf(t)
	if p.Status != "works (test)" || p.MarksMap != 42 || p.Snapshot.Counters[ClientNegotiated] != 1 {
		t.Errorf("status %q, map %d, counters %v", p.Status, p.MarksMap, p.Snapshot.Counters)
	}
	if len(p.Entries) != len(slots) {
		t.Fatalf("%d entries, want %d", len(p.Entries), len(slots))
	}
	e := p.Entries[100]
	if e.Record != want {
		t.Errorf("entry 100 = %+v, want %+v", e.Record, want)
	}
	if p.Entries[5].Local != netip.MustParseAddrPort("[::1]:5") {
		t.Errorf("entry 5 local = %v", p.Entries[5].Local)
	}
	c, err := p.Counts(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Sent: 5000, Received: 1000, SendQueued: 1000, ReceiveQueued: 100}); c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	cursors[0] = 2000
	if c, _ := p.Counts(e); c.Received != 2000 {
		t.Errorf("counts after the cursor moved: %+v", c)
	}
	r.Unregister(slots[100])
	if _, err := p.Counts(e); err != ErrGone {
		t.Errorf("counts of an unregistered record: %v, want ErrGone", err)
	}
	p.Close()
	p = scanSelf(t)
	if len(p.Entries) != len(slots)-1 {
		t.Errorf("%d entries after one unregistered, want %d", len(p.Entries), len(slots)-1)
	}
	// A freed record is reused, and reads back as the new record alone: nothing of
	// the one freed before (which Unregister left but for its kind) shows through.
	tcp := Record{Kind: Conn, Mode: ModeTCP, Local: netip.MustParseAddrPort("127.0.0.1:40001"),
		Remote: netip.MustParseAddrPort("127.0.0.1:81"), Start: 1}
	if s := r.Register(&tcp); s != slots[100] {
		t.Errorf("register after unregister took slot %d, want %d", s, slots[100])
	}
	p.Close()
	p = scanSelf(t)
	if len(p.Entries) != len(slots) {
		t.Fatalf("%d entries after the reuse, want %d", len(p.Entries), len(slots))
	}
	if got := p.Entries[100].Record; got != tcp {
		t.Errorf("reused entry 100 = %+v, want %+v", got, tcp)
	}
	p.Close()
	runtime.KeepAlive(cursors)
}

// scanSelf returns this process's registry as Scan finds it; it may find several
// (one per New in this test binary): the newest is the last one created.
func scanSelf(t *testing.T) *Process {
	t.Helper()
	// The tests create several registries: take the newest.
	procs, errs := Scan()
	for _, e := range errs {
		t.Log(e)
	}
	var newest *Process
	for _, q := range procs {
		if q.PID == os.Getpid() && (newest == nil || q.Start.After(newest.Start)) {
			newest = q
		}
	}
	for _, q := range procs {
		if q != newest {
			q.Close()
		}
	}
	if newest == nil {
		t.Fatal("Scan did not find this process")
	}
	return newest
}

// FuzzParse: a registry image of any content parses or fails cleanly, and never
// yields an entry that is not one of the record kinds.
func FuzzParse(f *testing.F) {
	r := New()
	r.SetStatus("works", 1)
	r.Add(ClientPeerNoSMC)
	r.CountReason(Client, Fallback, 0x05000000)
	f.Add(append([]byte(nil), r.mem[:HeaderSize]...))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		// An image as the kernel would map it: 8-byte aligned.
		words := make([]uint64, (len(b)+RecordSize+7)/8)
		mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)[:max(len(b), 0)]
		copy(mem, b)
		var p Process
		if err := p.parse(mem); err != nil {
			return
		}
		for _, e := range p.Entries {
			if e.Kind != Conn && e.Kind != Listener {
				t.Fatalf("entry of kind %d", e.Kind)
			}
		}
	})
}
