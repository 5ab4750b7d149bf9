package shm

import (
	"bytes"
	"testing"
)

// TestStoreRing checks storeRing against copy on both sides of storeRingMin's length
// (on amd64; elsewhere it is copy), at unaligned offsets and with dst shorter or longer
// than src.
func TestStoreRing(t *testing.T) {
	src := make([]byte, 70<<10)
	for i := range src {
		src[i] = byte(i*7 + i>>8)
	}
	for _, n := range []int{0, 1, 63, 2<<10 - 1, 2 << 10, 2<<10 + 1, 16 << 10, 64<<10 + 3} {
		for _, off := range []int{0, 1, 13, 64} {
			for _, dstLen := range []int{n, n / 2, n + 100} {
				want := bytes.Repeat([]byte{0xee}, dstLen+off+8)
				got := bytes.Clone(want)
				wn := copy(want[off:off+dstLen], src[3:3+n])
				gn := storeRing(got[off:off+dstLen], src[3:3+n])
				if gn != wn || !bytes.Equal(got, want) {
					t.Fatalf("n=%d off=%d dst=%d: storeRing copied %d bytes, copy %d; contents equal: %v", n, off, dstLen, gn, wn, bytes.Equal(got, want))
				}
			}
		}
	}
}

// TestStoreRingNearAlias checks the copies whose destination lies less than a line above
// the source modulo 4 KiB (which storeRing routes through a buffer) and around them, with
// source and destination in one allocation so that their distance is known.
func TestStoreRingNearAlias(t *testing.T) {
	mem := make([]byte, 256<<10)
	src := mem[:70<<10]
	for i := range src {
		src[i] = byte(i*7 + i>>8)
	}
	for _, dist := range []int{0, 1, 16, 48, 63, 64, 100} {
		for _, n := range []int{2 << 10, 4<<10 + 5, 64<<10 + 3} {
			dst := mem[128<<10+dist:][:n]
			clear(dst)
			if got := storeRing(dst, src[:n]); got != n || !bytes.Equal(dst, src[:n]) {
				t.Fatalf("distance %d, %d bytes: storeRing copied %d; contents equal: %v", dist, n, got, bytes.Equal(dst, src[:n]))
			}
		}
	}
}
