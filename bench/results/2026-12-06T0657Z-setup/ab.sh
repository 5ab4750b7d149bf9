#!/bin/sh
# ab.sh OUT REPS NAME=BINARY...: runs each smc binary in turn, REPS times, the order
# alternating (forward, then reversed, ...), under flock /tmp/smc-bench.lock. Each turn
# is two runs:
#   smc perf --scenario=short,setup --transport=tcp,smc --rounds=5             -> OUT/NAME-headline-I.jsonl
#   smc perf --scenario=short --transport=tcp,smc --duration=1s --rounds=5     -> OUT/NAME-short1s-I.jsonl
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
		"$bin" perf --scenario=short,setup --transport=tcp,smc --rounds=5 \
			--json-out="$out/$name-headline-$i.jsonl" >/dev/null 2>&1
		"$bin" perf --scenario=short --transport=tcp,smc --duration=1s --rounds=5 \
			--json-out="$out/$name-short1s-$i.jsonl" >/dev/null 2>&1
	done
	i=$((i + 1))
done' sh "$out" "$reps" "$@"
