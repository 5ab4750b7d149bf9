#!/bin/bash
# Bulk only: OLD and NEW alternating (order reversed every round), ROUNDS rounds,
# tcp/unix/smc in every run, 1 s cells, 3 rounds per run; each run holds the bench lock.
# Usage: bulk5.sh OUT ROUNDS OLD NEW
set -eu
out=$1 rounds=$2 old=$3 new=$4
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
	for b in $order; do
		if [ $b = old ]; then bin=$old; else bin=$new; fi
		uptime >"$out/$b.r$r.load"
		flock /tmp/smc-bench.lock timeout 600 "$bin" perf --scenario=bulk --transport=tcp,unix,smc \
			--duration=1s --rounds=3 --json-out="$out/$b.r$r.jsonl" >"$out/$b.r$r.txt" 2>&1
	done
done
