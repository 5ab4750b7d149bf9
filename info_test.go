package smc

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/smc-go/smc/internal/shm"
)

// TestConnInfo: Info reports each side's role, start and rings, and its byte counts
// follow the data: written and not yet read, then read; a connection that fell back
// after a Decline counts its bytes as TCP does.
func TestConnInfo(t *testing.T) {
	requireSignalling(t)
	t.Run("SMC-D", func(t *testing.T) {
		before := time.Now()
		client, server := pair(t, listenSMC, dialSMC)
		defer client.Close()
		defer server.Close()
		c, s := client.(*Conn), server.(*Conn)
		if _, err := c.Write(make([]byte, 3000)); err != nil {
			t.Fatal(err)
		}
		ci, si := c.Info(), s.Info()
		if ci.State.Mode != ModeSMCD || !ci.Client || si.Client || ci.Start.Before(before.Add(-time.Second)) ||
			ci.ReceiveRing != DefaultBufferSize || ci.SendRing != DefaultBufferSize || si.ReceiveRing != DefaultBufferSize {
			t.Fatalf("client %+v, server %+v", ci, si)
		}
		if ci.Link.ID == 0 || ci.Link.ID != si.Link.ID ||
			ci.Link.Slot != si.Link.PeerSlot || si.Link.Slot != ci.Link.PeerSlot {
			t.Errorf("links: client %+v, server %+v; want a link, each side's slot the other's peer slot", ci.Link, si.Link)
		}
		if ci.BytesSent != 3000 || ci.SendQueued != 3000 || si.BytesReceived != 3000 || si.ReceiveQueued != 3000 {
			t.Errorf("after a write: client sent %d queued %d, server received %d queued %d; want 3000 each",
				ci.BytesSent, ci.SendQueued, si.BytesReceived, si.ReceiveQueued)
		}
		if _, err := io.ReadFull(s, make([]byte, 3000)); err != nil {
			t.Fatal(err)
		}
		if ci, si := c.Info(), s.Info(); ci.SendQueued != 0 || si.ReceiveQueued != 0 || si.BytesReceived != 3000 {
			t.Errorf("after the read: client queued %d, server queued %d, received %d", ci.SendQueued, si.ReceiveQueued, si.BytesReceived)
		}
		c.Close()
		if ci := c.Info(); ci.BytesSent != 0 || ci.State.Mode != ModeSMCD {
			t.Errorf("after Close: %+v", ci)
		}
	})
	t.Run("declined", func(t *testing.T) {
		prev := shm.SetMemoryLimit(shm.MemoryInUse()) // the server must decline: MAX_DMB
		client, server := pair(t, listenSMC, dialSMC)
		shm.SetMemoryLimit(prev)
		defer client.Close()
		defer server.Close()
		exchange(t, client, server, strings.Repeat("x", 999)+"\n")
		ci, si := client.(*Conn).Info(), server.(*Conn).Info()
		if ci.State.Fallback != ReasonPeerDecl || ci.State.PeerDiagnosis != ReasonMaxDMB || si.State.Fallback != ReasonMaxDMB {
			t.Fatalf("client %+v, server %+v: want PEERDECL (MAX_DMB) and MAX_DMB", ci.State, si.State)
		}
		// TCP counts the CLC messages too: the Proposal (client) and the Decline
		// (server). What the server has not acknowledged yet is still queued.
		if ci.BytesSent+ci.SendQueued < 1000 || si.BytesReceived < 1000 || ci.ReceiveRing != 0 {
			t.Errorf("client sent %d (queued %d), server received %d, ring %d: want 1000 and more, no ring",
				ci.BytesSent, ci.SendQueued, si.BytesReceived, ci.ReceiveRing)
		}
	})
}

// TestStats: a process's statistics count each connection once, on its side, by
// what it negotiated: a plain peer apart from a negotiation that fell back, a
// Decline on the side that sent it and on the side that received it; the gauges
// go up and back down; JSON shows reasons by name.
func TestStats(t *testing.T) {
	requireSignalling(t)
	s0 := Stats()
	c, s := pair(t, listenSMC, dialSMC) // SMC-D
	mid := Stats()
	if d := mid.Client.SMCD - s0.Client.SMCD; d != 1 || mid.Server.SMCD-s0.Server.SMCD != 1 {
		t.Errorf("SMC-D handshakes counted: client +%d, server +%d; want 1 each", d, mid.Server.SMCD-s0.Server.SMCD)
	}
	// Both ends are in this process: a link has an end in each role.
	if mid.OpenSMCD-s0.OpenSMCD != 2 || mid.Links < 2 || mid.MemoryInUse <= 0 || mid.MemoryLimit <= 0 {
		t.Errorf("gauges with one SMC-D pair open: %+v (before: %+v)", mid, s0)
	}
	c.Close()
	s.Close()
	prev := shm.SetMemoryLimit(shm.MemoryInUse())
	c, s = pair(t, listenSMC, dialSMC) // declined: MAX_DMB
	shm.SetMemoryLimit(prev)
	c.Close()
	s.Close()
	c, s = pair(t, listenSMC, dialNet) // a plain client
	c.Close()
	s.Close()
	c, s = pair(t, listenNet, dialSMC) // a plain server
	c.Close()
	s.Close()
	s1 := Stats()
	delta := func(a, b uint64) uint64 { return a - b }
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"client offered", delta(s1.Client.Offered, s0.Client.Offered), 3},
		{"client peer no SMC", delta(s1.Client.PeerNoSMC, s0.Client.PeerNoSMC), 1},
		{"client negotiated", delta(s1.Client.Negotiated, s0.Client.Negotiated), 2},
		{"server offered", delta(s1.Server.Offered, s0.Server.Offered), 3},
		{"server peer no SMC", delta(s1.Server.PeerNoSMC, s0.Server.PeerNoSMC), 1},
		{"server negotiated", delta(s1.Server.Negotiated, s0.Server.Negotiated), 2},
		{"server local MAX_DMB", delta(s1.Server.LocalDeclines[ReasonMaxDMB], s0.Server.LocalDeclines[ReasonMaxDMB]), 1},
		{"client peer MAX_DMB", delta(s1.Client.PeerDeclines[ReasonMaxDMB], s0.Client.PeerDeclines[ReasonMaxDMB]), 1},
		{"client local MAX_DMB", delta(s1.Client.LocalDeclines[ReasonMaxDMB], s0.Client.LocalDeclines[ReasonMaxDMB]), 0},
		{"client fallback PEERDECL", delta(s1.Client.Fallbacks[ReasonPeerDecl], s0.Client.Fallbacks[ReasonPeerDecl]), 1},
		{"server fallback MAX_DMB", delta(s1.Server.Fallbacks[ReasonMaxDMB], s0.Server.Fallbacks[ReasonMaxDMB]), 1},
		{"client fallback PEERNOSMC", delta(s1.Client.Fallbacks[ReasonPeerNoSMC], s0.Client.Fallbacks[ReasonPeerNoSMC]), 0},
		{"client not sent", delta(s1.Client.NotSent, s0.Client.NotSent), 0},
		{"server fallbacks", delta(sum(s1.Server.Fallbacks), sum(s0.Server.Fallbacks)), 1},
		{"client fallbacks", delta(sum(s1.Client.Fallbacks), sum(s0.Client.Fallbacks)), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: +%d, want +%d", c.name, c.got, c.want)
		}
	}
	if s1.OpenSMCD != s0.OpenSMCD || s1.OpenTCP != s0.OpenTCP || s1.HandshakesInFlight != 0 || s1.Links != s0.Links {
		t.Errorf("gauges after every connection closed: %+v, before: %+v", s1, s0)
	}
	b, err := json.Marshal(s1)
	if err != nil || !strings.Contains(string(b), `"MAX_DMB":`) {
		t.Errorf("JSON %s (%v) names no MAX_DMB", b, err)
	}
}

func sum(m map[Reason]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}
