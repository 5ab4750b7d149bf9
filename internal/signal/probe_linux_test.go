package signal

import (
	"errors"
	"strings"
	"testing"
)

// TestProbeAdvice: the advice names the way out of each situation smc probe finds.
func TestProbeAdvice(t *testing.T) {
	unavailable := errors.New("unavailable")
	for _, tc := range []struct {
		name  string
		f     probeFacts
		err   error
		wants []string
	}{
		{"works", probeFacts{privileged: true}, nil, []string{"can announce SMC", "smc ss"}},
		{"root cgroup", probeFacts{privileged: true, rootCgroup: true, mount: "/sys/fs/cgroup/unified"}, unavailable,
			[]string{"smc run -- PROGRAM", "/sys/fs/cgroup/unified/NAME", "SIGNALLING_UNAVAILABLE"}},
		{"user", probeFacts{rootCgroup: true}, unavailable, []string{"smc attach --group=GROUP", "smc run --cgroup=CGROUP"}},
		{"user refused", probeFacts{pinsRefused: "/sys/fs/bpf/smc/7"}, unavailable, []string{"ls -l /sys/fs/bpf/smc/7"}},
		{"conflict", probeFacts{privileged: true}, ErrConflict, []string{"bpftool cgroup tree", "smc attach --detach ID"}},
		{"ip netns exec", probeFacts{privileged: true, private: true, rootCgroup: true}, unavailable, []string{"nsenter --net"}},
		{"no cgroup v2", probeFacts{noCgroup: true}, unavailable, []string{"mount -t cgroup2"}},
	} {
		a := strings.Join(tc.f.advice(tc.err), "\n")
		for _, w := range tc.wants {
			if !strings.Contains(a, w) {
				t.Errorf("%s: advice lacks %q:\n%s", tc.name, w, a)
			}
		}
	}
	r := Report{Advice: []string{strings.Repeat("word ", 40)}}
	for _, l := range strings.Split(strings.TrimSpace(r.String()), "\n") {
		if len(l) > 88 {
			t.Errorf("advice line of %d columns: %q", len(l), l)
		}
	}
}
