//go:build !linux

package main

import "errors"

func runIn(dir string, keep bool, args []string) error {
	return errors.New("smc: run: cgroups are Linux only")
}
