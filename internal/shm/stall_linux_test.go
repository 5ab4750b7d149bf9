package shm

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// TestShortStreamsNoStall: many short streams over one link, each an echo of 1-4 KiB
// and a close, as a client's connection reuse makes. Slots are reused all the time, so
// a wake-up lost in the sleep/WAKE protocol, or dropped for a slot between two uses,
// shows as a read that never completes (a deadline error here).
func TestShortStreamsNoStall(t *testing.T) {
	defer checkLeaks(t)()
	e, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const workers, rounds = 8, 1000
	for _, spin := range []time.Duration{0, DefaultSpin} {
		t.Run(fmt.Sprintf("spin=%v", spin), func(t *testing.T) {
			defer SetSpin(SetSpin(spin))
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range rounds {
						if err := shortEcho(t, e, 1024*(1+(w+r)%4)); err != nil {
							errs <- fmt.Errorf("worker %d round %d: %w", w, r, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func shortEcho(t *testing.T, e *Endpoint, n int) error {
	a, b := pairOn(t, e, PeerID{12}, MinRingSize, MinRingSize)
	a.local.Store(nil) // wake-ups over the link, as between processes
	b.local.Store(nil)
	defer a.Close()
	defer b.Close()
	dl := time.Now().Add(10 * time.Second)
	a.SetDeadline(dl)
	b.SetDeadline(dl)
	msg := bytes.Repeat([]byte{byte(n)}, n)
	echo := make(chan error, 1)
	go func() {
		buf := make([]byte, n)
		if _, err := io.ReadFull(a, buf); err != nil {
			echo <- fmt.Errorf("server read: %w", err)
			return
		}
		_, err := a.Write(buf)
		echo <- err
	}()
	if _, err := b.Write(msg); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	got := make([]byte, n)
	_, rerr := io.ReadFull(b, got)
	if err := <-echo; err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("client read: %w (producer cursor in the ring %d, seen %d, consumed %d; reader sleep word %d after %d waits; writer woke sleep %d, produced %d)", rerr,
			b.rxh.prod.cursor.Load(), b.rx.prod, b.rx.cons, b.rxh.consCtl.sleep.Load(), b.rw.seq, a.ww.rung, a.tx.prod)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo differs")
	}
	return nil
}
