#!/bin/sh
# A third A/B of the same two binaries as ab.sh, for the one row whose medians
# differed most in ab-smcd.sh (request/response 1 KiB over 16 connections, smc):
# rr only, tcp and smc, A B B A six times.
# Usage: ab-rr16.sh A_BINARY B_BINARY   (run as root from the repository root, under
# flock /tmp/smc-bench.lock)
set -eu
dir=$(dirname "$0")/rr16
a=$1 b=$2
. bench/machine.sh
machine before >"$dir/machine.txt"
flags="--scenario=rr --transport=tcp,smc"
echo "A: $a perf $flags (f08264d)" >>"$dir/machine.txt"
echo "B: $b perf $flags (f0359d6)" >>"$dir/machine.txt"
i=0
for arm in A B B A A B B A A B B A A B B A A B B A A B B A; do
	i=$((i + 1))
	if [ $arm = A ]; then bin=$a; else bin=$b; fi
	"$bin" perf $flags --json-out="$dir/$i-$arm.jsonl" >"$dir/$i-$arm.txt"
done
echo "runs done at $(date -u +%H:%M:%S)" >>"$dir/machine.txt"
machine after >>"$dir/machine.txt"
