package tn

import (
	"runtime"
	"sync/atomic"
	"testing"
)

type padded struct {
	v atomic.Uint64
	_ [120]byte
}

var a, b padded

func BenchmarkLinePingPong(bm *testing.B) {
	runtime.GOMAXPROCS(2)
	a.v.Store(0)
	b.v.Store(0)
	n := uint64(bm.N)
	go func() {
		for i := uint64(1); i <= n; i++ {
			for a.v.Load() != i {
			}
			b.v.Store(i)
		}
	}()
	bm.ResetTimer()
	for i := uint64(1); i <= n; i++ {
		a.v.Store(i)
		for b.v.Load() != i {
		}
	}
}
