package signal

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/smc-go/smc/internal/testenv"
)

// TestLoad checks that the kernel's verifier accepts the program.
func TestLoad(t *testing.T) {
	testenv.RequireBPF(t)
	spec, err := collectionSpec()
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelBranch},
	})
	if err != nil {
		t.Fatalf("loading: %+v", err)
	}
	coll.Close()
}
