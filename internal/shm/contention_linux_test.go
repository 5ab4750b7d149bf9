package shm

import (
	"bytes"
	"io"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestEchoUnderCPUContention runs echo exchanges with four child processes while as many
// busy-looping processes as there are CPUs compete for them, so that spins expire, both
// sides park and wake-ups arrive late and out of order. Every exchange, from one byte to
// several laps of the ring (whose window grows meanwhile), must come back intact: no
// wake-up may be lost, whatever the preemption. It asserts nothing about speed.
func TestEchoUnderCPUContention(t *testing.T) {
	defer checkLeaks(t)()
	for range runtime.NumCPU() {
		hog := exec.Command("sh", "-c", "while :; do :; done")
		// Killed with the test process too, should it die before its defers run.
		hog.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		defer hog.Wait()
		defer hog.Process.Kill()
	}
	sizes := []int{1, 64, 1500, 4 << 10, 16<<10 + 3, 64 << 10, 100<<10 + 7}
	var wg sync.WaitGroup
	for c := range 4 {
		// An endpoint per child: an offer names no peer, and offers to one endpoint
		// would share the link of whichever child came first.
		e, err := Listen(Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		s, cmd := startChild(t, e, "echo", 64<<10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { // the child ends on our Close; one that does not missed its wake-up
				s.Close()
				exited := make(chan struct{})
				go func() { cmd.Wait(); close(exited) }()
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					t.Errorf("child %d still runs 30 s after our Close", c)
					cmd.Process.Kill()
					<-exited
				}
			}()
			s.SetDeadline(time.Now().Add(2 * time.Minute))
			got := make([]byte, 128<<10)
			for i := range 60 {
				n := sizes[(i+c)%len(sizes)]
				msg := pattern(i*7+c, n)
				errc := make(chan error, 1)
				go func() { // the echo starts before the whole message is written
					_, err := s.Write(msg)
					errc <- err
				}()
				if _, err := io.ReadFull(s, got[:n]); err != nil {
					t.Errorf("child %d, exchange %d (%d bytes): %v", c, i, n, err)
					return
				}
				if err := <-errc; err != nil {
					t.Errorf("child %d, exchange %d (%d bytes): write: %v", c, i, n, err)
					return
				}
				if !bytes.Equal(got[:n], msg) {
					t.Errorf("child %d, exchange %d (%d bytes): data differs", c, i, n)
					return
				}
			}
		}()
	}
	wg.Wait()
}
