package wire_test

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/testenv"
	"github.com/smc-go/smc/internal/wire"
)

// TestWireshark sends every message this package encodes over a loopback TCP
// connection, captures it with tshark and checks that Wireshark's SMC dissector
// decodes each one as SMC with the field values sent and without malformed-packet
// or error-level expert info.
//
// Verified with TShark (Wireshark) 4.0.17 (Debian 12 package 4.0.17-0+deb12u3).
// Its heuristic TCP dissector "smc" (enabled by default) recognises CLC messages by
// their eyecatcher; tcp.try_heuristic_first makes it win over port-based
// dissectors on the ephemeral ports used here.
//
// Wireshark 4.0.17 agrees with the Linux layout on every field checked, including
// the v2 extension of a Proposal with iparea_offset 0 (no SMC-v1 offer). It does
// not show every field: an Accept/Confirm's extended GID and the v2.1 part of the
// first-contact extension are skipped, and no trailer is checked.
func TestWireshark(t *testing.T) {

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	file, stopCapture := testenv.StartTshark(t, ln.Addr().(*net.TCPAddr).Port)

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	c.SetDeadline(deadline)
	s.SetDeadline(deadline)

	var hostname [wire.HostnameLen]byte
	copy(hostname[:], "wireshark-test                  ")
	eid := func(s string) (e wire.EID) {
		copy(e[:], s+strings.Repeat(" ", wire.EIDLen))
		return e
	}
	proposal := &wire.Proposal{TypeV1: wire.SMCTypeN, TypeV2: wire.SMCTypeD, Release: 1, FeatureMask: 1,
		UEIDs: []wire.EID{eid("SMC-GO-TEST")},
		GIDs:  []wire.GIDCHID{{GID: 0x1122334455667788, CHID: 0xffff}, {GID: 0x99aabbccddeeff00, CHID: 0xffff}}}
	mixed := &wire.Proposal{TypeV1: wire.SMCTypeB, TypeV2: wire.SMCTypeB,
		PeerID: [8]byte{0x8c, 0x35, 2, 0, 0, 0, 0, 1}, ISMGID: 0x0102030405060708, ISMCHID: 0x0123,
		IPv4Subnet: [4]byte{192, 168, 1, 0}, IPv4PrefixLen: 24,
		Release: 1, SEID: true, UEIDs: []wire.EID{eid("SMC-GO-TEST"), eid("SECOND")},
		RoCEv2GID: [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 168, 14: 1, 15: 5},
		MaxConns:  255, MaxLinks: 2, FeatureMask: 1, SystemEID: eid("IBM-SYSEID"),
		GIDs: []wire.GIDCHID{{GID: 0x0a0b0c0d0e0f1011, CHID: 0x0124}}}
	accept := &wire.AcceptConfirm{Type: wire.TypeAccept, GID: 0x1122334455667788, DMBToken: 0x0badc0ffee000001,
		DMBESize: 2, LinkID: 0x101, CHID: 0xffff, EID: eid("SMC-GO-TEST"), GIDExt: 0x99aabbccddeeff00,
		FCE: &wire.FirstContactExt{OSType: wire.OSLinux, Release: 1, Hostname: hostname, V2x: true, FeatureMask: 1}}
	confirm := &wire.AcceptConfirm{Type: wire.TypeConfirm, GID: 0x99aabbccddeeff01, DMBToken: 0xdeadbeef,
		DMBESize: 6, LinkID: 0x101, CHID: 0xffff, EID: eid("SMC-GO-TEST"), GIDExt: 0x0102030405060708}
	declineV1 := &wire.Decline{Diagnosis: wire.CodeNoSMCDev}
	declineV2 := &wire.Decline{Version: 2, OutOfSync: true, Diagnosis: wire.CodeSyncErr, OSType: wire.OSLinux}

	// Send each message and read it on the other side, one at a time, so the
	// capture holds them in this order.
	steps := []struct {
		from, to net.Conn
		m        wire.Message
	}{
		{c, s, proposal}, {s, c, accept}, {c, s, confirm}, {c, s, mixed}, {c, s, declineV1}, {s, c, declineV2},
	}
	for i, st := range steps {
		b := st.m.Append(nil)
		if _, err := st.from.Write(b); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := wire.ReadMessage(st.to, nil)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("step %d: read % x, %v", i, got, err)
		}
	}
	// A negative control: a Proposal whose EID count runs past its end, which the
	// dissector must flag, so that a silent dissector cannot pass this test.
	broken := mixed.Append(nil)
	broken[88] = 200 // eid_cnt
	if _, err := c.Write(broken); err != nil {
		t.Fatal(err)
	}
	if got, err := wire.ReadMessage(s, nil); err != nil || !bytes.Equal(got, broken) {
		t.Fatalf("broken: read % x, %v", got, err)
	}
	c.Close()
	s.Close()
	stopCapture()

	msgs := testenv.DissectSMC(t, file)
	if len(msgs) != len(steps)+1 {
		t.Fatalf("tshark decoded %d SMC messages, want %d: %v", len(msgs), len(steps)+1, msgs)
	}
	if len(msgs[len(steps)].Problems) == 0 {
		t.Errorf("the broken proposal was not flagged: %v", msgs[len(steps)].First)
	}
	hex := func(v uint64) string { return fmt.Sprintf("0x%016x", v) }
	want := []map[string]string{
		{ // proposal, SMC-D v2 only, loopback-ism
			"smc.clc_msg": "1", "smc.length": "224", "smc.proposal.smc.version": "2",
			"smc.proposal.smcv2.type": "1", "smc.proposal.smc.type": "2",
			"smc.proposal.smcv2_ext_offset":   "0x001c",
			"smc.proposal.smcdv2_ext_offset":  "0x0040",
			"smc.proposal.eid.count":          "1",
			"smc.proposal.ismv2_gid_count":    "2",
			"smc.proposal.smc.version.relnum": "1",
			"smc.proposal.smc.seid":           "0",
			"smc.proposal.eid":                "SMC-GO-TEST",
			"smc.proposal.ism.gid#last":       hex(0x99aabbccddeeff00),
			"smc.proposal.smc.chid#last":      "0xffff",
		},
		{ // accept, first contact
			"smc.clc_msg": "2", "smc.length": "130", "smc.accept.first.contact": "1",
			"smc.accept.smc.type":              "1",
			"smc.accept.sender.server.ism.gid": hex(accept.GID),
			"smc.accept.dmb.token":             hex(accept.DMBToken),
			"smc.accept.dmbe.conn.index":       "0",
			"smc.accept.dmbe.buffer.size":      "2",
			"smc.accept.server.linkid":         "0x00000101",
			"smc.accept.smc.chid":              "0xffff",
			"smc.accept.eid":                   "SMC-GO-TEST",
			"smc.accept.os.type":               "2",
			"smc.accept.smc.version.relnum":    "1",
			"smc.accept.peer.host.name":        "wireshark-test",
		},
		{ // confirm
			"smc.clc_msg": "3", "smc.length": "78", "smc.confirm.first.contact": "0",
			"smc.confirm.smc.type":              "1",
			"smc.confirm.sender.client.ism.gid": hex(confirm.GID),
			"smc.confirm.dmb.token":             hex(confirm.DMBToken),
			"smc.confirm.client.linkid":         "0x00000101",
			"smc.confirm.dmbe.buffer.size":      "6",
			"smc.confirm.smc.chid":              "0xffff",
			"smc.confirm.eid":                   "SMC-GO-TEST",
		},
		{ // proposal offering v1 and v2, both types: the v2 extension is decoded
			"smc.clc_msg": "1", "smc.length": strconv.Itoa(mixed.Length()),
			"smc.proposal.smcv2.type": "3", "smc.proposal.smc.type": "3",
			"smc.proposal.sender.client.peer.id":                            "0x8c35020000000001",
			"smc.proposal.smcv1_subnet_ext_offset":                          "0x0028",
			"smc.proposal.smcv2_ext_offset":                                 "0x0024",
			"smc.proposal.smcdv2_ext_offset":                                "0x0060",
			"smc.outgoing.interface.subnet.mask":                            "192.168.1.0",
			"smc.proposal.eid.count":                                        "2",
			"smc.proposal.ismv2_gid_count":                                  "1",
			"smc.proposal.smc.version.relnum":                               "1",
			"smc.proposal.smc.seid":                                         "1",
			"smc.proposal.rocev2.gid.ipv4":                                  "192.168.1.5",
			"smc.proposal.eid":                                              "SMC-GO-TEST",
			"smc.proposal.system.eid":                                       "IBM-SYSEID",
			"smc.proposal.ism.gid#last":                                     hex(0x0a0b0c0d0e0f1011),
			"smc.proposal.smc.chid#last":                                    "0x0124",
			"smc.outgoing.interface.subnet.mask.number.of.significant.bits": "24",
		},
		{ // Linux's v1 decline
			"smc.clc_msg": "4", "smc.length": "28", "smc.decline.smc.version": "1",
			"smc.decline.osync": "0", "smc.peer.diag.info": "0x03030000",
		},
		{ // v2 decline, out of sync
			"smc.clc_msg": "4", "smc.length": "44", "smc.decline.smc.version": "2",
			"smc.decline.osync": "1", "smc.peer.diag.info": "0x04000000", "smc.decline.os.type": "2",
		},
	}
	for i, w := range want {
		if len(msgs[i].Problems) > 0 {
			t.Errorf("message %d: %v", i, msgs[i].Problems)
		}
		for name, v := range w {
			got, ok := msgs[i].First[name]
			if n, last := strings.CutSuffix(name, "#last"); last {
				got, ok = msgs[i].Last[n]
			}
			if !ok {
				t.Errorf("message %d: no field %s; have %v", i, name, msgs[i].First)
				continue
			}
			if strings.TrimSpace(got) != v {
				t.Errorf("message %d: %s = %q, want %q", i, name, got, v)
			}
		}
	}
}
