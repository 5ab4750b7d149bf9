#!/bin/sh
# Issue 19: smc perf rr and bulk rows of two builds, alternating A B B A ... in one run.
# Usage (as root): ab-rr.sh A_DIR B_DIR PAIRS OUTDIR   (each DIR holds an smc binary)
# Each run holds flock /tmp/smc-bench.lock and runs through hiprio.sh (see ab.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
a=$1 b=$2 pairs=$3 out=$4
mkdir -p "$out"
arms=""
p=0
while [ $p -lt "$pairs" ]; do
	p=$((p + 1))
	if [ $((p % 2)) = 1 ]; then arms="$arms A B"; else arms="$arms B A"; fi
done
i=0
for arm in $arms; do
	i=$((i + 1))
	dir=$a
	[ $arm = B ] && dir=$b
	flock /tmp/smc-bench.lock "$here/hiprio.sh" "$dir/smc" perf --transport=tcp,smc --scenario=rr,bulk --duration=250ms --rounds=3 --json-out="$out/perf-$i-$arm.jsonl" >"$out/perf-$i-$arm.txt" 2>&1
	echo "run $i ($arm) done at $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
done
