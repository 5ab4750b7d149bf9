//go:build !linux

// Command payload runs only inside the Linux kernel VM of internal/kernelvm.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "smc: payload: runs only on Linux, inside the kernel VM")
	os.Exit(2)
}
