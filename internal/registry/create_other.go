//go:build !linux

package registry

import "errors"

// create has no shared file outside Linux: the counters live in private memory.
func create() (*Registry, error) {
	return nil, errors.New("smc: registry: not supported on this operating system")
}
