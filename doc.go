// Package smc brings Linux SMC's IPPROTO_SMC design to Go programs in user space:
// TCP that moves its data path to shared memory when both peers can, and silently
// stays TCP when they cannot.
//
// Every connection is born as a real kernel TCP connection. SMC capability is
// announced inside the TCP handshake with the experimental TCP option Linux SMC
// uses (kind 254, ExID 0xE2D4C3D9), written by a small eBPF sock_ops program. When
// both sides advertise it, a CLC handshake byte-compatible with Linux SMC-Dv2
// follows and, on the same host, data moves through shared-memory rings.
//
// # The fallback promise
//
// A connection whose peer does not speak SMC costs nothing: [Dial] returns, and a
// [Listen]er's Accept yields, the kernel connection itself as a *net.TCPConn, with
// no wrapper, no extra goroutine and no extra system call on its data path. [State]
// still reports its [Mode] and the [Reason] it fell back.
//
// # Shared memory
//
// SMC-D connections between two processes share one link: a Unix socket between
// them, set up by their first connection and proven to reach the process that
// answered the handshake, over which each side lends the other buffers (rings) from a
// pool it allocates and pays for itself. Later connections take free buffers of the
// pools: no new socket, memory or mapping. [SetMemoryLimit] bounds the resident part
// of a process's pools (beyond it, connections fall back to TCP with
// [ReasonMaxDMB]) and [MemoryInUse] reports it; [Config.BufferSize] sizes a
// connection's buffer, which becomes resident as the connection uses it.
//
// # Privileges
//
// Announcing SMC needs the eBPF program attached to the process's cgroup v2. A
// process with CAP_BPF and CAP_NET_ADMIN (or root) attaches it itself; an
// unprivileged process can use a cgroup prepared once by root with `smc attach`.
// Without either, the package still works: every connection is plain TCP and
// reports the reason [ReasonSignallingUnavailable].
package smc
