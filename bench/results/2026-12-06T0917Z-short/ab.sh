#!/bin/sh
# ab.sh OUT REPS NAME=BINARY...: runs each smc binary in turn, REPS times, the order
# alternating (forward, then reversed, ...), under flock /tmp/smc-bench.lock. Each turn:
#   smc perf --scenario=short,setup --transport=tcp,smc --duration=1s --rounds=5 -> OUT/NAME-I.jsonl
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
		"$bin" perf --scenario=short,setup --transport=tcp,smc --duration=1s --rounds=5 \
			--json-out="$out/$name-$i.jsonl" > "$out/$name-$i.txt" 2>&1
	done
	i=$((i + 1))
done' sh "$out" "$reps" "$@"
