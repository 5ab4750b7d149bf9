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
// the source modulo 4 KiB (which storeRing copies downwards with non-temporal stores) and
// around them, with source and destination in one allocation so that their distance is
// known: at every alignment of the source, with lengths that end anywhere in a line, the
// copy equals copy's and no byte beside the destination changes.
func TestStoreRingNearAlias(t *testing.T) {
	mem := make([]byte, 256<<10)
	src := mem[:72<<10]
	for i := range src {
		src[i] = byte(i*7 + i>>8)
	}
	const guard = 64
	for _, dist := range []int{0, 1, 15, 16, 17, 48, 63, 64, 100} {
		for _, srcOff := range []int{0, 1, 8, 16, 33} {
			for _, n := range []int{2 << 10, 2<<10 + 1, 2<<10 + 15, 4<<10 + 5, 16<<10 + 127, 16<<10 + 128, 64<<10 + 3} {
				s := src[srcOff:][:n]
				area := mem[128<<10+srcOff+dist-guard:][:guard+n+guard]
				for i := range area {
					area[i] = 0xee
				}
				dst := area[guard:][:n]
				if got := storeRing(dst, s); got != n || !bytes.Equal(dst, s) {
					t.Fatalf("distance %d, source offset %d, %d bytes: storeRing copied %d; contents equal: %v", dist, srcOff, n, got, bytes.Equal(dst, s))
				}
				if bytes.Count(area[:guard], []byte{0xee}) != guard || bytes.Count(area[guard+n:], []byte{0xee}) != guard {
					t.Fatalf("distance %d, source offset %d, %d bytes: storeRing wrote outside its destination", dist, srcOff, n)
				}
			}
		}
	}
}
