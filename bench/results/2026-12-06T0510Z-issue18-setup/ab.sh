#!/bin/sh
# ab.sh OUT A B [N]: alternates two smc binaries N times (A B, then B A, ...), each
# running smc perf --scenario=short,setup --transport=tcp,smc --rounds=1 --duration=1s,
# under flock /tmp/smc-bench.lock; JSON rows go to OUT/<bin>-<i>.jsonl.
set -eu
out=$1 a=$2 b=$3 n=${4:-5}
mkdir -p "$out"
exec flock /tmp/smc-bench.lock sh -c '
out=$1 a=$2 b=$3 n=$4
i=1
while [ $i -le $n ]; do
	if [ $((i % 2)) -eq 1 ]; then order="$a $b"; else order="$b $a"; fi
	for bin in $order; do
		"$bin" perf --scenario=short,setup --transport=tcp,smc --rounds=1 --duration=1s \
			--json-out="$out/$(basename "$bin")-$i.jsonl" >/dev/null 2>&1
	done
	i=$((i + 1))
done' sh "$out" "$a" "$b" "$n"
