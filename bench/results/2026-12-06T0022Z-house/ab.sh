#!/bin/sh
# The no-behaviour-change check of issue 17: smc perf's rows at main's f08264d
# (A, built to a binary before the move) and at the house-lab branch (B, after
# the engine moved to internal/perf), alternating A B B A A B in one run.
# Usage: ab.sh A_BINARY B_BINARY   (run as root from the repository root, under
# flock /tmp/smc-bench.lock)
set -eu
dir=$(dirname "$0")
a=$1 b=$2
. bench/machine.sh
machine before >"$dir/machine.txt"
flags="--duration=400ms --rounds=3"
echo "A: $a perf --scenario=core $flags (f08264d)" >>"$dir/machine.txt"
echo "B: $b perf $flags ($(git rev-parse --short HEAD))" >>"$dir/machine.txt"
i=0
for arm in A B B A A B; do
	i=$((i + 1))
	if [ $arm = A ]; then
		"$a" perf --scenario=core $flags --json-out="$dir/$i-A.jsonl" >"$dir/$i-A.txt"
	else
		"$b" perf $flags --json-out="$dir/$i-B.jsonl" >"$dir/$i-B.txt"
	fi
	echo "run $i ($arm) done at $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$dir/machine.txt"
done
machine after >>"$dir/machine.txt"
