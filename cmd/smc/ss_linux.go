package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc/internal/registry"
	"github.com/smc-go/smc/internal/signal"
)

// sockets dumps the TCP sockets of each network namespace the processes are in:
// this process's own directly, others (root only) from a thread that entered them.
// It returns them by namespace inode, and notes on what could not be read.
func sockets(procs []*registry.Process) (map[uint64][]signal.Socket, []string) {
	out := map[uint64][]signal.Socket{}
	var notes []string
	own := netnsOf("self")
	maps := []uint32(nil)
	if isRoot() {
		maps = markMaps(procs)
	} else if len(procs) > 0 {
		notes = append(notes, "as a user, only this user's processes are shown, and a client that fell back "+
			"because its server never announced SMC is not (it is found by its socket's mark, which only root may read)")
	}
	seen := map[uint64]bool{}
	for _, p := range procs {
		ns := p.NetNS
		if seen[ns] {
			continue
		}
		seen[ns] = true
		var socks []signal.Socket
		var marksErr, err error
		if ns == own || ns == 0 {
			socks, marksErr, err = signal.TCPSockets(maps)
		} else {
			socks, marksErr, err = inNetns(p.PID, func() ([]signal.Socket, error, error) { return signal.TCPSockets(maps) })
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("the sockets of network namespace %d (pid %d) are unknown: %v", ns, p.PID, err))
			continue
		}
		if marksErr != nil {
			notes = append(notes, fmt.Sprintf("clients that fell back to plain peers are not shown: %v", marksErr))
		}
		out[ns] = socks
	}
	return out, notes
}

// netnsOf returns the inode of the network namespace of /proc/<pid>, or 0.
func netnsOf(pid string) uint64 {
	link, err := os.Readlink("/proc/" + pid + "/ns/net")
	if err != nil {
		return 0
	}
	s, _ := strings.CutPrefix(link, "net:[")
	n, _ := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	return n
}

// inNetns runs f on a thread that entered the network namespace of process pid. The
// thread is not handed back to the runtime (it ends with the goroutine), so no other
// goroutine ever runs in that namespace.
func inNetns(pid int, f func() ([]signal.Socket, error, error)) (socks []signal.Socket, marksErr, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, oerr := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if oerr != nil {
			err = oerr
			return
		}
		defer unix.Close(fd)
		if err = unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return
		}
		socks, marksErr, err = f()
	}()
	<-done
	return
}
