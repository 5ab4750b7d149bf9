package signal

import (
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/smc-go/smc/internal/testenv"
)

// TestSYNACKNoSpace fills the SYN-ACK's option space with another sock_ops program
// attached before ours (on the SYN-ACK path the kernel runs the cgroup's programs in
// attach order), so that our bpf_reserve_hdr_opt fails with -ENOSPC there: the
// SYN-ACK must go out without the option, the server must report "not sent" although
// the SYN carried it (the request is recorded as not echoed), the client "sent, not
// received", and the errors must be counted.
func TestSYNACKNoSpace(t *testing.T) {
	testenv.RequireBPF(t)
	dir := testenv.ChildCgroup(t)
	l, err := link.AttachCgroup(link.CgroupOptions{
		Path: dir, Attach: ebpf.AttachCGroupSockOps, Program: fillerProgram(t, tcpFlagSYN|tcpFlagACK),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Mode(), "self-attached") {
		t.Fatalf("mode %q", s.Mode())
	}
	before, _ := s.Stats()
	ln := listen(t, s, "tcp4", "127.0.0.1:0", true, false)
	port := ln.Addr().(*net.TCPAddr).Port
	capture := testenv.StartCapture(t, "lo", portFilter(port))
	c := dial(t, s, "tcp4", ln.Addr().String(), true, nil)
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cr, sr := resultOf(t, s, c), acceptedOf(t, s, sc, true)
	key := addrPort(c.LocalAddr())
	exchange(t, c, sc, false)
	f := flows(capture.Stop(), map[uint16]bool{uint16(port): true})[key]
	if f == nil || !allSMC(f.syn) {
		t.Fatalf("the SYN does not carry the option: %+v", f)
	}
	if anySMC(f.synack) {
		t.Fatalf("the SYN-ACK carries the option: the filler did not run first, so this test cannot exercise -ENOSPC:%s", dump(f.synack))
	}
	if want := (Result{Marked: true, Sent: true}); cr != want {
		t.Errorf("client %+v, want %+v", cr, want)
	}
	if want := (Result{Marked: true, Received: true}); sr != want {
		t.Errorf("server %+v, want %+v", sr, want)
	}
	after, _ := s.Stats()
	for _, name := range []string{"err_reserve", "err_store"} {
		if d := after[name] - before[name]; d != 1 {
			t.Errorf("%s grew by %d, want 1", name, d)
		}
	}
}

// fillerProgram returns a sock_ops program that takes as much option space as it
// can in every packet whose SYN and ACK flags are fill: it reserves 36, 32, ... 4
// bytes (the first that fits), and fills what it reserved with one experimental
// option (kind 253), so that no space is left for anyone else.
func fillerProgram(t *testing.T, fill int32) *ebpf.Program {
	const buf = -40 // 36 bytes on the stack
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, ctxSkbTCPFlag, asm.Word),
		asm.And.Imm(asm.R2, tcpFlagSYN|tcpFlagACK),
		asm.JNE.Imm(asm.R2, fill, "out"),
		asm.LoadMem(asm.R2, asm.R6, ctxOp, asm.Word),
		asm.JEq.Imm(asm.R2, opWriteHdrOpt, "write"),
		asm.JNE.Imm(asm.R2, opHdrOptLen, "out"),
	}
	for n := int32(36); n >= 4; n -= 4 {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, n),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnReserveHdrOpt.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
		)
	}
	insns = append(insns, asm.Ja.Label("out"))
	for off := int16(0); off < 36; off += 4 {
		ins := asm.StoreImm(asm.RFP, buf+off, 0, asm.Word)
		if off == 0 {
			ins = ins.WithSymbol("write")
		}
		insns = append(insns, ins)
	}
	for n := int32(36); n >= 4; n -= 4 {
		insns = append(insns,
			// kind 253, length n, magic AB CD, zeros
			asm.StoreImm(asm.RFP, buf, int64(int32(uint32(253|n<<8|0xAB<<16)|0xCD<<24)), asm.Word),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, buf),
			asm.Mov.Imm(asm.R3, n),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnStoreHdrOpt.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
		)
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "smc_test_filler", Type: ebpf.SockOps, AttachType: ebpf.AttachCGroupSockOps,
		License: "Dual MIT/GPL", Instructions: insns,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
