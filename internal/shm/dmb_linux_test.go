package shm

import (
	"io"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of b that are present (mincore). For a memfd that means in
// the file, whichever process put them there: it shows what a writer's prefault
// allocated, not the page tables of a reader's mapping.
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

// TestPrefault checks the first lap of a ring: the first prefaultFrom bytes fault in on
// demand, past them the ring is mapped ahead of the data (on both sides, by populated),
// and only up to its end.
func TestPrefault(t *testing.T) {
	const size = 1 << 20
	a, b := socketPair(t, size, size)
	msg := make([]byte, 16<<10)
	buf := make([]byte, len(msg))
	send := func() {
		t.Helper()
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf); err != nil {
			t.Fatal(err)
		}
	}
	for range prefaultFrom / len(msg) {
		send()
	}
	if a.txd.populated != 0 || b.rxd.populated != 0 {
		t.Fatalf("within the first %d bytes: populated %d (writer), %d (reader), want 0", prefaultFrom, a.txd.populated, b.rxd.populated)
	}
	if got := resident(t, a.txd.ring[prefaultFrom:]); got != 0 {
		t.Fatalf("%d pages past %d bytes mapped before any data went there", got, prefaultFrom)
	}
	send() // the first message past prefaultFrom
	want := uint64(prefaultFrom + len(msg) + prefaultChunk)
	for _, d := range []*dmb{a.txd, b.rxd} {
		if d.populated != want {
			t.Fatalf("populated %d, want %d", d.populated, want)
		}
		if got, want := resident(t, d.ring[prefaultFrom:want]), int(want-prefaultFrom)/4096; got != want {
			t.Fatalf("%d of the %d pages ahead of the data are mapped", got, want)
		}
	}
	for range (size-int(want))/len(msg) + 8 { // to the end of the first lap and past it
		send()
	}
	if a.txd.populated != size || b.rxd.populated != size {
		t.Fatalf("after the first lap: populated %d (writer), %d (reader), want %d", a.txd.populated, b.rxd.populated, size)
	}
	a.Close()
	b.Close()
}
