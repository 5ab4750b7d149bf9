package smc

import "fmt"

// openSignaller opens the eBPF signalling. The sock_ops program is not part of the
// package yet, so no process can announce SMC and every connection is plain TCP.
func openSignaller() (signaller, error) {
	return nil, fmt.Errorf("%w: the sock_ops program is not built into this version", errSignallingUnavailable)
}
