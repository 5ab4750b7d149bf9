// Package kernelvm tests this module against the Linux kernel's own SMC code
// (net/smc, Debian's 6.1 kernel) booted under QEMU: a kernel AF_SMC client against
// smc.Listen, and smc.Dial against a kernel AF_SMC server.
//
// The test (kernelvm_linux_test.go) builds the static program in ./payload, prepares
// the VM with build.sh, boots it with run.sh and checks the results the payload
// prints on the serial console, one JSON [Report] per line after [ReportPrefix].
// README.md says what the test shows and how to run it by hand.
//
// This file holds only what the payload and the test share.
package kernelvm

// ReportPrefix starts every console line that carries a [Report] as JSON.
const ReportPrefix = "KERNELVM-REPORT "

// A Report is one result of the payload: the guest environment ("env") or one
// scenario ("kernel-client", "kernel-server").
type Report struct {
	Name string `json:"name"`
	// Err is the first failure that stopped the scenario early; empty when it ran
	// to the end.
	Err string `json:"err,omitempty"`

	// Env only.
	Kernel     string `json:"kernel,omitempty"`     // uname -r of the guest
	Cgroup     string `json:"cgroup,omitempty"`     // the child cgroup the payload moved into
	Signalling string `json:"signalling,omitempty"` // smc.SignallingError(), "" when usable

	// Scenarios: our side of the connection (smc.Listen's accepted conn or smc.Dial's).
	Port     uint16 `json:"port,omitempty"`
	ConnType string `json:"conn_type,omitempty"` // Go type of the net.Conn, e.g. "*smc.Conn"
	Ours     *State `json:"ours,omitempty"`
	// Sent and Received are byte counts of our side; SentIntact and ReceivedIntact
	// report whether the peer read exactly what was written, in both directions.
	Sent           int  `json:"sent"`
	Received       int  `json:"received"`
	SentIntact     bool `json:"sent_intact"`
	ReceivedIntact bool `json:"received_intact"`

	// Diag is the kernel side's view from smc_diag once both ends are connected,
	// before any data moves; DiagErr is why the dump failed, if it did.
	Diag    []DiagSock `json:"diag,omitempty"`
	DiagErr string     `json:"diag_err,omitempty"`
	// Wire is what crossed the loopback interface, from an AF_PACKET capture.
	Wire *Wire `json:"wire,omitempty"`
}

// State is smc.ConnectionState with names instead of numbers.
type State struct {
	Mode              string `json:"mode"`
	Fallback          string `json:"fallback"`
	PeerDiagnosis     string `json:"peer_diagnosis"`
	HandshakeComplete bool   `json:"handshake_complete"`
	Offered           bool   `json:"offered"`
	PeerAdvertised    bool   `json:"peer_advertised"`
}

// DiagSock is one AF_SMC socket as smc_diag reports it (Linux uapi smc_diag.h).
type DiagSock struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
	State  string `json:"state"` // SMC socket state: ACTIVE, LISTEN, ...
	Mode   string `json:"mode"`  // SMCR, FALLBACK_TCP, SMCD
	// Reason and PeerDiagnosis come from the SMC_DIAG_FALLBACK attribute, by Linux
	// name (wire.Code.String).
	Reason        string `json:"reason,omitempty"`
	PeerDiagnosis string `json:"peer_diagnosis,omitempty"`
}

// Wire is the captured beginning of one TCP connection.
type Wire struct {
	SYNOption    bool `json:"syn_option"`    // the SYN carried kind 254 with the SMC ExID
	SYNACKOption bool `json:"synack_option"` // the SYN-ACK did
	// ClientCLC and ServerCLC are the CLC messages that open each direction's byte
	// stream, in order, up to the first byte that cannot start one.
	ClientCLC []CLC `json:"client_clc"`
	ServerCLC []CLC `json:"server_clc"`
	// ClientData and ServerData are the first bytes after those messages (at most
	// 32, hex), which must be the start of the application's data.
	ClientData string `json:"client_data"`
	ServerData string `json:"server_data"`
	Err        string `json:"err,omitempty"`
}

// CLC is one captured CLC message.
type CLC struct {
	Type    string `json:"type"` // wire.Type.String(): proposal, accept, confirm, decline
	Version uint8  `json:"version"`
	// Proposal only: what it offers for SMC v1 and v2 (wire.SMCType.String()).
	TypeV1 string `json:"typev1,omitempty"`
	TypeV2 string `json:"typev2,omitempty"`
	Length int    `json:"length"`
	Hex    string `json:"hex"`
	// Decline only: the diagnosis by Linux name and the OS type.
	Diagnosis string `json:"diagnosis,omitempty"`
	OSType    uint8  `json:"os_type,omitempty"`
	// ParseErr is how wire.Parse refused the message, if it did.
	ParseErr string `json:"parse_err,omitempty"`
}
