package wire

import "testing"

func TestBufferSize(t *testing.T) {
	tests := []struct {
		c    uint8
		size int
	}{
		{0, 16 << 10}, {1, 32 << 10}, {2, 64 << 10}, {5, 512 << 10}, {6, 1 << 20}, {15, 512 << 20}, {16, 0}, {255, 0},
	}
	for _, tt := range tests {
		if got := BufferSize(tt.c); got != tt.size {
			t.Errorf("BufferSize(%d) = %d, want %d", tt.c, got, tt.size)
		}
	}
}

func TestCompressBufferSize(t *testing.T) {
	tests := []struct {
		size int
		c    uint8
		ok   bool
	}{
		{-1, 0, true}, {0, 0, true}, {1, 0, true}, {16 << 10, 0, true}, {16<<10 + 1, 1, true},
		{64 << 10, 2, true}, {64<<10 + 1, 3, true}, {1 << 20, 6, true}, {512 << 20, 15, true},
		{512<<20 + 1, 15, false},
	}
	for _, tt := range tests {
		c, ok := CompressBufferSize(tt.size)
		if c != tt.c || ok != tt.ok {
			t.Errorf("CompressBufferSize(%d) = %d, %v; want %d, %v", tt.size, c, ok, tt.c, tt.ok)
		}
		if ok && (BufferSize(c) < tt.size || (c > 0 && BufferSize(c-1) >= tt.size)) {
			t.Errorf("CompressBufferSize(%d) = %d is not the smallest fit", tt.size, c)
		}
	}
}
