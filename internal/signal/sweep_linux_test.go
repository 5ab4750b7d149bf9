package signal

import (
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/smc-go/smc/internal/testenv"
)

// TestSweepRecords checks that the sweeper deletes records older than the limit and
// keeps younger ones, and that on a machine booted less than the limit ago (the
// monotonic clock below it) it deletes none.
func TestSweepRecords(t *testing.T) {
	s := selfAttach(t)
	// Pretend the machine has been up for a day, whatever its real uptime: the
	// records' times are chosen relative to this clock.
	const now = uint64(24 * time.Hour)
	buf := new(struct {
		key   [recordKeySize]byte
		value [recordSize]byte
	})
	put := func(id byte, age time.Duration) {
		buf.key = [recordKeySize]byte{id}
		binary.NativeEndian.PutUint64(buf.value[:], now-uint64(age))
		binary.NativeEndian.PutUint32(buf.value[8:], decisionEcho)
		if err := mapUpdate(s.records, unsafe.Pointer(&buf.key), unsafe.Pointer(&buf.value)); err != nil {
			t.Fatal(err)
		}
	}
	put(1, time.Hour)
	put(2, time.Second)
	put(3, 11*time.Minute)
	// Nine minutes after boot, the one-second-old record is the only one that can
	// exist; nothing may go.
	if n, err := sweepRecords(s.records, uint64(9*time.Minute), recordMaxAge); err != nil || n != 0 {
		t.Fatalf("sweepRecords 9 minutes after boot deleted %d (%v), want 0", n, err)
	}
	n, err := sweepRecords(s.records, now, recordMaxAge)
	if err != nil || n != 2 {
		t.Fatalf("sweepRecords deleted %d (%v), want 2", n, err)
	}
	for id, want := range map[byte]bool{1: false, 2: true, 3: false} {
		buf.key = [recordKeySize]byte{id}
		err := mapLookup(s.records, unsafe.Pointer(&buf.key), unsafe.Pointer(&buf.value))
		if (err == nil) != want {
			t.Errorf("record %d present: %v, want %v", id, err == nil, want)
		}
	}
}

// TestSweepOldKeys checks that the sweeper accepts and sweeps a records map with the
// 56-byte keys of maps pinned by older versions, and refuses a map whose values are
// not records.
func TestSweepOldKeys(t *testing.T) {
	testenv.RequireBPF(t)
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 56, ValueSize: recordSize, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	other, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: 4, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if !sweepable(old.FD()) || sweepable(other.FD()) {
		t.Fatalf("sweepable: 56-byte records %v (want true), 4-byte values %v (want false)", sweepable(old.FD()), sweepable(other.FD()))
	}
	const now = uint64(24 * time.Hour)
	for id, age := range map[byte]time.Duration{1: time.Hour, 2: time.Second} {
		key := make([]byte, 56)
		key[55] = id
		value := make([]byte, recordSize)
		binary.NativeEndian.PutUint64(value, now-uint64(age))
		if err := old.Put(key, value); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := sweepRecords(old.FD(), now, recordMaxAge); err != nil || n != 1 {
		t.Fatalf("sweepRecords deleted %d (%v), want 1", n, err)
	}
	key := make([]byte, 56)
	key[55] = 2
	value := make([]byte, recordSize)
	if err := old.Lookup(key, value); err != nil {
		t.Errorf("the young record is gone: %v", err)
	}
}
