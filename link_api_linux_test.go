package smc

import "github.com/smc-go/smc/internal/shm"

// The link API the acceptance tests read, in one place.

type linkCounters = shm.Counters

func readCounters() linkCounters   { return shm.ReadCounters() }
func setMemoryLimit(n int64) int64 { return SetMemoryLimit(n) }
func memoryInUse() int64           { return MemoryInUse() }
