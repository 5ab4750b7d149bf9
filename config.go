package smc

import (
	"log/slog"
	"time"

	"github.com/smc-go/smc/internal/shm"
	"github.com/smc-go/smc/internal/wire"
)

// Defaults used when a [Config] field is zero.
const (
	// DefaultBufferSize is the size of each side's shared-memory receive buffer (DMB)
	// ring: Linux SMC's default. Each process allocates the rings it receives into, in
	// pools it reuses across connections (see [SetMemoryLimit]), and a ring becomes
	// resident as its connection uses it, up to its size, until the connection closes;
	// so the ring size bounds what a connection that moved data keeps, and one that
	// moved little holds a page whatever its ring size. Beyond its shared-memory bound new connections stay TCP
	// (MAX_DMB). A larger Config.BufferSize (1 MiB, the largest DMB of Linux SMC-D)
	// serves bulk transfers, with far fewer wake-ups per byte, which matters most on
	// a host whose CPUs are busy.
	DefaultBufferSize = 64 << 10
	// DefaultHandshakeTimeout bounds the SMC handshake of a connection, as Linux's
	// CLC_WAIT_TIME (6 s) bounds each of its waits for a CLC message.
	DefaultHandshakeTimeout = 6 * time.Second
	// DefaultMaxHandshakes bounds concurrent server handshakes per listener; beyond
	// it new connections are not offered SMC (Linux limit_smc_hs).
	DefaultMaxHandshakes = 512
)

// A Config tunes SMC for a [Dialer] or [ListenConfig]. A nil *Config or a zero field
// means the default, so the zero Config is every default. A Config may be shared by many dialers and listeners but must
// not be modified once in use; [Config.Policy] itself may be changed at run time.
type Config struct {
	// BufferSize is the size in bytes of the receive buffer (DMB) this side
	// offers; it is rounded up to a power of two of at least 16 KiB, at most
	// 512 MiB (the largest size SMC-D's CLC messages can express). It also bounds
	// the peer's buffer this side accepts: at most the larger of BufferSize and
	// [DefaultBufferSize]; a peer offering more is declined (MAX_DMB) before
	// anything is mapped.
	BufferSize int

	// HandshakeTimeout bounds the SMC handshake (the CLC exchange and the
	// shared-memory set-up) of each connection.
	HandshakeTimeout time.Duration

	// MaxHandshakes is how many server handshakes may be in progress at once on a
	// listener before new connections stop being offered SMC. Negative means no limit.
	MaxHandshakes int

	// Policy decides per connection whether SMC is offered. Nil means
	// [DefaultPolicy]: only destinations on this host.
	Policy *Policy

	// EndpointDir, if set, is a directory where this process's shared-memory
	// endpoint has its Unix socket, so that peers in other network namespaces that
	// share the directory can attach. Empty means the abstract socket namespace:
	// peers in the same network namespace only. Both sides must agree. The
	// directory must be owned by root or by this process's user, and nobody else
	// may be able to swap files in it (group- or world-writable only with the
	// sticky bit); otherwise Dial and Listen fail. For processes of different users,
	// use a root-owned directory with the sticky bit: socket files are mode 0666,
	// and each link proves which process serves it.
	EndpointDir string

	// Logger, if set, receives debug records of handshake decisions. The package
	// never logs otherwise.
	Logger *slog.Logger
}

// Clone returns a shallow copy of c; a nil c clones to a zero Config. The Policy
// and Logger are shared, not copied.
func (c *Config) Clone() *Config {
	if c == nil {
		return &Config{}
	}
	c2 := *c
	return &c2
}

func (c *Config) bufferSize() int {
	if c == nil || c.BufferSize <= 0 {
		return DefaultBufferSize
	}
	return wire.BufferSize(compressedSize(c.BufferSize))
}

// maxPeerBuffer is the largest peer ring this side maps.
func (c *Config) maxPeerBuffer() int { return max(c.bufferSize(), DefaultBufferSize) }

// checkEndpointDir refuses an EndpointDir others could swap files in.
func (c *Config) checkEndpointDir() error {
	if c == nil || c.EndpointDir == "" {
		return nil
	}
	return shm.CheckDir(c.EndpointDir)
}

func (c *Config) endpointDir() string {
	if c == nil {
		return ""
	}
	return c.EndpointDir
}

func (c *Config) handshakeTimeout() time.Duration {
	if c == nil || c.HandshakeTimeout <= 0 {
		return DefaultHandshakeTimeout
	}
	return c.HandshakeTimeout
}

func (c *Config) maxHandshakes() int {
	if c == nil || c.MaxHandshakes == 0 {
		return DefaultMaxHandshakes
	}
	return c.MaxHandshakes
}

func (c *Config) policy() *Policy {
	if c == nil || c.Policy == nil {
		return DefaultPolicy
	}
	return c.Policy
}

func (c *Config) logger() *slog.Logger {
	if c == nil {
		return nil
	}
	return c.Logger
}
