package testenv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TCP header flags as they appear in [Packet.Flags].
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagACK = 0x10
)

// A Packet is one captured TCP segment.
type Packet struct {
	Src, Dst netip.AddrPort
	Flags    uint8
	Options  []byte // the TCP options, raw
}

// SMCOption is the SMC experimental option as Linux writes it: kind 254, length 6,
// ExID E2 D4 C3 D9 (Linux include/net/tcp.h TCPOPT_SMC_MAGIC).
var SMCOption = []byte{254, 6, 0xE2, 0xD4, 0xC3, 0xD9}

// HasSMC reports whether the segment's options carry [SMCOption].
func (p Packet) HasSMC() bool {
	o := p.Options
	for len(o) > 0 {
		switch o[0] {
		case 0: // end of options
			return false
		case 1: // no-op
			o = o[1:]
			continue
		}
		if len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o) {
			return false
		}
		if bytes.Equal(o[:o[1]], SMCOption) {
			return true
		}
		o = o[o[1]:]
	}
	return false
}

// Is reports whether the segment has exactly the flags among SYN, ACK, FIN and RST.
func (p Packet) Is(flags uint8) bool {
	return p.Flags&(FlagSYN|FlagACK|FlagFIN|FlagRST) == flags
}

func (p Packet) String() string {
	var f []string
	for _, n := range []struct {
		bit  uint8
		name string
	}{{FlagSYN, "S"}, {FlagACK, "."}, {FlagFIN, "F"}, {FlagRST, "R"}} {
		if p.Flags&n.bit != 0 {
			f = append(f, n.name)
		}
	}
	return fmt.Sprintf("%v > %v [%s] smc=%v opts=% x", p.Src, p.Dst, strings.Join(f, ""), p.HasSMC(), p.Options)
}

// A Capture records TCP segments with tcpdump.
type Capture struct {
	tb   testing.TB
	cmd  *exec.Cmd
	file string
	done bool
}

// StartCapture starts tcpdump on the interface iface with the pcap filter and returns
// once it is capturing. It requires root and tcpdump. Processes started from a
// goroutine locked to a thread that entered another network namespace capture there.
// A cleanup stops it if [Capture.Stop] was not called.
func StartCapture(tb testing.TB, iface, filter string) *Capture {
	tb.Helper()
	RequireRoot(tb)
	tcpdump := RequireTool(tb, "tcpdump")
	c := &Capture{tb: tb, file: filepath.Join(tb.TempDir(), "capture.pcap")}
	// -Z root: keep writing the file as root rather than dropping to user tcpdump.
	// --immediate-mode: hand each packet over at once; libpcap otherwise holds them
	// in a ring block for up to a second, and a stopped capture loses them.
	c.cmd = exec.Command(tcpdump, "-i", iface, "-n", "-U", "--immediate-mode", "-s", "200", "-Z", "root", "-w", c.file, filter)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("smc: testenv: starting tcpdump: %v", err)
	}
	tb.Cleanup(func() {
		if !c.done {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				ready <- nil
				for sc.Scan() {
				}
				return
			}
			lines = append(lines, sc.Text())
		}
		ready <- fmt.Errorf("smc: testenv: tcpdump exited: %s", strings.Join(lines, "; "))
	}()
	select {
	case err := <-ready:
		if err != nil {
			tb.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		tb.Fatal("smc: testenv: tcpdump did not start capturing within 10s")
	}
	return c
}

// Stop waits briefly for the last segments, stops tcpdump and returns the TCP
// segments it captured, in order.
func (c *Capture) Stop() []Packet {
	c.tb.Helper()
	time.Sleep(150 * time.Millisecond)
	c.done = true
	c.cmd.Process.Signal(syscall.SIGINT)
	if err := c.cmd.Wait(); err != nil {
		c.tb.Fatalf("smc: testenv: tcpdump: %v", err)
	}
	b, err := os.ReadFile(c.file)
	if err != nil {
		c.tb.Fatal(err)
	}
	pkts, err := ParsePcap(b)
	if err != nil {
		c.tb.Fatal(err)
	}
	return pkts
}

// ParsePcap returns the IPv4 and IPv6 TCP segments of a pcap file whose link type is
// Ethernet, Linux cooked (SLL) or SLL2.
func ParsePcap(b []byte) ([]Packet, error) {
	if len(b) < 24 {
		return nil, errors.New("smc: testenv: pcap file too short")
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, errors.New("smc: testenv: not a pcap file")
	}
	link := bo.Uint32(b[20:])
	var pkts []Packet
	for r := b[24:]; len(r) >= 16; {
		n := int(bo.Uint32(r[8:]))
		if n > len(r)-16 {
			return pkts, errors.New("smc: testenv: truncated pcap record")
		}
		frame := r[16 : 16+n]
		r = r[16+n:]
		var proto uint16
		switch link {
		case 1: // Ethernet
			if len(frame) < 14 {
				continue
			}
			proto, frame = binary.BigEndian.Uint16(frame[12:]), frame[14:]
		case 113: // Linux SLL
			if len(frame) < 16 {
				continue
			}
			proto, frame = binary.BigEndian.Uint16(frame[14:]), frame[16:]
		case 276: // Linux SLL2
			if len(frame) < 20 {
				continue
			}
			proto, frame = binary.BigEndian.Uint16(frame[0:]), frame[20:]
		default:
			return nil, fmt.Errorf("smc: testenv: pcap link type %d not supported", link)
		}
		if p, ok := parseIP(proto, frame); ok {
			pkts = append(pkts, p)
		}
	}
	return pkts, nil
}

func parseIP(proto uint16, b []byte) (Packet, bool) {
	var src, dst netip.Addr
	var tcp []byte
	switch proto {
	case 0x0800:
		if len(b) < 20 || b[9] != 6 {
			return Packet{}, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return Packet{}, false
		}
		src, dst, tcp = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[ihl:]
	case 0x86dd:
		if len(b) < 40 || b[6] != 6 { // no extension headers in loopback tests
			return Packet{}, false
		}
		src, dst, tcp = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), b[40:]
	default:
		return Packet{}, false
	}
	if len(tcp) < 20 {
		return Packet{}, false
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return Packet{}, false
	}
	return Packet{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:])),
		Flags:   tcp[13],
		Options: bytes.Clone(tcp[20:off]),
	}, true
}
