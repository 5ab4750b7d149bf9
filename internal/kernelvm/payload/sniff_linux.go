package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc/internal/kernelvm"
	"github.com/smc-go/smc/internal/wire"
)

// streamPrefix is how many bytes of each direction the sniffer keeps.
const streamPrefix = 4096

// smcOption is the SMC experimental TCP option (Linux include/net/tcp.h).
var smcOption = []byte{254, 6, 0xE2, 0xD4, 0xC3, 0xD9}

// A sniffer captures the TCP segments to and from one port on lo with an AF_PACKET
// socket and keeps the SYN options and the first streamPrefix bytes of each
// direction.
type sniffer struct {
	fd   int
	port uint16
	done chan struct{}

	mu   sync.Mutex // guards segs
	segs []segment
	stop bool
}

type segment struct {
	toServer bool
	flags    uint8
	seq      uint32
	opts     []byte
	payload  []byte
}

func startSniffer(port uint16) (*sniffer, error) {
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("smc: payload: socket(AF_PACKET): %w", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index})
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("smc: payload: binding AF_PACKET to lo: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	tv := unix.Timeval{Usec: 50000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	s := &sniffer{fd: fd, port: port, done: make(chan struct{})}
	go s.loop()
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *sniffer) loop() {
	defer close(s.done)
	buf := make([]byte, 1<<17)
	for {
		s.mu.Lock()
		stop := s.stop
		s.mu.Unlock()
		if stop {
			return
		}
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			continue // timeout or EINTR
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // lo shows every frame twice: keep the incoming copy
		}
		if seg, ok := s.parse(buf[:n]); ok {
			s.mu.Lock()
			s.segs = append(s.segs, seg)
			s.mu.Unlock()
		}
	}
}

// parse decodes an Ethernet frame carrying IPv4 TCP to or from the port.
func (s *sniffer) parse(b []byte) (segment, bool) {
	var seg segment
	if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return seg, false
	}
	ip := b[14:]
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_TCP || ihl < 20 || total < ihl+20 || total > len(ip) {
		return seg, false
	}
	tcp := ip[ihl:total]
	sport, dport := binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:])
	if sport != s.port && dport != s.port {
		return seg, false
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return seg, false
	}
	seg.toServer = dport == s.port
	seg.seq = binary.BigEndian.Uint32(tcp[4:])
	seg.flags = tcp[13]
	seg.opts = bytes.Clone(tcp[20:off])
	p := tcp[off:]
	seg.payload = bytes.Clone(p[:min(len(p), streamPrefix)])
	return seg, true
}

// Stop ends the capture and describes what it saw.
func (s *sniffer) Stop() *kernelvm.Wire {
	s.mu.Lock()
	s.stop = true
	s.mu.Unlock()
	<-s.done
	unix.Close(s.fd)
	return describe(s.segs)
}

const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// describe rebuilds the beginning of each direction's byte stream from the segments
// and decodes the CLC messages that open it.
func describe(segs []segment) *kernelvm.Wire {
	w := &kernelvm.Wire{}
	var isn [2]uint32 // [client→server, server→client]
	var haveISN [2]bool
	for _, g := range segs {
		if g.flags&tcpSYN == 0 {
			continue
		}
		d := dir(g.toServer)
		isn[d], haveISN[d] = g.seq, true
		if g.flags&tcpACK == 0 {
			w.SYNOption = w.SYNOption || hasOption(g.opts, smcOption)
		} else {
			w.SYNACKOption = w.SYNACKOption || hasOption(g.opts, smcOption)
		}
	}
	var errs []error
	for d := range 2 {
		if !haveISN[d] {
			errs = append(errs, fmt.Errorf("no SYN captured in direction %d", d))
			continue
		}
		stream := reassemble(segs, d, isn[d])
		clcs, rest := decodeCLC(stream)
		data := hex.EncodeToString(rest[:min(len(rest), 32)])
		if d == 0 {
			w.ClientCLC, w.ClientData = clcs, data
		} else {
			w.ServerCLC, w.ServerData = clcs, data
		}
	}
	if err := errors.Join(errs...); err != nil {
		w.Err = err.Error()
	}
	return w
}

func dir(toServer bool) int {
	if toServer {
		return 0
	}
	return 1
}

// hasOption reports whether the TCP options opts contain want as one option.
func hasOption(opts, want []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return false
		case 1:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return false
		}
		if bytes.Equal(opts[i:i+int(opts[i+1])], want) {
			return true
		}
		i += int(opts[i+1])
	}
	return false
}

// reassemble returns the contiguous beginning (at most streamPrefix bytes) of one
// direction's stream, whose SYN had sequence number isn.
func reassemble(segs []segment, d int, isn uint32) []byte {
	type piece struct {
		off  int
		data []byte
	}
	var ps []piece
	for _, g := range segs {
		if dir(g.toServer) != d || len(g.payload) == 0 {
			continue
		}
		off := int(int32(g.seq - isn - 1))
		if off < 0 || off >= streamPrefix {
			continue
		}
		ps = append(ps, piece{off, g.payload})
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].off < ps[j].off })
	var out []byte
	for _, p := range ps {
		if p.off > len(out) {
			break // a hole: the capture missed a segment
		}
		if end := p.off + len(p.data); end > len(out) {
			out = append(out, p.data[len(out)-p.off:]...)
		}
	}
	return out[:min(len(out), streamPrefix)]
}

// decodeCLC splits the CLC messages off the front of a stream and returns them and
// the bytes that follow.
func decodeCLC(stream []byte) ([]kernelvm.CLC, []byte) {
	var out []kernelvm.CLC
	r := bytes.NewReader(stream)
	for {
		raw, err := wire.ReadMessage(r, nil)
		if err != nil {
			// Not a CLC message (or a truncated capture): everything from here on is
			// data.
			return out, stream[len(stream)-r.Len()-len(raw):]
		}
		h, _ := wire.ParseHeader(raw)
		c := kernelvm.CLC{Type: h.Type.String(), Version: h.Version, Length: len(raw), Hex: hex.EncodeToString(raw)}
		if h.Type == wire.TypeProposal {
			c.TypeV1, c.TypeV2 = wire.SMCType(h.TypeV1).String(), wire.SMCType(h.TypeV2).String()
		}
		m, err := wire.Parse(raw)
		if err != nil {
			c.ParseErr = err.Error()
		}
		if d, ok := m.(*wire.Decline); ok {
			c.Diagnosis, c.OSType = d.Diagnosis.String(), d.OSType
		}
		out = append(out, c)
	}
}

// settle gives the last segments of a connection time to pass the capture.
func settle() { time.Sleep(200 * time.Millisecond) }
