package smc

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/testenv"
)

// TestWiresharkDecodesHandshakes captures a real smc↔smc handshake that ends in
// SMC-D and one the server declines, and checks that Wireshark's SMC dissector
// decodes every CLC message as SMC, with the fields this package sent and no
// malformed-packet or error-level expert info.
func TestWiresharkDecodesHandshakes(t *testing.T) {
	requireSignalling(t)
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptAll(t, ln)
	file, stop := testenv.StartTshark(t, ln.Addr().(*net.TCPAddr).Port)

	c, err := Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if State(c).Mode != ModeSMCD {
		t.Fatalf("first connection: %+v, want SMC-D", State(c))
	}
	c.Close()
	prev := shm.SetMemoryLimit(shm.MemoryInUse()) // the server must decline: MAX_DMB
	c, err = Dial("tcp", ln.Addr().String())
	shm.SetMemoryLimit(prev)
	if err != nil {
		t.Fatal(err)
	}
	if st := State(c); st.Mode != ModeTCP || st.PeerDiagnosis != ReasonMaxDMB {
		t.Fatalf("second connection: %+v, want TCP after a MAX_DMB decline", st)
	}
	c.Close()
	stop()

	gid, err := localGID()
	if err != nil {
		t.Fatal(err)
	}
	hex64 := func(v uint64) string { return fmt.Sprintf("0x%016x", v) }
	eid := strings.TrimSpace(string(localEID[:]))
	size := fmt.Sprint(compressedSize(DefaultBufferSize))
	want := []map[string]string{
		{ // Proposal: SMC-D v2 only, our device as an Emulated-ISM GID pair
			"smc.clc_msg": "1", "smc.proposal.smc.version": "2",
			"smc.proposal.smcv2.type": "1", "smc.proposal.smc.type": "2",
			"smc.proposal.eid.count": "1", "smc.proposal.ismv2_gid_count": "2",
			"smc.proposal.eid": eid, "smc.proposal.smc.chid#last": "0xfffe",
			"smc.proposal.ism.gid#last": hex64(gid[1]),
		},
		{ // Accept, first contact
			"smc.clc_msg": "2", "smc.accept.first.contact": "1", "smc.accept.smc.type": "1",
			"smc.accept.sender.server.ism.gid": hex64(gid[0]), "smc.accept.smc.chid": "0xfffe",
			"smc.accept.eid": eid, "smc.accept.dmbe.buffer.size": size, "smc.accept.os.type": "2",
		},
		{ // Confirm
			"smc.clc_msg": "3", "smc.confirm.smc.type": "1",
			"smc.confirm.sender.client.ism.gid": hex64(gid[0]), "smc.confirm.smc.chid": "0xfffe",
			"smc.confirm.eid": eid, "smc.confirm.dmbe.buffer.size": size,
		},
		{"smc.clc_msg": "1", "smc.proposal.smcv2.type": "1"}, // the second Proposal
		{ // the server's Decline: v2, as the Proposal it answers
			"smc.clc_msg": "4", "smc.decline.smc.version": "2",
			"smc.peer.diag.info": "0x030d0000", "smc.decline.os.type": "2",
		},
	}
	msgs := testenv.DissectSMC(t, file)
	if len(msgs) != len(want) {
		t.Fatalf("tshark decoded %d SMC messages, want %d: %+v", len(msgs), len(want), msgs)
	}
	for i, w := range want {
		if len(msgs[i].Problems) > 0 {
			t.Errorf("message %d: %v", i, msgs[i].Problems)
		}
		for name, v := range w {
			fields := msgs[i].First
			if n, last := strings.CutSuffix(name, "#last"); last {
				name, fields = n, msgs[i].Last
			}
			if got, ok := fields[name]; !ok || strings.TrimSpace(got) != v {
				t.Errorf("message %d: %s = %q (present %v), want %q", i, name, got, ok, v)
			}
		}
	}
}
