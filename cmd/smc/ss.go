package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smc-go/smc"
	"github.com/smc-go/smc/internal/registry"
	"github.com/smc-go/smc/internal/signal"
)

func init() {
	register("ss", "list the connections of processes using smc, with mode, reason and counters", runSS)
}

const ssUsage = `usage: smc ss [-a | -l] [--state=STATES] [--port=PORT] [--smc-only | --fallback-only] [--pid=PID] [-j]

Lists the connections of the processes on this host that use smc, as ss lists
sockets: addresses, process, mode (SMCD, TCP, or INIT while the SMC handshake
runs), the reason a connection is in TCP mode and the diagnosis the peer sent, the
side, ring sizes, bytes each way, bytes queued each way, link and age.

Root sees every process; a user sees its own. A connection that fell back because
its peer never announced SMC is a plain TCP socket that its process no longer
tracks: smc ss finds a server's among the sockets of a listener that offers SMC,
and, as root, a client's by the mark the signalling program left on its socket.

Bytes of an SMC-D connection are read from its rings' cursors in the process's
memory (root, or the same user); bytes of a TCP-mode connection are TCP's
(acknowledged by the peer, received), queues TCP's send and receive queues.

STATES is a comma-separated list of ss state names: established, syn-sent,
syn-recv, fin-wait-1, fin-wait-2, time-wait, closed, close-wait, last-ack,
listening, closing, or connected (all but listening and closed), all.

flags:
`

// runSS is the entry point of "smc ss".
func runSS(args []string) error {
	fs := flag.NewFlagSet("ss", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), ssUsage)
		fs.PrintDefaults()
	}
	all := fs.Bool("a", false, "show listeners too")
	listening := fs.Bool("l", false, "show only listeners (those that offer SMC)")
	states := fs.String("state", "", "show only these TCP states (default: connected)")
	port := fs.Int("port", 0, "show only connections with this local or remote port")
	smcOnly := fs.Bool("smc-only", false, "show only connections in SMC-D mode")
	fallbackOnly := fs.Bool("fallback-only", false, "show only connections in TCP mode")
	pid := fs.Int("pid", 0, "show only this process's connections")
	asJSON := fs.Bool("j", false, "print a JSON array of connections")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "smc: ss: unexpected argument %q", fs.Arg(0))
	}
	if *smcOnly && *fallbackOnly {
		return usageErrorf(fs, "smc: ss: --smc-only and --fallback-only exclude each other")
	}
	f := ssFilter{port: *port, pid: *pid, smcOnly: *smcOnly, fallbackOnly: *fallbackOnly}
	var err error
	switch {
	case *states != "":
		f.states, err = parseStates(*states)
		if err != nil {
			return usageErrorf(fs, "smc: ss: --state: %w", err)
		}
	case *listening:
		f.states = stateSet(tcpListen)
	case *all:
		f.states = allStates
	default:
		f.states = connectedStates
	}
	procs, errs := registry.Scan()
	defer func() {
		for _, p := range procs {
			p.Close()
		}
	}()
	socks, notes := sockets(procs)
	for _, e := range errs {
		notes = append(notes, e.Error())
	}
	rows := collect(procs, socks, time.Now())
	rows = slices.DeleteFunc(rows, func(r ssRow) bool { return !f.keep(r) })
	for _, n := range notes {
		fmt.Fprintln(stderr, "smc ss: note:", n)
	}
	if *asJSON {
		if rows == nil {
			rows = []ssRow{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	printSS(stdout, rows, time.Now())
	return nil
}

// An ssRow is one line of smc ss: a connection (or listener) of a process, with
// what the process's registry and the kernel say of it.
type ssRow struct {
	PID      int
	Process  string
	TCPState string // ss's name of the TCP state, or UNKNOWN
	Local    netip.AddrPort
	Remote   netip.AddrPort
	Listener bool `json:",omitempty"`
	smc.ConnInfo
	// CountsKnown reports whether the byte counts were read; they are zero otherwise.
	CountsKnown bool
	// Source says where the row comes from: "registry" (the process's record) or
	// "socket" (a plain TCP connection of a listener that offers SMC, or a
	// client's socket marked by the signalling program).
	Source string

	state uint8 // TCP state, 0 if unknown
}

// collect builds the rows: every record of every process, with its socket's state
// and TCP counters where the socket was found, then the sockets of those processes
// that are plain TCP connections of this package (fallbacks to plain peers), which
// no record describes.
func collect(procs []*registry.Process, socks map[uint64][]signal.Socket, now time.Time) []ssRow {
	var rows []ssRow
	for _, p := range procs {
		byTuple := map[[2]netip.AddrPort]*signal.Socket{}
		for i := range socks[p.NetNS] {
			s := &socks[p.NetNS][i]
			if p.Sockets[s.Inode] {
				byTuple[[2]netip.AddrPort{norm(s.Local), norm(s.Remote)}] = s
			}
		}
		claimed := map[uint64]bool{}
		var listeners []netip.AddrPort
		for _, e := range p.Entries {
			r := ssRow{PID: p.PID, Process: p.Name, Local: e.Local, Remote: e.Remote, Source: "registry", TCPState: "UNKNOWN"}
			r.Client = !e.Server
			r.Start = time.Unix(0, e.Start)
			r.State = smc.ConnectionState{
				Offered: e.Offered, PeerAdvertised: e.PeerAdvertised, HandshakeComplete: e.Mode != registry.ModeInit,
				Fallback: smc.Reason(e.Fallback), PeerDiagnosis: smc.Reason(e.PeerDiagnosis),
			}
			if e.Mode == registry.ModeSMCD {
				r.State.Mode = smc.ModeSMCD
			}
			r.ReceiveRing, r.SendRing = int(e.RxRing), int(e.TxRing)
			r.Link = smc.LinkInfo{ID: e.LinkID, Slot: e.Slot, PeerSlot: e.PeerSlot}
			if e.Kind == registry.Listener {
				r.Listener, r.Remote = true, netip.AddrPortFrom(unspecified(e.Local.Addr()), 0)
				listeners = append(listeners, e.Local)
			}
			s := byTuple[[2]netip.AddrPort{norm(r.Local), norm(r.Remote)}]
			if s != nil {
				claimed[s.Inode] = true
				r.state, r.TCPState = s.State, stateName(s.State)
			}
			switch {
			case e.Mode == registry.ModeSMCD:
				if n, err := p.Counts(e); err == nil {
					r.BytesSent, r.BytesReceived, r.SendQueued, r.ReceiveQueued = n.Sent, n.Received, n.SendQueued, n.ReceiveQueued
					r.CountsKnown = true
				} else if err == registry.ErrGone {
					continue
				}
			case s != nil && !r.Listener:
				r.setTCPCounts(s)
			}
			rows = append(rows, r)
		}
		for _, s := range socks[p.NetNS] {
			if !p.Sockets[s.Inode] || claimed[s.Inode] || s.State == tcpListen {
				continue
			}
			r := ssRow{PID: p.PID, Process: p.Name, Local: s.Local, Remote: s.Remote, Source: "socket",
				state: s.State, TCPState: stateName(s.State)}
			r.State = smc.ConnectionState{Mode: smc.ModeTCP, HandshakeComplete: true}
			switch {
			case s.HasMark && s.Mark.Marked:
				// A client of this package whose dial offered SMC and fell back
				// before any CLC message: State's reasons for a *net.TCPConn.
				r.Client = true
				r.State.Offered, r.State.PeerAdvertised = s.Mark.Sent, s.Mark.Received
				switch {
				case s.Mark.Conflict:
					r.State.Fallback = smc.ReasonSignallingConflict
				case !s.Mark.Sent:
					r.State.Fallback = smc.ReasonNotOffered
				case !s.Mark.Received:
					r.State.Fallback = smc.ReasonPeerNoSMC
				default:
					continue // negotiated: a Conn closing, whose record just went
				}
			case accepts(listeners, s.Local):
				// A connection a listener that offers SMC accepted from a client
				// that did not announce it: it was returned as a *net.TCPConn.
				r.State.Offered = false
				r.State.Fallback = smc.ReasonPeerNoSMC
			default:
				continue // not a connection of this package
			}
			r.setTCPCounts(&s)
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b ssRow) int {
		return cmp.Or(cmp.Compare(a.PID, b.PID), a.Local.Compare(b.Local), a.Remote.Compare(b.Remote))
	})
	return rows
}

// setTCPCounts fills the byte counts from the socket's TCP counters.
func (r *ssRow) setTCPCounts(s *signal.Socket) {
	r.BytesSent, r.BytesReceived = max(s.BytesAcked, 1)-1, s.BytesReceived // tcp_info counts the SYN
	r.SendQueued, r.ReceiveQueued = uint64(s.SendQ), uint64(s.RecvQ)
	r.CountsKnown = true
}

// accepts reports whether a connection with local address a belongs to one of the
// listeners (bound to a's address or to the unspecified address, on a's port).
func accepts(listeners []netip.AddrPort, a netip.AddrPort) bool {
	for _, l := range listeners {
		if l.Port() == a.Port() && (norm(l).Addr() == norm(a).Addr() || l.Addr().IsUnspecified()) {
			return true
		}
	}
	return false
}

func norm(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

func unspecified(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// TCP states (Linux tcp_states.h) and ss's names for them.
const (
	tcpEstablished = 1
	tcpClose       = 7
	tcpListen      = 10
)

var stateNames = [...]string{1: "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING"}

var stateFilterNames = map[string]uint8{
	"established": 1, "syn-sent": 2, "syn-recv": 3, "fin-wait-1": 4, "fin-wait-2": 5, "time-wait": 6,
	"closed": 7, "close-wait": 8, "last-ack": 9, "listening": 10, "closing": 11,
}

func stateName(s uint8) string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// A states is a set of TCP states; bit 0 stands for "unknown".
type states uint16

func stateSet(s ...uint8) states {
	var set states
	for _, x := range s {
		set |= 1 << x
	}
	return set
}

var (
	allStates       states = 0xffff
	connectedStates        = allStates &^ stateSet(tcpListen, tcpClose)
)

func parseStates(s string) (states, error) {
	var set states
	for _, name := range strings.Split(s, ",") {
		switch name = strings.TrimSpace(name); name {
		case "all":
			set |= allStates
		case "connected":
			set |= connectedStates
		default:
			st, ok := stateFilterNames[name]
			if !ok {
				return 0, fmt.Errorf("unknown state %q", name)
			}
			set |= stateSet(st)
		}
	}
	return set, nil
}

// ssFilter is what the flags select.
type ssFilter struct {
	states                states
	port, pid             int
	smcOnly, fallbackOnly bool
}

func (f ssFilter) keep(r ssRow) bool {
	st := r.state
	if r.Listener {
		st = tcpListen
	}
	switch {
	case f.states&(1<<st) == 0:
		return false
	case f.port != 0 && int(r.Local.Port()) != f.port && int(r.Remote.Port()) != f.port:
		return false
	case f.pid != 0 && r.PID != f.pid:
		return false
	case f.smcOnly && (r.Listener || r.State.Mode != smc.ModeSMCD):
		return false
	case f.fallbackOnly && (r.Listener || r.State.Mode != smc.ModeTCP || !r.State.HandshakeComplete):
		return false
	}
	return true
}

// printSS prints the rows as a table.
func printSS(w io.Writer, rows []ssRow, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "State\tSide\tLocal Address:Port\tPeer Address:Port\tProcess\tMode\tReason\tPeer diag\tRings rx/tx\tSent\tRecv\tQueued tx/rx\tLink\tAge")
	for _, r := range rows {
		side, mode := "server", r.State.Mode.String()
		if r.Client {
			side = "client"
		}
		if r.Listener {
			side, mode = "listen", "-"
		} else if !r.State.HandshakeComplete {
			mode = "INIT"
		}
		reason, diag := "-", "-"
		if r.State.Fallback != smc.ReasonNone {
			reason = r.State.Fallback.String()
		}
		if r.State.PeerDiagnosis != smc.ReasonNone {
			diag = r.State.PeerDiagnosis.String()
		}
		rings, sent, recv, queued, link, age := "-", "-", "-", "-", "-", "-"
		if r.ReceiveRing != 0 || r.SendRing != 0 {
			rings = size(uint64(r.ReceiveRing)) + "/" + size(uint64(r.SendRing))
		}
		if r.CountsKnown {
			sent, recv = strconv.FormatUint(r.BytesSent, 10), strconv.FormatUint(r.BytesReceived, 10)
			queued = strconv.FormatUint(r.SendQueued, 10) + "/" + strconv.FormatUint(r.ReceiveQueued, 10)
		}
		if r.Link.ID != 0 {
			link = fmt.Sprintf("%d:%d", r.Link.ID, r.Link.Slot)
		}
		if !r.Start.IsZero() && r.Source == "registry" {
			age = now.Sub(r.Start).Truncate(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.TCPState, side, r.Local, r.Remote, r.PID, r.Process, mode, reason, diag, rings, sent, recv, queued, link, age)
	}
	tw.Flush()
}

// size prints a power-of-two size briefly: 4M, 64K, 512.
func size(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatUint(n>>30, 10) + "G"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatUint(n>>20, 10) + "M"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatUint(n>>10, 10) + "K"
	}
	return strconv.FormatUint(n, 10)
}

// markMaps returns the IDs of the processes' signalling maps, each once.
func markMaps(procs []*registry.Process) []uint32 {
	var ids []uint32
	for _, p := range procs {
		if p.MarksMap != 0 && !slices.Contains(ids, p.MarksMap) {
			ids = append(ids, p.MarksMap)
		}
	}
	return ids
}

// isRoot reports whether this process runs as root.
func isRoot() bool { return os.Geteuid() == 0 }
