package signal

import (
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestSweepRecords checks that the sweeper deletes records older than the limit and
// keeps younger ones.
func TestSweepRecords(t *testing.T) {
	s := selfAttach(t)
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		t.Fatal(err)
	}
	buf := new(struct {
		key   [synKeySize]byte
		value [recordSize]byte
	})
	put := func(id byte, age time.Duration) {
		buf.key = [synKeySize]byte{id}
		binary.NativeEndian.PutUint64(buf.value[:], uint64(now.Nano())-uint64(age))
		binary.NativeEndian.PutUint32(buf.value[8:], decisionEcho)
		if err := mapUpdate(s.records, unsafe.Pointer(&buf.key), unsafe.Pointer(&buf.value)); err != nil {
			t.Fatal(err)
		}
	}
	put(1, time.Hour)
	put(2, time.Second)
	put(3, 11*time.Minute)
	n, err := sweepRecords(s.records, recordMaxAge)
	if err != nil || n != 2 {
		t.Fatalf("sweepRecords deleted %d (%v), want 2", n, err)
	}
	for id, want := range map[byte]bool{1: false, 2: true, 3: false} {
		buf.key = [synKeySize]byte{id}
		err := mapLookup(s.records, unsafe.Pointer(&buf.key), unsafe.Pointer(&buf.value))
		if (err == nil) != want {
			t.Errorf("record %d present: %v, want %v", id, err == nil, want)
		}
	}
}
