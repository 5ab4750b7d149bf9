package shm

import (
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestStress moves data both ways over many concurrent streams with random write and read
// sizes and ring sizes, and compares checksums.
func TestStress(t *testing.T) {
	defer checkLeaks(t)()
	streams, perDir := 12, 3<<20
	if testing.Short() {
		streams, perDir = 4, 1<<20
	}
	var wg sync.WaitGroup
	var all []*Stream
	defer func() {
		for _, s := range all {
			s.Close()
		}
	}()
	for i := range streams {
		sizes := []int{MinRingSize, 64 << 10, 1 << 20}
		a, b := pairKinds[i%2].make(t, sizes[i%3], sizes[(i+1)%3])
		all = append(all, a, b)
		for _, dir := range [][2]*Stream{{a, b}, {b, a}} {
			w, r := dir[0], dir[1]
			seed := uint64(i)
			wg.Add(2)
			sum := make(chan uint32, 1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, 1))
				buf := make([]byte, 256<<10)
				h := crc32.NewIEEE()
				for sent := 0; sent < perDir; {
					n := min(1+rng.IntN(len(buf)), perDir-sent)
					if rng.IntN(4) == 0 {
						n = min(1+rng.IntN(64), perDir-sent) // plenty of tiny writes too
					}
					for j := range n {
						buf[j] = byte(rng.Uint32())
					}
					if _, err := w.Write(buf[:n]); err != nil {
						t.Error(err)
						return
					}
					h.Write(buf[:n])
					sent += n
				}
				w.CloseWrite()
				sum <- h.Sum32()
			}()
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, 2))
				buf := make([]byte, 300<<10)
				h := crc32.NewIEEE()
				got := 0
				for {
					n, err := r.Read(buf[:1+rng.IntN(len(buf))])
					h.Write(buf[:n])
					got += n
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
				if got != perDir {
					t.Errorf("stream %d: read %d bytes, want %d", seed, got, perDir)
				}
				if want := <-sum; h.Sum32() != want {
					t.Errorf("stream %d: checksum %08x, want %08x", seed, h.Sum32(), want)
				}
			}()
		}
	}
	wg.Wait()
}

// TestPingPongGOMAXPROCS1 checks that spinning never starves a single-P process: a
// ping-pong between two goroutines must make progress.
func TestPingPongGOMAXPROCS1(t *testing.T) { forEachPairKind(t, testPingPongGOMAXPROCS1) }

func testPingPongGOMAXPROCS1(t *testing.T, pair pairFunc) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	slotsAt.Store(0) // re-read GOMAXPROCS now
	a, b := pair(t, MinRingSize, MinRingSize)
	const rounds = 5000
	go func() {
		buf := make([]byte, 64)
		for range rounds {
			if _, err := io.ReadFull(b, buf); err != nil {
				return
			}
			if _, err := b.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64)
	a.SetDeadline(time.Now().Add(30 * time.Second)) // progress, not speed: a stall fails
	for i := range rounds {
		if _, err := a.Write(buf); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if _, err := io.ReadFull(a, buf); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}
