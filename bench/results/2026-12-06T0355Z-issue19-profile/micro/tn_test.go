package tn

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

var sink int64

func BenchmarkNow(b *testing.B) {
	for b.Loop() {
		sink += time.Now().UnixNano()
	}
}
func BenchmarkSince(b *testing.B) {
	t := time.Now()
	for b.Loop() {
		sink += int64(time.Since(t))
	}
}
func BenchmarkGosched(b *testing.B) {
	for b.Loop() {
		runtime.Gosched()
	}
}

var v atomic.Uint64

func BenchmarkLoad64(b *testing.B) {
	for b.Loop() {
		for range 64 {
			sink += int64(v.Load())
		}
	}
}
