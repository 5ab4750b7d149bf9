// Command shmipc-bench measures cloudwego/shmipc-go for smc perf, on the shape of
// shmipc-go's own BenchmarkParallelPingPong: several streams of one session, each
// sending a size-byte request and waiting for a size-byte response. Unlike that
// benchmark, the payload is copied in and out of shared memory (Stream.Write and
// Stream.Read), as an application that uses the bytes must, and client and server
// are two processes, like every other row of smc perf.
//
//	shmipc-bench server -sock path
//	    serves until standard input closes; each line "cpu" read on standard input
//	    is answered with the process's CPU time in nanoseconds on standard output.
//	shmipc-bench client -sock path -size n -streams k -duration d
//	    one measurement; prints "start" when the clock starts, then one JSON object:
//	    ops, elapsed_ns, cpu_ns.
//
// It is a module of its own so that shmipc-go never becomes a dependency of smc.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	shmipc "github.com/cloudwego/shmipc-go"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: shmipc-bench server|client [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = server(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shmipc-bench:", err)
		os.Exit(1)
	}
}

// config is shmipc-go's benchmarkConfig: memfd buffers, a large queue, and slices
// sized for the payload.
func config(size int) *shmipc.Config {
	c := shmipc.DefaultConfig()
	c.QueueCap = 65535
	c.ConnectionWriteTimeout = time.Second
	c.ShareMemoryBufferCap = 256 << 20
	if size >= 4<<20 {
		c.ShareMemoryBufferCap = 512 << 20
	}
	c.MemMapType = shmipc.MemMapTypeMemFd
	c.LogOutput = io.Discard
	if size > 0 {
		c.BufferSliceSizes = []*shmipc.SizePercentPair{
			{Size: uint32(size) + 256, Percent: 70},
			{Size: 16 << 10, Percent: 20},
			{Size: 64 << 10, Percent: 10},
		}
	}
	return c
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func server(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	sock := fs.String("sock", "", "unix socket path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	shmipc.SetLogLevel(5) // no output
	os.Remove(*sock)
	ln, err := net.Listen("unix", *sock)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSession(conn)
		}
	}()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "cpu" {
			fmt.Println(cpuNanos())
		}
	}
	return nil
}

func serveSession(conn net.Conn) {
	sess, err := shmipc.Server(conn, config(0))
	if err != nil {
		conn.Close()
		return
	}
	defer sess.Close()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		go echo(st)
	}
}

// echo answers each size-byte request of a stream with the same bytes; the
// stream's first 4 bytes carry the size.
func echo(st *shmipc.Stream) {
	defer st.Close()
	var hdr [4]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return
	}
	size := int(binary.BigEndian.Uint32(hdr[:]))
	if size < 1 || size > 64<<20 {
		return
	}
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(st, buf); err != nil {
			return
		}
		st.BufferReader().ReleasePreviousRead()
		if err := write(st, buf); err != nil {
			return
		}
	}
}

// write copies b into the stream, retrying while shmipc's queue is full.
func write(st *shmipc.Stream, b []byte) error {
	for {
		_, err := st.Write(b)
		if errors.Is(err, shmipc.ErrQueueFull) {
			time.Sleep(time.Microsecond)
			continue
		}
		return err
	}
}

type result struct {
	Ops       int64 `json:"ops"`
	ElapsedNs int64 `json:"elapsed_ns"`
	CPUNs     int64 `json:"cpu_ns"`
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	sock := fs.String("sock", "", "unix socket path of the server")
	size := fs.Int("size", 64, "request and response size in bytes")
	streams := fs.Int("streams", 2, "parallel streams")
	d := fs.Duration("duration", 250*time.Millisecond, "measuring time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	shmipc.SetLogLevel(5)
	smc := shmipc.DefaultSessionManagerConfig()
	smc.Config = config(*size)
	smc.Network, smc.Address = "unix", *sock
	smc.ShareMemoryPathPrefix += fmt.Sprintf("_bench_%d", os.Getpid())
	sm, err := shmipc.NewSessionManager(smc)
	if err != nil {
		return err
	}
	defer sm.Close()
	sts := make([]*shmipc.Stream, *streams)
	for i := range sts {
		if sts[i], err = sm.GetStream(); err != nil {
			return err
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(*size))
		if err := write(sts[i], hdr[:]); err != nil {
			return err
		}
	}
	var (
		ops   atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	fmt.Println("start")
	cpu0 := cpuNanos()
	t0 := time.Now()
	end := t0.Add(*d)
	for _, st := range sts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, *size)
			for i := range buf {
				buf[i] = byte(i)
			}
			var n int64
			for time.Now().Before(end) {
				if err := write(st, buf); err != nil {
					first.CompareAndSwap(nil, err)
					break
				}
				if _, err := io.ReadFull(st, buf); err != nil {
					first.CompareAndSwap(nil, err)
					break
				}
				st.ReleaseReadAndReuse()
				n++
			}
			ops.Add(n)
		}()
	}
	wg.Wait()
	res := result{Ops: ops.Load(), ElapsedNs: time.Since(t0).Nanoseconds(), CPUNs: cpuNanos() - cpu0}
	for _, st := range sts {
		st.Close()
	}
	if err, ok := first.Load().(error); ok {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
