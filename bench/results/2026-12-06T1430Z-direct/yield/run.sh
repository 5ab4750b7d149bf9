#!/bin/bash
# old (main fa38f2f) against new2 (the branch with osYield in the spin), alternating,
# order reversed every round. Usage: run.sh OUT ROUNDS OLD NEW2
set -u
out=$1 rounds=$2 old=$3 new=$4
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="old new2"; else order="new2 old"; fi
	for b in $order; do
		if [ $b = old ]; then bin=$old; else bin=$new; fi
		uptime >"$out/$b.r$r.load"
		flock /tmp/smc-bench.lock timeout 120 "$bin" perf --scenario=pingpong,rr --transport=tcp,smc --duration=1s --rounds=1 \
			--json-out="$out/$b.r$r.jsonl" >"$out/$b.r$r.txt" 2>&1
	done
done
