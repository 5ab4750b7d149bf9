package signal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// MarksMapID returns the kernel's ID of the socket-storage map the Signaller marks
// sockets in, for [TCPSockets] in another process (smc ss); 0 if it cannot be read.
func (s *Signaller) MarksMapID() uint32 {
	fd, err := dupCloexec(s.marks)
	if err != nil {
		return 0
	}
	m, err := ebpf.NewMapFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return 0
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return uint32(id)
}

// Linux include/uapi/linux/inet_diag.h and sock_diag.h.
const (
	inetDiagInfo           = 2  // INET_DIAG_INFO: struct tcp_info
	inetDiagSKBPFStorages  = 20 // INET_DIAG_SK_BPF_STORAGES
	inetDiagReqSKBPFStores = 2  // INET_DIAG_REQ_SK_BPF_STORAGES
	nlaNested              = 1 << 15
	tcpInfoBytesAcked      = 120 // offsetof(struct tcp_info, tcpi_bytes_acked)
	tcpInfoBytesReceived   = 128
)

// TCPSockets dumps the TCP sockets (IPv4 and IPv6, every state) of the calling
// thread's network namespace. With markMaps (IDs as [Signaller.MarksMapID] reports
// them), it also asks for each socket's word in those socket-storage maps, which needs
// CAP_BPF and CAP_SYS_ADMIN (to open a map by ID); without them the sockets come
// without their marks and marksErr says why.
func TCPSockets(markMaps []uint32) (socks []Socket, marksErr error, err error) {
	var fds []int
	for _, id := range markMaps {
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			marksErr = fmt.Errorf("smc: signal: opening map %d: %w", id, err)
			continue
		}
		defer m.Close()
		fds = append(fds, m.FD())
	}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		s, err := dumpTCP(family, fds)
		if err != nil && len(fds) > 0 && errors.Is(err, unix.EPERM) {
			marksErr = fmt.Errorf("smc: signal: reading socket storage through sock_diag: %w", err)
			fds = nil
			s, err = dumpTCP(family, nil)
		}
		if err != nil {
			return nil, marksErr, fmt.Errorf("smc: signal: sock_diag: %w", err)
		}
		socks = append(socks, s...)
	}
	return socks, marksErr, nil
}

// dumpTCP dumps the TCP sockets of one family, with the words of the maps fds.
func dumpTCP(family uint8, fds []int) ([]Socket, error) {
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	defer unix.Close(nl)
	ne := binary.NativeEndian
	req := make([]byte, nlmsgHdrLen+inetDiagReqLen)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	r := req[nlmsgHdrLen:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	r[2] = 1 << (inetDiagInfo - 1)  // idiag_ext
	ne.PutUint32(r[4:], ^uint32(0)) // all states
	if len(fds) > 0 {
		nested := make([]byte, 4, 4+8*len(fds))
		for _, fd := range fds {
			nested = ne.AppendUint16(nested, 8)
			nested = ne.AppendUint16(nested, unix.SK_DIAG_BPF_STORAGE_REQ_MAP_FD)
			nested = ne.AppendUint32(nested, uint32(fd))
		}
		ne.PutUint16(nested[0:], uint16(len(nested)))
		ne.PutUint16(nested[2:], inetDiagReqSKBPFStores|nlaNested)
		req = append(req, nested...)
	}
	ne.PutUint32(req[0:], uint32(len(req)))
	if err := unix.Sendto(nl, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []Socket
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(nl, buf, 0)
		if err != nil {
			return nil, err
		}
		socks, done, err := parseDiagDump(buf[:n])
		out = append(out, socks...)
		if err != nil || done {
			return out, err
		}
	}
}

// parseDiagDump parses one datagram of a sock_diag dump; done reports NLMSG_DONE.
func parseDiagDump(b []byte) (socks []Socket, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		msgLen, typ := int(ne.Uint32(b)), ne.Uint16(b[4:])
		if msgLen < nlmsgHdrLen || msgLen > len(b) {
			return socks, false, errors.New("bad message length")
		}
		m := b[nlmsgHdrLen:msgLen]
		switch typ {
		case unix.NLMSG_DONE:
			return socks, true, nil
		case unix.NLMSG_ERROR:
			if len(m) >= 4 {
				if errno := int32(ne.Uint32(m)); errno < 0 {
					return socks, true, unix.Errno(-errno)
				}
			}
			return socks, true, errors.New("error reply")
		case unix.SOCK_DIAG_BY_FAMILY:
			if s, ok := parseDiagMsg(m); ok {
				socks = append(socks, s)
			}
		}
		b = b[min((msgLen+3)&^3, len(b)):]
	}
	return socks, false, nil
}

// parseDiagMsg parses an inet_diag_msg and its attributes.
func parseDiagMsg(m []byte) (Socket, bool) {
	ne := binary.NativeEndian
	if len(m) < inetDiagMsgLen {
		return Socket{}, false
	}
	var s Socket
	s.State = m[1]
	src, dst := [16]byte(m[8:24]), [16]byte(m[24:40])
	la, ra := netip.AddrFrom16(src), netip.AddrFrom16(dst)
	if m[0] == unix.AF_INET {
		la, ra = netip.AddrFrom4([4]byte(src[:4])), netip.AddrFrom4([4]byte(dst[:4]))
	}
	s.Local = netip.AddrPortFrom(la, binary.BigEndian.Uint16(m[4:]))
	s.Remote = netip.AddrPortFrom(ra, binary.BigEndian.Uint16(m[6:]))
	s.Cookie = uint64(ne.Uint32(m[44:])) | uint64(ne.Uint32(m[48:]))<<32
	s.RecvQ, s.SendQ = ne.Uint32(m[56:]), ne.Uint32(m[60:])
	s.UID, s.Inode = ne.Uint32(m[64:]), uint64(ne.Uint32(m[68:]))
	for a := range attrs(m[inetDiagMsgLen:]) {
		switch a.typ {
		case inetDiagInfo:
			if len(a.data) >= tcpInfoBytesReceived+8 {
				s.BytesAcked = ne.Uint64(a.data[tcpInfoBytesAcked:])
				s.BytesReceived = ne.Uint64(a.data[tcpInfoBytesReceived:])
			}
		case inetDiagSKBPFStorages:
			for st := range attrs(a.data) {
				if st.typ != unix.SK_DIAG_BPF_STORAGE {
					continue
				}
				for v := range attrs(st.data) {
					if v.typ == unix.SK_DIAG_BPF_STORAGE_MAP_VALUE && len(v.data) >= 4 {
						s.Mark, s.HasMark = decode(ne.Uint32(v.data)), true
					}
				}
			}
		}
	}
	return s, true
}

type attr struct {
	typ  uint16
	data []byte
}

// attrs iterates over netlink attributes, stopping at the first malformed one.
func attrs(b []byte) func(yield func(attr) bool) {
	return func(yield func(attr) bool) {
		ne := binary.NativeEndian
		for len(b) >= 4 {
			n, typ := int(ne.Uint16(b)), ne.Uint16(b[2:])&0x3fff
			if n < 4 || n > len(b) {
				return
			}
			if !yield(attr{typ, b[4:n]}) {
				return
			}
			b = b[min((n+3)&^3, len(b)):]
		}
	}
}
