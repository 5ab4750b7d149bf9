package perf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PickList parses a comma-separated selection of known names, for a flag; "all"
// selects every name, and aliases expand to their lists. The result keeps the
// order of known and has no duplicates.
func PickList(s string, known []string, aliases map[string][]string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			out = append(out, known...)
		case aliases[name] != nil:
			out = append(out, aliases[name]...)
		case slices.Contains(known, name):
			out = append(out, name)
		default:
			return nil, fmt.Errorf("unknown name %q (known: %s)", name, strings.Join(known, ", "))
		}
	}
	var uniq []string
	for _, k := range known { // keep table order, drop duplicates
		if slices.Contains(out, k) {
			uniq = append(uniq, k)
		}
	}
	return uniq, nil
}

// PositiveInts parses a comma-separated list of positive integers, for a flag.
func PositiveInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
