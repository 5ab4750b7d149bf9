package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/smc-go/smc/internal/signal"
)

func init() {
	register("probe", "show what SMC signalling needs and whether it works here", runProbe)
}

// runProbe is the entry point of "smc probe". It exits non-zero when signalling is
// unavailable to this process.
func runProbe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: smc probe

Prints each requirement of SMC signalling (bpf system call, kernel BTF, cgroup v2,
the process's cgroup, bpffs and a cgroup prepared by smc attach, privileges, MPTCP),
then whether this process can announce SMC and, if so, the program's counters.
Opening may attach the program to this process's cgroup for a moment.
`)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r := signal.Probe()
	fmt.Fprint(stdout, r.String())
	if r.Err != nil {
		return errors.New("smc: probe: signalling unavailable")
	}
	return nil
}
