package wire

// Buffer sizes travel in Accept/Confirm as a 4-bit compressed value c standing for
// 16 KiB << c. Linux smc_core.c: smc_compress_bufsize, smc_uncompress_bufsize.
const (
	// MinBufferSize is the size compressed value 0 stands for
	// (Linux smc_core.h: SMC_BUF_MIN_SIZE).
	MinBufferSize = 16 << 10
	// MaxCompressedSize is the largest compressed value the 4-bit field holds
	// (512 MiB).
	MaxCompressedSize = 15
	// MaxCompressedSizeSMCD is the largest compressed value Linux uses for an SMC-D
	// DMB, 1 MiB (Linux smc_core.h: SMCD_DMBE_SIZES).
	MaxCompressedSizeSMCD = 6
)

// BufferSize returns the size in bytes that compressed value c stands for,
// 16 KiB << c, or 0 when c is larger than MaxCompressedSize.
func BufferSize(c uint8) int {
	if c > MaxCompressedSize {
		return 0
	}
	return MinBufferSize << c
}

// CompressBufferSize returns the smallest compressed value whose [BufferSize] is at
// least size, so a buffer of size bytes rounds up to BufferSize(c). It reports
// false, with c = MaxCompressedSize, when size exceeds BufferSize(MaxCompressedSize).
// Sizes up to 16 KiB, including 0 and negative sizes, compress to 0.
func CompressBufferSize(size int) (c uint8, ok bool) {
	for c = 0; c < MaxCompressedSize; c++ {
		if size <= MinBufferSize<<c {
			return c, true
		}
	}
	return MaxCompressedSize, size <= MinBufferSize<<MaxCompressedSize
}
