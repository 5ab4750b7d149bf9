#!/bin/bash
# Issue 18 A/B: OLD and NEW smc binaries alternating (order reversed every round),
# ROUNDS rounds: short and setup, 1 s cells, 5 rounds per smc perf run.
# Usage: ab18.sh OUT ROUNDS OLD NEW   (run as root; holds /tmp/smc-bench.lock per run)
set -eu
out=$1 rounds=$2 old=$3 new=$4
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
	for b in $order; do
		if [ $b = old ]; then bin=$old; else bin=$new; fi
		uptime >"$out/$b.r$r.load"
		flock /tmp/smc-bench.lock timeout 600 "$bin" perf --scenario=short,setup --transport=tcp,smc \
			--duration=1s --rounds=5 --json-out="$out/$b.r$r.jsonl" >"$out/$b.r$r.txt" 2>&1
	done
done
