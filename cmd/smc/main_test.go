package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if smcBinDir != "" {
		os.RemoveAll(smcBinDir)
	}
	os.Exit(code)
}

// TestHelp checks the command line's habits: help in every usual spelling prints
// on standard output and exits 0; a missing or unknown command, or a bad flag,
// prints the usage on standard error and exits 2.
func TestHelp(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		out, err   string // substrings of what is printed on each
		outIsEmpty bool
	}{
		{args: []string{"-h"}, code: 0, out: "commands:"},
		{args: []string{"--help"}, code: 0, out: "commands:"},
		{args: []string{"help"}, code: 0, out: "commands:"},
		{args: []string{"help", "help"}, code: 0, out: "commands:"},
		{args: []string{"help", "perf"}, code: 0, out: "usage: smc perf"},
		{args: []string{"help", "attach"}, code: 0, out: "usage: smc attach"},
		{args: []string{"help", "probe"}, code: 0, out: "usage: smc probe"},
		{args: []string{"perf", "-h"}, code: 0, out: "-transport"},
		{args: []string{"perf", "server", "-h"}, code: 0, out: "usage: smc perf server"},
		{args: []string{"perf", "client", "--help"}, code: 0, out: "-control"},
		{args: []string{"attach", "-h"}, code: 0, out: "-detach"},
		{args: []string{"probe", "-help"}, code: 0, out: "usage: smc probe"},
		{args: []string{"help", "ss"}, code: 0, out: "usage: smc ss"},
		{args: []string{"ss", "-h"}, code: 0, out: "--fallback-only"},
		{args: []string{"help", "stats"}, code: 0, out: "usage: smc stats"},
		{args: []string{"stats", "-h"}, code: 0, out: "-clear"},
		{args: []string{"help", "run"}, code: 0, out: "usage: smc run"},
		{args: []string{"attach", "-h"}, code: 0, out: "-list"},
		{args: []string{"ss", "--smc-only", "--fallback-only"}, code: 2, err: "exclude each other", outIsEmpty: true},
		{args: []string{"ss", "--state=nosuch"}, code: 2, err: `unknown state "nosuch"`, outIsEmpty: true},
		{args: []string{"run"}, code: 2, err: "no command to run", outIsEmpty: true},
		{args: []string{"attach", "--list", "x"}, code: 2, err: "--list takes no cgroup", outIsEmpty: true},
		{args: nil, code: 2, err: "commands:", outIsEmpty: true},
		{args: []string{"nosuch"}, code: 2, err: `unknown command "nosuch"`, outIsEmpty: true},
		{args: []string{"help", "nosuch"}, code: 2, err: `unknown command "nosuch"`, outIsEmpty: true},
		{args: []string{"perf", "--nosuch"}, code: 2, err: "flag provided but not defined", outIsEmpty: true},
		{args: []string{"perf", "--scenario=wrk"}, code: 2, err: "go run ./bench/lab", outIsEmpty: true},
		{args: []string{"perf", "--rounds=0"}, code: 2, err: "must be positive", outIsEmpty: true},
		{args: []string{"perf", "client"}, code: 2, err: "needs --control", outIsEmpty: true},
		{args: []string{"perf", "--buffer-size=100000"}, code: 2, err: "not 0 or a power of two", outIsEmpty: true},
		{args: []string{"perf", "server", "--buffer-size=8192"}, code: 2, err: "not 0 or a power of two", outIsEmpty: true},
		{args: []string{"attach"}, code: 2, err: "exactly one cgroup path", outIsEmpty: true},
	}
	defer func(o, e io.Writer) { stdout, stderr = o, e }(stdout, stderr)
	for _, tt := range tests {
		var out, errOut strings.Builder
		stdout, stderr = &out, &errOut
		code := run(tt.args)
		if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.err) ||
			(tt.outIsEmpty && out.Len() > 0) {
			t.Errorf("smc %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(tt.args, " "), code, out.String(), errOut.String(), tt.code, tt.out, tt.err)
		}
	}
}

// TestUsageListsCommands checks that the usage lists every registered command and
// only those: adding a command is adding its file.
func TestUsageListsCommands(t *testing.T) {
	var b strings.Builder
	usage(&b)
	lines := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "  ") {
			lines++
			name := strings.Fields(l)[0]
			if _, ok := commands[name]; !ok {
				t.Errorf("usage lists %q, which is not a command", name)
			}
		}
	}
	if lines != len(commands) {
		t.Errorf("usage lists %d commands, %d are registered:\n%s", lines, len(commands), b.String())
	}
}
