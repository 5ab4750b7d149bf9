#!/bin/bash
# OLD and NEW under one busy loop per CPU, default ring, then NEW with 1 MiB rings:
# ROUNDS rounds, order reversed every round, the busy loops started and killed per run
# (all inside one hold of the bench lock per run).
# Usage: hog.sh OUT ROUNDS OLD NEW
set -eu
out=$1 rounds=$2 old=$3 new=$4
mkdir -p "$out"
one() { # label bin size
	flock /tmp/smc-bench.lock bash -c '
		pids=(); for c in $(seq $(nproc)); do timeout 120 sh -c "while :; do :; done" & pids+=($!); done
		sleep 1
		timeout 300 "$2" perf --scenario=pingpong,bulk,rr --transport=tcp,smc --duration=1s --rounds=1 --buffer-size=$3 \
			--json-out="$4/$1.jsonl" >"$4/$1.txt" 2>&1
		head -1 /proc/pressure/cpu >"$4/$1.psi"
		kill "${pids[@]}"; wait 2>/dev/null || true' _ "$1" "$2" "$3" "$out"
}
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="old new new1M"; else order="new1M new old"; fi
	for b in $order; do
		case $b in old) one old.r$r "$old" 0 ;; new) one new.r$r "$new" 0 ;; new1M) one new1M.r$r "$new" 1048576 ;; esac
	done
done
