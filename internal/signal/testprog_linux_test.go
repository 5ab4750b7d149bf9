package signal

// Values the hand-written test programs use (Linux include/uapi/linux/bpf.h; the
// struct bpf_sock_ops offsets are UAPI and do not move).
const (
	ctxOp         = 0   // bpf_sock_ops.op
	ctxSkbTCPFlag = 212 // bpf_sock_ops.skb_tcp_flags
	opHdrOptLen   = 14  // BPF_SOCK_OPS_HDR_OPT_LEN_CB
	opWriteHdrOpt = 15  // BPF_SOCK_OPS_WRITE_HDR_OPT_CB

	tcpFlagSYN = 0x02
	tcpFlagACK = 0x10
)
