package shm

import (
	"io"
	"testing"
)

// TestCounts: the byte counts follow the data, on both ends, and a closed stream
// reports none.
func TestCounts(t *testing.T) {
	a, b := pair(t, MinRingSize, 2*MinRingSize)
	if _, err := a.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	check := func(s *Stream, want Counts) {
		t.Helper()
		if got, ok := s.Counts(); !ok || got != want {
			t.Errorf("counts %+v (ok %v), want %+v", got, ok, want)
		}
	}
	check(a, Counts{Sent: 1000, SendQueued: 1000})
	check(b, Counts{Received: 1000, ReceiveQueued: 1000})
	if _, err := io.ReadFull(b, make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	check(a, Counts{Sent: 1000, SendQueued: 400})
	check(b, Counts{Received: 1000, ReceiveQueued: 400})
	if addrs := a.CursorAddrs(); addrs[0] == 0 || addrs[2] == addrs[0] {
		t.Errorf("cursor addresses %#x", addrs)
	}
	a.Close()
	if _, ok := a.Counts(); ok {
		t.Error("a closed stream reports counts")
	}
}
