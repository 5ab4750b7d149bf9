// Command smc is the command-line tool of package smc: it measures smc side by side
// with TCP and Unix sockets, and prepares and checks a host for SMC signalling.
// Run "smc help" for its commands and "smc help COMMAND" for one of them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// commands maps a command name to its entry point. Each command lives in its own
// file and registers itself from an init function; nothing else lists them.
var commands = map[string]command{}

type command struct {
	summary string
	// run runs the command with the arguments after its name. It parses its flags
	// with parseFlags, so that -h returns errHelp and a bad flag a usageError.
	run func(args []string) error
}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// stdout and stderr are where commands print; tests replace them.
var stdout, stderr io.Writer = os.Stdout, os.Stderr

// errHelp is returned by a command whose help was asked for and printed.
var errHelp = flag.ErrHelp

// A usageError is a command line that cannot be run; the usage has been printed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseFlags parses args into fs. With -h or -help it prints the command's usage
// on stdout and returns errHelp; with a bad flag it prints the error and the usage
// on stderr and returns a usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return errHelp
	}
	return usageErrorf(fs, "smc: %s: %w", fs.Name(), err)
}

// usageErrorf prints an error and the usage of fs on stderr and returns the error
// as a usageError.
func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	fmt.Fprintln(stderr, err)
	fs.SetOutput(stderr)
	fs.Usage()
	return usageError{err}
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: smc COMMAND [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun \"smc help COMMAND\" (or \"smc COMMAND -h\") for a command's flags.\n")
}

func main() { os.Exit(run(os.Args[1:])) }

// run runs the command line args and returns the exit status: 0 on success and
// for help, 2 for a command line that cannot be run, 1 when the command failed.
func run(args []string) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "help":
		if len(args) == 0 || args[0] == "help" {
			usage(stdout)
			return 0
		}
		name, args = args[0], []string{"-h"}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "smc: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	err := cmd.run(args)
	var ue usageError
	var es exitStatus
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		return 2 // the error and the usage are printed
	case errors.As(err, &es):
		return int(es) // smc run: the command's status, already reported by the command
	}
	fmt.Fprintln(stderr, err)
	return 1
}
