package signal

// The sock_ops program is C (bpf/sockops.c), compiled by cilium/ebpf's bpf2go into
// sockops_bpfel.o and sockops_bpfel.go, both committed so that building needs no C
// toolchain. Regenerating needs clang and Debian's libbpf-dev; the include path is
// where Debian keeps asm/types.h on x86-64 (the object itself is the same on every
// little-endian architecture). CI checks that this leaves the tree unchanged.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel -no-global-types sockops bpf/sockops.c -- -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu
