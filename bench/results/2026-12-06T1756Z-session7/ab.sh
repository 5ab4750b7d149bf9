#!/bin/bash
# Issue 19 A/B: OLD and NEW smc binaries alternating (order reversed every round),
# ROUNDS rounds, 1 s cells, tcp/unix/smc in every smc perf run.
# Usage: ab.sh OUT ROUNDS OLD NEW   (run as root; holds /tmp/smc-bench.lock per run)
set -eu
out=$1 rounds=$2 old=$3 new=$4
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
	for b in $order; do
		if [ $b = old ]; then bin=$old; else bin=$new; fi
		uptime >"$out/$b.r$r.load"
		flock /tmp/smc-bench.lock timeout 600 "$bin" perf --scenario=pingpong,bulk,rr,idle,many --many-conns=64 \
			--transport=tcp,unix,smc --duration=1s --rounds=1 --json-out="$out/$b.r$r.jsonl" >"$out/$b.r$r.txt" 2>&1
		flock /tmp/smc-bench.lock timeout 600 "$bin" perf --scenario=many --many-conns=256 \
			--transport=tcp,unix,smc --duration=1s --rounds=1 --json-out="$out/$b.m256.r$r.jsonl" >"$out/$b.m256.r$r.txt" 2>&1
	done
done
