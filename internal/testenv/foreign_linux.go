package testenv

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// AttachForeignSMCWriter attaches to the cgroup v2 at dir a sock_ops program that is
// not this package's but writes the SMC option (kind 254, ExID E2 D4 C3 D9) into the
// SYN and SYN-ACK of every socket of the cgroup, as a careless other tool could: the
// situation the signalling must detect as a conflict. It is loaded with raw bpf(2)
// calls (this package does not import cilium/ebpf) and detached by a cleanup.
func AttachForeignSMCWriter(tb testing.TB, dir string) {
	tb.Helper()
	RequireBPF(tb)
	prog, err := loadForeign()
	Require(tb, "loading a sock_ops program", err)
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(prog)
		tb.Fatalf("smc: testenv: %v", err)
	}
	defer unix.Close(cg)
	// union bpf_attr for BPF_LINK_CREATE: prog_fd, target_fd, attach_type, flags.
	attr := [4]uint32{uint32(prog), uint32(cg), unix.BPF_CGROUP_SOCK_OPS, 0}
	var pad [64]byte
	buf := append(unsafe.Slice((*byte)(unsafe.Pointer(&attr[0])), 16), pad[:]...)
	lnk, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	unix.Close(prog)
	if errno != 0 {
		tb.Fatalf("smc: testenv: attaching the foreign program to %s: %v", dir, errno)
	}
	tb.Cleanup(func() { unix.Close(int(lnk)) })
}

// BPF instruction encoding (Linux include/uapi/linux/bpf.h, bpf_common.h).
type insn struct {
	code uint8
	regs uint8 // dst | src<<4
	off  int16
	imm  int32
}

const (
	clsLDX, clsST, clsSTX, clsALU64, clsJMP = 0x01, 0x02, 0x03, 0x07, 0x05
	szW, szH, modeMEM                       = 0x00, 0x08, 0x60
	srcK, srcX                              = 0x00, 0x08
	opAdd, opOr, opAnd, opMov               = 0x00, 0x40, 0x50, 0xb0
	opJA, opJEQ, opCall, opExit             = 0x00, 0x10, 0x80, 0x90
)

func ldxW(dst, src uint8, off int16) insn  { return insn{clsLDX | szW | modeMEM, dst | src<<4, off, 0} }
func movImm(dst uint8, imm int32) insn     { return insn{clsALU64 | opMov | srcK, dst, 0, imm} }
func movReg(dst, src uint8) insn           { return insn{clsALU64 | opMov | srcX, dst | src<<4, 0, 0} }
func aluImm(op, dst uint8, imm int32) insn { return insn{clsALU64 | op | srcK, dst, 0, imm} }
func jeqImm(dst uint8, imm int32, off int16) insn {
	return insn{clsJMP | opJEQ | srcK, dst, off, imm}
}
func ja(off int16) insn                        { return insn{clsJMP | opJA, 0, off, 0} }
func call(fn int32) insn                       { return insn{clsJMP | opCall, 0, 0, fn} }
func exit() insn                               { return insn{clsJMP | opExit, 0, 0, 0} }
func stW(dst uint8, off int16, imm int32) insn { return insn{clsST | szW | modeMEM, dst, off, imm} }
func stH(dst uint8, off int16, imm int32) insn { return insn{clsST | szH | modeMEM, dst, off, imm} }

// foreignProgram returns the instructions of the foreign writer: TCP_CONNECT and
// TCP_LISTEN enable the header-option callbacks; a SYN or SYN-ACK gets 6 bytes
// reserved and the SMC option written.
func foreignProgram() []insn {
	const (
		opConnect, opListen, opLen, opWrite = 3, 11, 14, 15
		ctxOp, ctxCbFlags, ctxTCPFlags      = 0, 84, 212
		fnCbFlagsSet, fnStore, fnReserve    = 59, 143, 144
		writeHdrOptFlag                     = 1 << 6
	)
	p := []insn{
		movReg(6, 1),
		ldxW(2, 6, ctxOp),
		jeqImm(2, opConnect, 5), // -> flags
		jeqImm(2, opListen, 4),  // -> flags
		jeqImm(2, opLen, 8),     // -> len
		jeqImm(2, opWrite, 15),  // -> write
		movImm(0, 1),            // out
		exit(),
		// flags:
		ldxW(2, 6, ctxCbFlags),
		aluImm(opOr, 2, writeHdrOptFlag),
		movReg(1, 6),
		call(fnCbFlagsSet),
		ja(-7), // -> out
		// len:
		ldxW(2, 6, ctxTCPFlags),
		aluImm(opAnd, 2, 0x02),
		jeqImm(2, 0, -10), // not a SYN -> out
		movReg(1, 6),
		movImm(2, 6),
		movImm(3, 0),
		call(fnReserve),
		ja(-15), // -> out
		// write:
		ldxW(2, 6, ctxTCPFlags),
		aluImm(opAnd, 2, 0x02),
		jeqImm(2, 0, -18),        // not a SYN -> out
		stW(10, -8, -0x2b1df902), // FE 06 E2 D4 as a little-endian word
		stH(10, -4, -0x263d),     // C3 D9
		movReg(1, 6),
		movReg(2, 10),
		aluImm(opAdd, 2, -8),
		movImm(3, 6),
		movImm(4, 0),
		call(fnStore),
		ja(-27), // -> out
	}
	return p
}

// loadForeign loads the foreign writer and returns its fd.
func loadForeign() (int, error) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		return -1, fmt.Errorf("smc: testenv: the foreign program is encoded for little-endian machines")
	}
	prog := foreignProgram()
	code := make([]byte, 8*len(prog))
	for i, in := range prog {
		b := code[8*i:]
		b[0], b[1] = in.code, in.regs
		binary.LittleEndian.PutUint16(b[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(b[4:], uint32(in.imm))
	}
	license := []byte("GPL\x00")
	name := [16]byte{}
	copy(name[:], "foreign_smc")
	logBuf := make([]byte, 1<<16)
	// union bpf_attr for BPF_PROG_LOAD, up to prog_name and expected_attach_type.
	attr := make([]byte, 128)
	ne := binary.NativeEndian
	ne.PutUint32(attr[0:], unix.BPF_PROG_TYPE_SOCK_OPS)
	ne.PutUint32(attr[4:], uint32(len(prog)))
	ne.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&code[0]))))
	ne.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&license[0]))))
	ne.PutUint32(attr[24:], 1) // log_level
	ne.PutUint32(attr[28:], uint32(len(logBuf)))
	ne.PutUint64(attr[32:], uint64(uintptr(unsafe.Pointer(&logBuf[0]))))
	copy(attr[48:64], name[:])
	ne.PutUint32(attr[68:], unix.BPF_CGROUP_SOCK_OPS) // expected_attach_type
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if errno != 0 {
		return -1, fmt.Errorf("smc: testenv: BPF_PROG_LOAD: %w: %s", errno, cString(logBuf))
	}
	return int(fd), nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
