package signal

import (
	"fmt"
	"sort"
	"strings"
)

// A Check is one item of a [Report]: something signalling needs, and whether it is
// present.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Report is what [Probe] found: each requirement, and whether [Open] works for this
// process (Mode says how) or why not (Err).
type Report struct {
	Checks   []Check
	Mode     string
	Err      error
	Counters map[string]uint64 // the program's counters, when readable
	Advice   []string          // what to do next, in sentences
}

// String formats the report one check per line, then the verdict.
func (r Report) String() string {
	var b strings.Builder
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "MISS"
		}
		fmt.Fprintf(&b, "%s %-22s %s\n", mark, c.Name, c.Detail)
	}
	if r.Err != nil {
		fmt.Fprintf(&b, "signalling: unavailable: %v\n", r.Err)
	} else {
		fmt.Fprintf(&b, "signalling: works (%s)\n", r.Mode)
	}
	names := make([]string, 0, len(r.Counters))
	for n := range r.Counters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-22s %d\n", n, r.Counters[n])
	}
	if len(r.Advice) > 0 {
		b.WriteString("\nWhat to do:\n")
		for _, a := range r.Advice {
			b.WriteString(wrap(a, "  - ", "    ", 88))
		}
	}
	return b.String()
}

// wrap breaks s into lines of at most width columns, the first starting with
// first, the others with rest.
func wrap(s, first, rest string, width int) string {
	var b strings.Builder
	line := first
	for _, w := range strings.Fields(s) {
		if len(line)+len(w)+1 > width && strings.TrimSpace(line) != strings.TrimSpace(first) {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = rest
		}
		line += w + " "
	}
	b.WriteString(strings.TrimRight(line, " ") + "\n")
	return b.String()
}
