#!/bin/sh
# pingpong.sh OUT REPS NAME=BINARY...: as ab.sh, each turn
#   smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 -> OUT/NAME-I.jsonl
set -eu
out=$1 reps=$2
shift 2
mkdir -p "$out"
exec flock /tmp/smc-bench.lock sh -c '
out=$1 reps=$2
shift 2
i=1
while [ $i -le $reps ]; do
	if [ $((i % 2)) -eq 1 ]; then order="$*"; else order=$(printf "%s\n" "$@" | tac | tr "\n" " "); fi
	for nb in $order; do
		name=${nb%%=*} bin=${nb#*=}
		uptime >> "$out/load.txt"
		"$bin" perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
			--json-out="$out/$name-$i.jsonl" > "$out/$name-$i.txt" 2>&1
	done
	i=$((i + 1))
done' sh "$out" "$reps" "$@"
