package signal

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/smc-go/smc/internal/testenv"
)

// TestLoad checks that the kernel's verifier accepts the program.
func TestLoad(t *testing.T) {
	testenv.RequireBPF(t)
	coll, err := ebpf.NewCollectionWithOptions(collectionSpec(), ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelBranch},
	})
	if err != nil {
		t.Fatalf("loading: %+v", err)
	}
	coll.Close()
}

// TestContextLayout checks the struct bpf_sock_ops offsets the program uses against
// the running kernel's BTF.
func TestContextLayout(t *testing.T) {
	testenv.RequireBPF(t)
	spec, err := btf.LoadKernelSpec()
	testenv.Require(t, "kernel BTF", err)
	var s *btf.Struct
	if err := spec.TypeByName("bpf_sock_ops", &s); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{
		"op": ctxOp, "bpf_sock_ops_cb_flags": ctxCbFlags, "skb_tcp_flags": ctxSkbTCPFlag,
	}
	got := map[string]uint32{}
	for i, m := range s.Members {
		got[m.Name] = uint32(m.Offset / 8)
		if m.Name == "sk" || m.Name == "" && i > 0 && s.Members[i-1].Name == "bytes_acked" {
			got["sk"] = uint32(m.Offset / 8)
		}
	}
	want["sk"] = ctxSk
	for name, off := range want {
		if got[name] != off {
			t.Errorf("bpf_sock_ops.%s at %d, program uses %d", name, got[name], off)
		}
	}
	if got["family"] != 20 { // args[4] sits between op and family
		t.Errorf("bpf_sock_ops.family at %d, want 20 (args at %d)", got["family"], ctxArgs0)
	}
}
