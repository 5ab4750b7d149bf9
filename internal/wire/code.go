package wire

import (
	"fmt"
	"sync"
)

// Code is a Linux SMC decline / fallback reason code (SMC_CLC_DECL_*): the peer
// diagnosis carried in a Decline and the reason a Linux SMC socket reports when it
// fell back to TCP. The high byte is a category: 0x01 resources, 0x02 timeout, 0x03
// configuration or negotiation, 0x04 synchronisation, 0x05 peer declined, 0x09
// internal.
//
// The values are those of current kernels (Linux smc_clc.h); 4.x kernels used
// different values for some names, which are not decoded here.
type Code uint32

// Linux smc_clc.h: SMC_CLC_DECL_*.
const (
	CodeMem        Code = 0x01010000 // insufficient memory resources
	CodeTimeoutCL  Code = 0x02010000 // timeout waiting for QP confirm link
	CodeTimeoutAL  Code = 0x02020000 // timeout waiting for QP add link
	CodeCnfErr     Code = 0x03000000 // configuration error
	CodePeerNoSMC  Code = 0x03010000 // peer did not indicate SMC
	CodeIPsec      Code = 0x03020000 // IPsec usage
	CodeNoSMCDev   Code = 0x03030000 // no SMC device found (R or D)
	CodeNoSMCDDev  Code = 0x03030001 // no SMC-D device found
	CodeNoSMCRDev  Code = 0x03030002 // no SMC-R device found
	CodeNoISM2Supp Code = 0x03030003 // hardware has no ISMv2 support
	CodeNoV2Ext    Code = 0x03030004 // peer sent no CLC v2 extension
	CodeNoV2DExt   Code = 0x03030005 // peer sent no CLC SMC-Dv2 extension
	CodeNoSEID     Code = 0x03030006 // peer sent no SEID
	CodeNoSMCD2Dev Code = 0x03030007 // no SMC-Dv2 device found
	CodeNoUEID     Code = 0x03030008 // peer sent no UEID
	CodeReleaseErr Code = 0x03030009 // release version negotiation failed
	CodeMaxConnErr Code = 0x0303000a // max connections negotiation failed
	CodeMaxLinkErr Code = 0x0303000b // max links negotiation failed
	CodeModeUnsupp Code = 0x03040000 // SMC modes do not match (R or D)
	CodeRMBEEC     Code = 0x03050000 // peer has eyecatcher in RMBE
	CodeOptUnsupp  Code = 0x03060000 // fastopen sockopt not supported
	CodeDiffPrefix Code = 0x03070000 // IP prefix / subnet mismatch
	CodeGetVLANErr Code = 0x03080000 // error getting the VLAN ID of the IP device
	CodeISMVLANErr Code = 0x03090000 // error registering the VLAN ID on the ISM device
	CodeNoActLink  Code = 0x030a0000 // no active SMC-R link in link group
	CodeNoSrvLink  Code = 0x030b0000 // SMC-R link from server not found
	CodeVersMismat Code = 0x030c0000 // SMC version mismatch
	CodeMaxDMB     Code = 0x030d0000 // SMC-D DMB limit exceeded
	CodeNoRoute    Code = 0x030e0000 // SMC-Rv2 connection: no route to peer
	CodeNoIndirect Code = 0x030f0000 // SMC-Rv2 connection: indirect mismatch
	CodeSyncErr    Code = 0x04000000 // synchronization error
	CodePeerDecl   Code = 0x05000000 // peer declined during handshake
	CodeIntErr     Code = 0x09990000 // internal error
	CodeErrRTok    Code = 0x09990001 // rtoken handling failed
	CodeErrRdyLnk  Code = 0x09990002 // IB ready link failed
	CodeErrRegBuf  Code = 0x09990003 // registering RDMA buffers failed
)

// String returns the Linux name of c without its SMC_CLC_DECL_ prefix, such as
// "PEERNOSMC", or c in hexadecimal ("0x0a0b0c0d") when it has no name. It does not
// allocate for a named code.
func (c Code) String() string {
	if s := c.name(); s != "" {
		return s
	}
	return fmt.Sprintf("%#08x", uint32(c))
}

// Known reports whether c is one of the codes current Linux kernels define.
func (c Code) Known() bool { return c.name() != "" }

func (c Code) name() string {
	switch c {
	case CodeMem:
		return "MEM"
	case CodeTimeoutCL:
		return "TIMEOUT_CL"
	case CodeTimeoutAL:
		return "TIMEOUT_AL"
	case CodeCnfErr:
		return "CNFERR"
	case CodePeerNoSMC:
		return "PEERNOSMC"
	case CodeIPsec:
		return "IPSEC"
	case CodeNoSMCDev:
		return "NOSMCDEV"
	case CodeNoSMCDDev:
		return "NOSMCDDEV"
	case CodeNoSMCRDev:
		return "NOSMCRDEV"
	case CodeNoISM2Supp:
		return "NOISM2SUPP"
	case CodeNoV2Ext:
		return "NOV2EXT"
	case CodeNoV2DExt:
		return "NOV2DEXT"
	case CodeNoSEID:
		return "NOSEID"
	case CodeNoSMCD2Dev:
		return "NOSMCD2DEV"
	case CodeNoUEID:
		return "NOUEID"
	case CodeReleaseErr:
		return "RELEASEERR"
	case CodeMaxConnErr:
		return "MAXCONNERR"
	case CodeMaxLinkErr:
		return "MAXLINKERR"
	case CodeModeUnsupp:
		return "MODEUNSUPP"
	case CodeRMBEEC:
		return "RMBE_EC"
	case CodeOptUnsupp:
		return "OPTUNSUPP"
	case CodeDiffPrefix:
		return "DIFFPREFIX"
	case CodeGetVLANErr:
		return "GETVLANERR"
	case CodeISMVLANErr:
		return "ISMVLANERR"
	case CodeNoActLink:
		return "NOACTLINK"
	case CodeNoSrvLink:
		return "NOSRVLINK"
	case CodeVersMismat:
		return "VERSMISMAT"
	case CodeMaxDMB:
		return "MAX_DMB"
	case CodeNoRoute:
		return "NOROUTE"
	case CodeNoIndirect:
		return "NOINDIRECT"
	case CodeSyncErr:
		return "SYNCERR"
	case CodePeerDecl:
		return "PEERDECL"
	case CodeIntErr:
		return "INTERR"
	case CodeErrRTok:
		return "ERR_RTOK"
	case CodeErrRdyLnk:
		return "ERR_RDYLNK"
	case CodeErrRegBuf:
		return "ERR_REGBUF"
	}
	return ""
}

// ParseCode returns the code whose name (as String prints it, without the
// SMC_CLC_DECL_ prefix) is name, or the code written in hexadecimal as String
// writes an unnamed one ("0x0a0b0c0d"); ok is false for anything else.
func ParseCode(name string) (c Code, ok bool) {
	if c, ok := codesByName()[name]; ok {
		return c, true
	}
	var v uint32
	if n, err := fmt.Sscanf(name, "0x%x", &v); err == nil && n == 1 && name == fmt.Sprintf("%#08x", v) {
		return Code(v), true
	}
	return 0, false
}

// codesByName maps each named code's name to it.
var codesByName = sync.OnceValue(func() map[string]Code {
	m := make(map[string]Code, len(namedCodes))
	for _, c := range namedCodes {
		m[c.String()] = c
	}
	return m
})

// namedCodes lists the codes name knows.
var namedCodes = [...]Code{
	CodeMem, CodeTimeoutCL, CodeTimeoutAL, CodeCnfErr, CodePeerNoSMC, CodeIPsec, CodeNoSMCDev, CodeNoSMCDDev,
	CodeNoSMCRDev, CodeNoISM2Supp, CodeNoV2Ext, CodeNoV2DExt, CodeNoSEID, CodeNoSMCD2Dev, CodeNoUEID,
	CodeReleaseErr, CodeMaxConnErr, CodeMaxLinkErr, CodeModeUnsupp, CodeRMBEEC, CodeOptUnsupp, CodeDiffPrefix,
	CodeGetVLANErr, CodeISMVLANErr, CodeNoActLink, CodeNoSrvLink, CodeVersMismat, CodeMaxDMB, CodeNoRoute,
	CodeNoIndirect, CodeSyncErr, CodePeerDecl, CodeIntErr, CodeErrRTok, CodeErrRdyLnk, CodeErrRegBuf,
}
