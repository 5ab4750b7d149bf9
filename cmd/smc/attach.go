package main

import (
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/smc-go/smc/internal/signal"
)

func init() {
	register("attach", "prepare a cgroup v2 so its processes can announce SMC (root)", runAttach)
}

// runAttach is the entry point of "smc attach".
func runAttach(args []string) error {
	fs := flag.NewFlagSet("attach", flag.ContinueOnError)
	detach := fs.Bool("detach", false, "undo a previous smc attach of the cgroup (a path, or the ID --list shows)")
	list := fs.Bool("list", false, "list the prepared cgroups and their state")
	forceRoot := fs.Bool("force-root", false, "allow the root cgroup, which puts the program on every TCP socket of the host")
	group := fs.String("group", "", "group (name or ID) whose members may mark sockets and read results; default: root only")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: smc attach [--group=NAME] [--force-root] CGROUP
       smc attach --detach CGROUP|ID
       smc attach --list

Loads the SMC signalling program, attaches it to the cgroup v2 CGROUP (a directory in
the cgroup v2 mount, or a path relative to it) and pins it in bpffs (mounted at
/sys/fs/bpf if needed), so that processes started in that cgroup or below announce
SMC without privileges (start them there with smc run --cgroup=CGROUP). Needs root.

--list shows each prepared cgroup by ID with its state: attached, cgroup removed
(its pins remain: remove them with --detach ID), other version (prepared by another
version of smc: detach and attach again), or broken.

flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *list {
		if fs.NArg() != 0 || *detach {
			return usageErrorf(fs, "smc: attach: --list takes no cgroup and no other flag")
		}
		return listPrepared()
	}
	if fs.NArg() != 1 {
		return usageErrorf(fs, "smc: attach: exactly one cgroup path is needed")
	}
	path := fs.Arg(0)
	if *detach {
		if err := signal.DetachCgroup(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "detached from %s\n", path)
		return nil
	}
	dir, err := signal.AttachCgroup(path, signal.AttachOptions{ForceRoot: *forceRoot, Group: *group})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "attached to %s; pinned at %s\n", path, dir)
	return nil
}

// listPrepared prints the prepared cgroups.
func listPrepared() error {
	ps, err := signal.ListPrepared()
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		fmt.Fprintln(stdout, "no prepared cgroup")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCGROUP\tPINS")
	for _, p := range ps {
		path := p.Path
		if path == "" {
			path = "(removed)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", p.ID, p.State, path, p.PinDir)
	}
	return tw.Flush()
}
