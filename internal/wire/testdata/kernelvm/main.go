// Command kernelvm checks this package's encodings against the Linux kernel's own
// SMC code. It runs inside the VM of internal/kernelvm (Debian's 6.1 kernel
// with smc.ko, no RDMA or ISM device): a kernel AF_SMC listener on 127.0.0.1, and a
// plain TCP client whose SYN carries the SMC option (marked with internal/signal),
// which sends CLC messages encoded by internal/wire and checks what the kernel does.
//
// The kernel answers a Proposal that passes smc_clc_msg_prop_valid with a Decline
// (it has no device) and then serves the connection as TCP; it drops the connection
// without a Decline when the Proposal is malformed. The two malformed Proposals are
// controls showing that the kernel does check.
//
// It lives under testdata so that `go build ./...` and `go vet ./...` skip it (it
// imports internal/signal, which internal/wire itself must not). Run it with:
//
//	internal/kernelvm/build.sh /tmp/vm
//	mkdir -p /tmp/kvm && CGO_ENABLED=0 go build -o /tmp/kvm/kernelvm ./internal/wire/testdata/kernelvm
//	printf '#!/bin/sh\n/payload/kernelvm\n' > /tmp/kvm/run.sh && chmod +x /tmp/kvm/run.sh
//	internal/kernelvm/run.sh /tmp/vm /tmp/kvm 300   # exit 0 when every check holds
//
// Observed on 6.1.0-56-amd64 (Debian 6.1.192-2), under TCG, in about 15 s: every
// check holds; the kernel answers the SMC-D v2 Proposals with a v2 Decline
// NOISM2SUPP (it has no ISMv2 device), the mixed one with NOSMCDDEV and the
// version 1 one with a v1 Decline NOSMCDEV.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/smc-go/smc/internal/signal"
	"github.com/smc-go/smc/internal/wire"
)

const afSMC = 43

// outcome is what the kernel server did with the bytes the client sent.
type outcome struct {
	decline  bool      // it sent a Decline ...
	code     wire.Code // ... with this diagnosis
	version  uint8     // ... of this version
	fallback bool      // the connection then carried plain TCP data both ways
}

func (o outcome) String() string {
	if !o.decline {
		return fmt.Sprintf("no decline, fallback %v", o.fallback)
	}
	return fmt.Sprintf("v%d decline %v, fallback %v", o.version, o.code, o.fallback)
}

func main() {
	if err := os.MkdirAll("/sys/fs/cgroup/kernelvm", 0o755); err != nil {
		fail("mkdir cgroup: %v", err)
	}
	if err := os.WriteFile("/sys/fs/cgroup/kernelvm/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		fail("join cgroup: %v", err)
	}
	sig, err := signal.Open()
	if err != nil {
		fail("signal.Open: %v", err)
	}

	eid := func(s string) (e wire.EID) { copy(e[:], s+"                                "); return e }
	loopback := &wire.Proposal{TypeV1: wire.SMCTypeN, TypeV2: wire.SMCTypeD, Release: 1, FeatureMask: 1,
		UEIDs: []wire.EID{eid("SMC-GO-TEST")},
		GIDs:  wire.GIDEntries(wire.ISMDevice{CHID: 0xffff, GID: 0x1122334455667788, GIDExt: 0x99aabbccddeeff00})}
	noUEID := &wire.Proposal{TypeV1: wire.SMCTypeN, TypeV2: wire.SMCTypeD, Release: 1, FeatureMask: 1,
		GIDs: wire.GIDEntries(wire.ISMDevice{CHID: 0xffff, GID: 1, GIDExt: 2})}
	mixed := &wire.Proposal{TypeV1: wire.SMCTypeB, TypeV2: wire.SMCTypeB,
		ISMGID: 0x0102030405060708, ISMCHID: 0x0123,
		IPv4Subnet: [4]byte{127, 0, 0, 0}, IPv4PrefixLen: 8,
		Release: 1, UEIDs: []wire.EID{eid("SMC-GO-TEST")}, MaxConns: 255, MaxLinks: 2, FeatureMask: 1,
		GIDs: []wire.GIDCHID{{GID: 0x0a0b0c0d0e0f1011, CHID: 0x0124}}}
	v1 := &wire.Proposal{Version: 1, TypeV1: wire.SMCTypeR, IPv4Subnet: [4]byte{127, 0, 0, 0}, IPv4PrefixLen: 8}
	badOffset := loopback.Append(nil)
	badOffset[51]++ // v2_ext_offset one past the v2 extension
	extraByte := loopback.Append(nil)
	extraByte = append(extraByte[:len(extraByte)-4], 0, 0xe2, 0xd4, 0xc3, 0xd9)
	extraByte[6]++ // length field counts the extra byte

	cases := []struct {
		name string
		send []byte
		want outcome
	}{
		{"SMC-D v2 Proposal (what this project sends)", loopback.Append(nil),
			outcome{decline: true, code: wire.CodeNoISM2Supp, version: 2, fallback: true}},
		{"SMC-D v2 Proposal without UEID", noUEID.Append(nil),
			outcome{decline: true, code: wire.CodeNoISM2Supp, version: 2, fallback: true}},
		{"Proposal offering SMC-R and SMC-D, v1 and v2", mixed.Append(nil),
			outcome{decline: true, code: wire.CodeNoSMCDDev, version: 2, fallback: true}},
		{"version 1 SMC-R Proposal", v1.Append(nil),
			outcome{decline: true, code: wire.CodeNoSMCDev, version: 1, fallback: true}},
		{"control: v2_ext_offset off by one", badOffset, outcome{}},
		{"control: one byte too many", extraByte, outcome{}},
		{"v1 Decline as the first message", (&wire.Decline{Diagnosis: wire.CodeNoSMCDev}).Append(nil),
			outcome{fallback: true}},
		{"v2 Decline as the first message", (&wire.Decline{Version: 2, Diagnosis: wire.CodeNoSMCD2Dev, OSType: wire.OSLinux}).Append(nil),
			outcome{fallback: true}},
	}
	failed := 0
	for i, c := range cases {
		got, detail := run(sig, 40500+i, c.send)
		status := "ok"
		if got != c.want {
			status = fmt.Sprintf("FAIL (want %v)", c.want)
			failed++
		}
		fmt.Printf("%-46s %v: %s; %s\n", c.name, got, status, detail)
	}
	if failed > 0 {
		fail("%d of %d checks failed", failed, len(cases))
	}
	fmt.Println("kernelvm: all checks hold")
}

func fail(format string, args ...any) {
	fmt.Printf("kernelvm: "+format+"\n", args...)
	os.Exit(1)
}

// run sends b on a fresh connection to a kernel AF_SMC listener and reports what
// the kernel did.
func run(sig *signal.Signaller, port int, b []byte) (got outcome, detail string) {
	lfd, err := syscall.Socket(afSMC, syscall.SOCK_STREAM, 0)
	if err != nil {
		fail("AF_SMC socket: %v", err)
	}
	defer syscall.Close(lfd)
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		fail("bind: %v", err)
	}
	if err := syscall.Listen(lfd, 8); err != nil {
		fail("listen: %v", err)
	}
	accepted := make(chan int, 1)
	go func() {
		fd, _, err := syscall.Accept(lfd)
		if err != nil {
			fd = -1
		}
		accepted <- fd
	}()

	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = sig.Mark(int(fd)) }); cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := d.DialContext(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	var res signal.Result
	if raw, err := conn.(*net.TCPConn).SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) { res, err = sig.Result(int(fd)) })
	}
	if !res.Negotiated() {
		fail("SMC option not exchanged: %+v", res)
	}
	if _, err := conn.Write(b); err != nil {
		fail("write: %v", err)
	}

	// The kernel's answer, if any: a Decline, nothing (it waits for data), or EOF.
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	msg, err := wire.ReadMessage(conn, nil)
	conn.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		m, perr := wire.Parse(msg)
		dcl, ok := m.(*wire.Decline)
		if !ok {
			return got, fmt.Sprintf("unexpected answer % x (%v)", msg, perr)
		}
		got.decline, got.code, got.version = true, dcl.Diagnosis, dcl.Version
		detail = fmt.Sprintf("kernel sent % x", msg)
	case errors.Is(err, os.ErrDeadlineExceeded) && len(msg) == 0:
		detail = "kernel sent nothing"
	default:
		return got, fmt.Sprintf("kernel closed the connection (% x, %v)", msg, err)
	}

	select {
	case fd := <-accepted:
		if fd < 0 {
			return got, detail + "; accept failed"
		}
		defer syscall.Close(fd)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4)
		if _, err := conn.Write([]byte("ping")); err != nil {
			return got, detail + "; write ping: " + err.Error()
		}
		if n, err := syscall.Read(fd, buf); err != nil || string(buf[:n]) != "ping" {
			return got, fmt.Sprintf("%s; server read %q %v", detail, buf[:max(n, 0)], err)
		}
		syscall.Write(fd, []byte("pong"))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "pong" {
			return got, fmt.Sprintf("%s; client read %q %v", detail, buf, err)
		}
		got.fallback = true
	case <-time.After(5 * time.Second):
		detail += "; nothing to accept"
	}
	return got, detail
}
