#!/bin/sh
# Issue 20: smc perf's TCP, SMC-D and fallback rows before (A, main at 53c6a66) and
# after (B) the bookkeeping, alternating A B B A ... in one run.
# Usage: ab-perf.sh A_SMC B_SMC PAIRS [smc perf flags]   (run as root, under flock
# /tmp/smc-bench.lock): PAIRS times "A B" (as A B B A ...), into perf-N-ARM.jsonl
# and .txt here; START=N numbers the runs from N+1.
set -eu
dir=${OUT:-$(cd "$(dirname "$0")" && pwd)}
a=$1 b=$2 pairs=${3:-6}
shift 3 || true
flags=${*:-"--transport=tcp,smc,smc-fallback --scenario=pingpong,rr,short --duration=250ms --rounds=3"}
i=${START:-0}
arms=""
p=0
while [ $p -lt "$pairs" ]; do
	p=$((p + 1))
	if [ $((p % 2)) = 1 ]; then arms="$arms A B"; else arms="$arms B A"; fi
done
for arm in $arms; do
	i=$((i + 1))
	bin=$a
	[ $arm = B ] && bin=$b
	"$bin" perf $flags --json-out="$dir/perf-$i-$arm.jsonl" >"$dir/perf-$i-$arm.txt"
	echo "run $i ($arm, $flags) done at $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$dir/machine.txt"
done
