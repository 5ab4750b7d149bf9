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
