package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/registry"
	"github.com/smc-go/smc/internal/signal"
)

// TestCollect: smc ss's rows from a process's records and its sockets: a record
// takes its socket's state and TCP counters; a plain socket of the process is
// listed when a listener that offers SMC accepted it (a plain client) or the
// signalling marked it (a client whose peer never announced SMC), and not
// otherwise; another process's socket is not the process's.
func TestCollect(t *testing.T) {
	ap := netip.MustParseAddrPort
	p := &registry.Process{PID: 42, Name: "svc", NetNS: 7, Sockets: map[uint64]bool{1: true, 2: true, 3: true, 4: true, 5: true}}
	p.Entries = []registry.Entry{
		{Record: registry.Record{Kind: registry.Listener, Server: true, Local: ap("0.0.0.0:80")}},
		{Record: registry.Record{Kind: registry.Conn, Server: true, Mode: registry.ModeTCP, Local: ap("127.0.0.1:80"),
			Remote: ap("127.0.0.1:5000"), Fallback: uint32(smc.ReasonMaxDMB), Start: 1}},
	}
	socks := map[uint64][]signal.Socket{7: {
		{Inode: 1, State: tcpListen, Local: ap("0.0.0.0:80")},
		{Inode: 2, State: tcpEstablished, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5000"), BytesAcked: 101, BytesReceived: 200, SendQ: 3},
		{Inode: 3, State: tcpEstablished, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5001")},
		{Inode: 4, State: tcpEstablished, Local: ap("127.0.0.1:6000"), Remote: ap("10.0.0.1:443"),
			HasMark: true, Mark: signal.Result{Marked: true, Sent: true}},
		{Inode: 5, State: tcpEstablished, Local: ap("127.0.0.1:6001"), Remote: ap("10.0.0.1:443")},
		{Inode: 9, State: tcpEstablished, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5002")},
	}}
	rows := collect([]*registry.Process{p}, socks, time.Unix(10, 0))
	type want struct {
		remote   string
		listener bool
		client   bool
		reason   smc.Reason
		source   string
	}
	wants := []want{
		{"0.0.0.0:0", true, false, smc.ReasonNone, "registry"},
		{"127.0.0.1:5000", false, false, smc.ReasonMaxDMB, "registry"},
		{"127.0.0.1:5001", false, false, smc.ReasonPeerNoSMC, "socket"},
		{"10.0.0.1:443", false, true, smc.ReasonPeerNoSMC, "socket"},
	}
	if len(rows) != len(wants) {
		t.Fatalf("%d rows, want %d:\n%+v", len(rows), len(wants), rows)
	}
	for _, w := range wants {
		found := false
		for _, r := range rows {
			if r.Remote.String() == w.remote && r.Listener == w.listener {
				found = true
				if r.Client != w.client || r.State.Fallback != w.reason || r.Source != w.source || r.PID != 42 {
					t.Errorf("row to %s: %+v, want %+v", w.remote, r, w)
				}
			}
		}
		if !found {
			t.Errorf("no row to %s", w.remote)
		}
	}
	for _, r := range rows {
		if r.Remote == ap("127.0.0.1:5000") && (r.TCPState != "ESTAB" || r.BytesSent != 100 || r.BytesReceived != 200 || r.SendQueued != 3) {
			t.Errorf("record's socket state and counters: %+v", r)
		}
	}
	f := ssFilter{states: connectedStates, fallbackOnly: true}
	if f.keep(rows[0]) {
		t.Error("the default filter keeps a listener")
	}
	if set, err := parseStates("established,listening"); err != nil || set != stateSet(tcpEstablished, tcpListen) {
		t.Errorf("parseStates: %b, %v", set, err)
	}
}
