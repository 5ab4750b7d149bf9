#!/bin/sh
# A second, narrower A/B of the same two binaries as ab.sh: only the rows whose
# SMC-D figures are bimodal on this shared host (ping-pong and request/response,
# tcp and smc), with more alternations: A B B A, four times, 250 ms cells.
# Usage: ab-smcd.sh A_BINARY B_BINARY   (run as root from the repository root, under
# flock /tmp/smc-bench.lock)
set -eu
dir=$(dirname "$0")/smcd
a=$1 b=$2
. bench/machine.sh
machine before >"$dir/machine.txt"
flags="--scenario=pingpong,rr --transport=tcp,smc"
echo "A: $a perf $flags (f08264d)" >>"$dir/machine.txt"
echo "B: $b perf $flags (f0359d6)" >>"$dir/machine.txt"
i=0
for arm in A B B A A B B A A B B A A B B A; do
	i=$((i + 1))
	if [ $arm = A ]; then bin=$a; else bin=$b; fi
	"$bin" perf $flags --json-out="$dir/$i-$arm.jsonl" >"$dir/$i-$arm.txt"
	echo "run $i ($arm) done at $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$dir/machine.txt"
done
machine after >>"$dir/machine.txt"
