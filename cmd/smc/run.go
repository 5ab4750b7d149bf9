package main

import (
	"flag"
	"fmt"
)

func init() {
	register("run", "run a command in a cgroup where it can announce SMC", runRun)
}

const runUsage = `usage: smc run [--cgroup=CGROUP] [--keep] -- COMMAND [ARG...]

Runs COMMAND in a cgroup v2 where the smc library can announce SMC, waits for it,
and exits with its status (128+N when signal N ended it), as mptcpize and smc_run
wrap a program.

As root without --cgroup, smc run creates a child of its own cgroup,
smc-run-<pid>, starts COMMAND there (the library attaches its signalling to that
cgroup itself), and removes the cgroup when COMMAND has exited, unless --keep is
given or processes COMMAND started still run in it.

With --cgroup, COMMAND starts in that cgroup: one prepared with smc attach (which
lets unprivileged processes announce SMC), or any cgroup below which the library
can attach. Starting a process in a cgroup needs write access to its cgroup.procs
(root, or a cgroup delegated to the user).

SIGTERM and SIGHUP are passed on to COMMAND; SIGINT and SIGQUIT from a terminal
reach it directly, and smc run waits for it to exit.

flags:
`

// runRun is the entry point of "smc run".
func runRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	cgroup := fs.String("cgroup", "", "run COMMAND in this cgroup v2 (a directory, or a path relative to the cgroup v2 mount)")
	keep := fs.Bool("keep", false, "keep the cgroup smc run created")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf(fs, "smc: run: no command to run")
	}
	return runIn(*cgroup, *keep, fs.Args())
}

// exitStatus is the error of a command that ran and exited with a non-zero
// status, which smc exits with.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
