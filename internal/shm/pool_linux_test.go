package shm

import (
	"errors"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of b that are present (mincore). For a memfd that means in
// the file, whichever process put them there.
func resident(t *testing.T, b []byte) int {
	t.Helper()
	vec := make([]byte, (len(b)+4095)/4096)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

func TestTokens(t *testing.T) {
	for _, c := range []struct {
		gen  uint32
		seg  uint16
		slot int
	}{{1, 0, 0}, {0xffffffff, 0xffff, 63}, {7, 300, 5}} {
		tok := makeToken(c.gen, c.seg, c.slot)
		if uint32(tok)&0xffff != uint32(c.slot) || uint16(tok>>16) != c.seg {
			t.Errorf("token %#x: low 32 bits are not segment<<16|slot", tok)
		}
		g, s, i := splitToken(tok)
		if g != c.gen || s != c.seg || i != c.slot {
			t.Errorf("split(%#x) = %d %d %d, want %d %d %d", tok, g, s, i, c.gen, c.seg, c.slot)
		}
	}
}

func TestSegmentGrowth(t *testing.T) {
	want := []int{1, 2, 4, 8, 16, 32, 64, 64}
	for have, w := range want {
		if got := nextSegSlots(64<<10, have); got != w {
			t.Errorf("64 KiB rings, %d segments: %d slots, want %d", have, got, w)
		}
	}
	if got := nextSegSlots(4<<20, 6); got != 2 {
		t.Errorf("4 MiB rings: %d slots, want 2 (at most %d ring bytes per segment)", got, maxSegRings)
	}
	if got := nextSegSlots(16<<20, 6); got != 1 {
		t.Errorf("16 MiB rings: %d slots, want 1", got)
	}
}

// TestPool checks the pool on real segments: slots come zeroed with a new generation,
// a stale token is rejected, a slot put back is zeroed, counters follow, and idle
// segments beyond the floor are offered for withdrawal.
func TestPool(t *testing.T) {
	c0 := ReadCounters()
	p := newPool()
	var segs []*segment
	grow := func(n int) *segment {
		t.Helper()
		idx, ok := p.newIndex()
		if !ok {
			t.Fatal("no segment index")
		}
		g, err := newSegment(idx, MinRingSize, n)
		if err != nil {
			t.Fatal(err)
		}
		p.add(g)
		segs = append(segs, g)
		return g
	}
	defer func() {
		for _, g := range segs {
			p.remove(g)
			g.unmap()
		}
		if c := ReadCounters(); c.Segments != c0.Segments || c.SlotsFree != c0.SlotsFree || c.SlotsInUse != c0.SlotsInUse || c.MemoryInUse != c0.MemoryInUse {
			t.Errorf("counters did not return: %+v, was %+v", c, c0)
		}
	}()

	g1 := grow(1)
	if g, _, _ := p.take(MinRingSize); g != nil {
		t.Fatal("a slot of a segment the peer has not acknowledged was handed out")
	}
	g1.acked = true
	// A new segment counts its headers; a slot handed out, its first window.
	if c := ReadCounters(); c.Segments != c0.Segments+1 || c.SegmentsMade != c0.SegmentsMade+1 || c.SlotsFree != c0.SlotsFree+1 || c.MemoryInUse != c0.MemoryInUse+int64(headersSize(1)) {
		t.Fatalf("after one segment: %+v, was %+v", c, c0)
	}
	g, i, err := p.take(MinRingSize)
	if g != g1 || i != 0 || err != nil {
		t.Fatalf("take = %v, %d, %v", g, i, err)
	}
	if c := ReadCounters(); c.MemoryInUse != c0.MemoryInUse+int64(headersSize(1)+firstWindow) {
		t.Fatalf("after a slot was handed out: %d bytes in use, was %d", c.MemoryInUse, c0.MemoryInUse)
	}
	tok := makeToken(g.slots[i].gen, g.idx, i)
	if _, _, sl := p.lookup(tok); sl == nil || sl.state != slotHeld {
		t.Fatal("lookup of a held slot failed")
	}
	if g2, _, _ := p.take(MinRingSize); g2 != nil {
		t.Fatal("a held slot was handed out twice")
	}
	// The peer scribbles over the slot; putting it back zeroes it.
	g.header(i).prod.cursor.Store(12345)
	g.ring(i)[100] = 7
	p.put(g, i, time.Now())
	if g.header(i).prod.cursor.Load() != 0 || g.ring(i)[100] != 0 {
		t.Fatal("a slot put back was not zeroed")
	}
	if _, _, sl := p.lookup(tok); sl == nil || sl.state != slotFree {
		t.Fatal("lookup after put")
	}
	// A free slot's header may be scribbled on too: take zeroes it again.
	g.header(i).consCtl.flags.Store(fAbort)
	g, i, _ = p.take(MinRingSize)
	if g.header(i).consCtl.flags.Load() != 0 {
		t.Fatal("take handed out a dirty header")
	}
	if _, _, sl := p.lookup(tok); sl != nil {
		t.Fatal("a token of an earlier use was accepted")
	}
	if _, _, sl := p.lookup(tok ^ 1<<40); sl != nil {
		t.Fatal("a token of another generation was accepted")
	}
	if _, _, sl := p.lookup(makeToken(g.slots[i].gen, g.idx, 5)); sl != nil {
		t.Fatal("a slot index beyond the segment was accepted")
	}
	if c := ReadCounters(); c.SlotsInUse != c0.SlotsInUse+1 || c.SlotsFree != c0.SlotsFree {
		t.Fatalf("one slot held: %+v, was %+v", c, c0)
	}
	g3 := grow(2)
	g3.acked = true
	g3b, _, _ := p.take(MinRingSize)
	if g3b != g3 {
		t.Fatal("the new segment's slot was not handed out")
	}
	p.put(g3, 0, time.Now().Add(-time.Hour))
	p.put(g, i, time.Now().Add(-time.Hour))
	idle := p.idle(time.Now())
	if len(idle) != 1 || idle[0] != g3 {
		t.Fatalf("idle = %v, want the second segment only (the first is the floor)", idle)
	}
	if idle := p.idle(time.Now().Add(-2 * time.Hour)); len(idle) != 0 {
		t.Fatal("a segment free for less than the delay was offered")
	}
}

// TestPoolLowestFree: take hands out the lowest free slot of a segment, whichever
// order its slots were put back in, and every free slot before it runs out.
func TestPoolLowestFree(t *testing.T) {
	p := newPool()
	g, err := newSegment(0, MinRingSize, 4)
	if err != nil {
		t.Fatal(err)
	}
	p.add(g)
	g.acked = true
	defer func() {
		p.remove(g)
		g.unmap()
	}()
	take := func() int {
		t.Helper()
		tg, i, err := p.take(MinRingSize)
		if err != nil {
			t.Fatal(err)
		}
		if tg == nil {
			return -1
		}
		return i
	}
	for want := range 4 {
		if i := take(); i != want {
			t.Fatalf("take = %d, want %d", i, want)
		}
	}
	if i := take(); i != -1 {
		t.Fatalf("take of a full segment = %d", i)
	}
	p.put(g, 3, time.Now())
	p.put(g, 1, time.Now())
	for _, want := range []int{1, 3, -1} {
		if i := take(); i != want {
			t.Fatalf("take after putting 3 then 1 = %d, want %d", i, want)
		}
	}
	for _, i := range []int{2, 0, 3} {
		p.put(g, i, time.Now())
	}
	for _, want := range []int{0, 2, 3, -1} {
		if i := take(); i != want {
			t.Fatalf("take after putting 2, 0, 3 = %d, want %d", i, want)
		}
	}
}

// TestSegmentMemoryLimit: the process bound counts what is populated: a segment's
// headers when it is made, a slot's first window when it is handed out. Beyond the
// bound a segment is not made, and a slot whose first window does not fit is not
// handed out (ErrMemoryLimit); once the bound allows, it is.
func TestSegmentMemoryLimit(t *testing.T) {
	old := SetMemoryLimit(MemoryInUse() + int64(headersSize(2)))
	defer SetMemoryLimit(old)
	p := newPool()
	g, err := newSegment(0, MinRingSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	p.add(g)
	defer func() { p.remove(g); g.unmap() }()
	if _, err := newSegment(1, MinRingSize, 1); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("beyond the bound: %v, want ErrMemoryLimit", err)
	}
	if got, want := resident(t, g.mem[:headersSize(2)]), headersSize(2)/4096; got != want {
		t.Errorf("%d of %d header pages of a new segment resident: the owner must populate them", got, want)
	}
	g.acked = true
	if g2, _, err := p.take(MinRingSize); g2 != nil || !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("a first window beyond the bound: take = %v, %v; want ErrMemoryLimit", g2, err)
	}
	if got := resident(t, g.mem[headersSize(2):]); got != 0 {
		t.Errorf("a refused slot left %d ring pages resident", got)
	}
	SetMemoryLimit(MemoryInUse() + firstWindow)
	if g2, i, err := p.take(MinRingSize); g2 != g || err != nil {
		t.Fatalf("a first window within the bound: take = %v, %v", g2, err)
	} else {
		p.put(g, i, time.Now())
	}
}

// TestSlotWindowPages checks the pages of a ring over one use of its slot: a new
// segment holds its headers only, a slot handed out its first window too, and a slot
// put back after its whole ring was used returns the pages beyond the first window,
// in the sealed memfd, while a second mapping (the peer's) sees zeros and no fault; the
// next use of the slot finds its first window as the first use did.
func TestSlotWindowPages(t *testing.T) {
	const size = 64 << 10
	p := newPool()
	idx, _ := p.newIndex()
	g, err := newSegment(idx, size, 2)
	if err != nil {
		t.Fatal(err)
	}
	p.add(g)
	defer func() { p.remove(g); g.unmap() }()
	peer, err := unix.Mmap(g.fd, 0, len(g.mem), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(peer)
	if got := resident(t, g.mem); got != headersSize(2)/4096 {
		t.Fatalf("new segment: %d pages resident, want the %d of its headers", got, headersSize(2)/4096)
	}
	g.acked = true
	held := MemoryInUse()
	g, i, _ := p.take(size)
	if got := resident(t, g.ring(i)); got != firstWindow/4096 {
		t.Fatalf("slot handed out: %d ring pages resident, want %d", got, firstWindow/4096)
	}
	if got := g.header(i).consCtl.window.Load(); got != firstWindow {
		t.Fatalf("published window %d, want %d", got, firstWindow)
	}
	if got := resident(t, g.ring(1-i)); got != 0 {
		t.Fatalf("the other slot has %d ring pages resident", got)
	}
	// Bulk use: the owner grows the window to the whole ring, the peer writes it all.
	if !g.populateCounted(g.ring(i)[firstWindow:]) {
		t.Fatal("the bound refused a ring")
	}
	if got := MemoryInUse() - held; got != size {
		t.Fatalf("%d bytes counted for a whole ring of %d", got, size)
	}
	off := headersSize(2) + i*size
	for k := range size {
		peer[off+k] = byte(k%251 + 1)
	}
	g.header(i).consCtl.window.Store(size)
	g.slots[i].win = size // what streamClosed records of a stream whose window grew to the ring
	p.put(g, i, time.Now())
	if got := resident(t, g.ring(i)); got != firstWindow/4096 {
		t.Fatalf("slot put back: %d ring pages resident, want %d", got, firstWindow/4096)
	}
	if got := MemoryInUse() - held; got != firstWindow {
		t.Fatalf("slot put back: %d bytes counted, want its first window (%d)", got, firstWindow)
	}
	if g.header(i).consCtl.window.Load() != 0 {
		t.Fatal("the window survived the slot's release")
	}
	for k, b := range peer[off : off+size] {
		if b != 0 {
			t.Fatalf("byte %d of the released ring reads %d through the peer's mapping", k, b)
		}
	}
	// The next use starts with the same first window, still resident (take does not
	// populate it again). (The loop above read the rest of the ring through the
	// peer's mapping, which faulted it in: only the first window is checked.)
	if g2, i2, _ := p.take(size); g2 != g || i2 != i {
		t.Fatalf("take after put = %v, %d; want the slot put back", g2, i2)
	}
	if got := resident(t, g.ring(i)[:firstWindow]); got != firstWindow/4096 {
		t.Fatalf("slot handed out again: %d pages of its first window resident, want %d", got, firstWindow/4096)
	}
	if got := g.header(i).consCtl.window.Load(); got != firstWindow {
		t.Fatalf("published window %d on the second use, want %d", got, firstWindow)
	}
	p.put(g, i, time.Now())
}
