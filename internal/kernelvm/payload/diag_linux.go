package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/smc-go/smc/internal/kernelvm"
	"github.com/smc-go/smc/internal/wire"
)

// afSMC is the kernel's SMC address family (Linux include/linux/socket.h: AF_SMC).
const afSMC = 43

// smc_diag layouts, Linux 6.1 include/uapi/linux/smc_diag.h.
const (
	smcDiagReqLen = 4 + 48 // struct smc_diag_req: family, pad[2], diag_ext, inet_diag_sockid
	smcDiagMsgLen = 64     // struct smc_diag_msg: family, state, mode, shutdown, sockid, uid, inode

	smcDiagFallback = 5 // SMC_DIAG_FALLBACK: struct smc_diag_fallback { u32 reason, peer_diagnosis }
)

var smcStates = map[uint8]string{
	1: "ACTIVE", 2: "INIT", 7: "CLOSED", 10: "LISTEN",
	20: "PEERCLOSEWAIT1", 21: "PEERCLOSEWAIT2", 22: "APPCLOSEWAIT1",
	23: "APPCLOSEWAIT2", 24: "APPFINCLOSEWAIT", 25: "PEERFINCLOSEWAIT",
	26: "PEERABORTWAIT", 27: "PROCESSABORT",
}

var smcModes = map[uint8]string{0: "SMCR", 1: "FALLBACK_TCP", 2: "SMCD"}

// smcDiag dumps the kernel's AF_SMC sockets (IPv4) through NETLINK_SOCK_DIAG.
func smcDiag() ([]kernelvm.DiagSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("smc: payload: netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("smc: payload: netlink bind: %w", err)
	}
	req := make([]byte, unix.NLMSG_HDRLEN+smcDiagReqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence
	body := req[unix.NLMSG_HDRLEN:]
	body[0] = afSMC
	for i := 44; i < 52; i++ { // idiag_cookie = INET_DIAG_NOCOOKIE
		body[i] = 0xff
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("smc: payload: smc_diag request: %w", err)
	}
	var out []kernelvm.DiagSock
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return out, fmt.Errorf("smc: payload: smc_diag reply: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			typ := binary.NativeEndian.Uint16(b[4:])
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return out, fmt.Errorf("smc: payload: smc_diag reply: bad message length %d", l)
			}
			data := b[unix.NLMSG_HDRLEN:l]
			b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
			switch typ {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				var code int32
				if len(data) >= 4 {
					code = int32(binary.NativeEndian.Uint32(data))
				}
				return out, fmt.Errorf("smc: payload: smc_diag: %w", unix.Errno(-code))
			}
			if s, ok := parseDiagMsg(data); ok {
				out = append(out, s)
			}
		}
	}
}

func parseDiagMsg(d []byte) (kernelvm.DiagSock, bool) {
	if len(d) < smcDiagMsgLen {
		return kernelvm.DiagSock{}, false
	}
	// diag_family is the socket's family, AF_SMC, for IPv4 and IPv6 alike; the
	// payload uses IPv4 (SMCPROTO_SMC) sockets only, whose addresses fill the first
	// 4 bytes of the address fields.
	id := d[4:52] // struct inet_diag_sockid: sport, dport (big-endian), src[16], dst[16], ...
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[4:8])), binary.BigEndian.Uint16(id[0:]))
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[20:24])), binary.BigEndian.Uint16(id[2:]))
	s := kernelvm.DiagSock{
		Local:  src.String(),
		Remote: dst.String(),
		State:  name(smcStates, d[1]),
		Mode:   name(smcModes, d[2]),
	}
	for a := d[smcDiagMsgLen:]; len(a) >= 4; {
		l := int(binary.NativeEndian.Uint16(a[0:]))
		t := binary.NativeEndian.Uint16(a[2:])
		if l < 4 || l > len(a) {
			break
		}
		if t == smcDiagFallback && l >= 12 {
			s.Reason = codeName(binary.NativeEndian.Uint32(a[4:]))
			s.PeerDiagnosis = codeName(binary.NativeEndian.Uint32(a[8:]))
		}
		a = a[min(len(a), (l+3)&^3):]
	}
	return s, true
}

func name(m map[uint8]string, v uint8) string {
	if n, ok := m[v]; ok {
		return n
	}
	return fmt.Sprintf("%d", v)
}

// codeName names a Linux SMC_CLC_DECL_* code; 0 (no code) is "".
func codeName(c uint32) string {
	if c == 0 {
		return ""
	}
	return wire.Code(c).String()
}
