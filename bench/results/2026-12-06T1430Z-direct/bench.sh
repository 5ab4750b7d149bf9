#!/bin/bash
# Issue 19 direct-wait A/B: OLD (main) and NEW (direct) smc binaries alternating, order
# reversed every round, each invocation under the bench lock and a timeout.
# Usage: bench.sh OUT ROUNDS OLD NEW OLDNOSPIN NEWNOSPIN
set -u
out=$1 rounds=$2 old=$3 new=$4 oldns=$5 newns=$6
mkdir -p "$out"/nospin "$out"/normal "$out"/hog "$out"/short
bin() { case $1 in old) echo "$old";; new) echo "$new";; oldns) echo "$oldns";; newns) echo "$newns";; esac; }
order() { if [ $(($1 % 2)) = 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi; }
for r in $(seq 1 "$rounds"); do
	# 1. The spin off: context switches per transport.
	for b in $(order $r oldns newns); do
		for t in tcp smc; do
			uptime >"$out/nospin/$b.$t.r$r.load"
			flock /tmp/smc-bench.lock timeout 120 perf stat -e context-switches,task-clock -x, -o "$out/nospin/$b.$t.r$r.ps" \
				"$(bin $b)" perf --scenario=pingpong --transport=$t --duration=1s --rounds=1 \
				--json-out="$out/nospin/$b.$t.r$r.jsonl" >"$out/nospin/$b.$t.r$r.txt" 2>&1
		done
	done
	# 2. Normal builds.
	for b in $(order $r old new); do
		uptime >"$out/normal/$b.r$r.load"
		flock /tmp/smc-bench.lock timeout 300 "$(bin $b)" perf --scenario=pingpong,rr,many --transport=tcp,smc \
			--duration=1s --rounds=3 --json-out="$out/normal/$b.r$r.jsonl" >"$out/normal/$b.r$r.txt" 2>&1
	done
	# 3. One busy loop per CPU.
	for b in $(order $r old new); do
		flock /tmp/smc-bench.lock bash -c '
			pids=(); for c in $(seq $(nproc)); do timeout 120 sh -c "while :; do :; done" & pids+=($!); done
			sleep 1
			timeout 100 "$1" perf --scenario=bulk,pingpong --transport=tcp,smc --duration=1s --rounds=1 \
				--json-out="$2.jsonl" >"$2.txt" 2>&1
			head -1 /proc/pressure/cpu >"$2.psi"
			kill "${pids[@]}"; wait 2>/dev/null || true' _ "$(bin $b)" "$out/hog/$b.r$r"
	done
	# 4. Short connections (issue 18).
	for b in $(order $r old new); do
		uptime >"$out/short/$b.r$r.load"
		flock /tmp/smc-bench.lock timeout 120 "$(bin $b)" perf --scenario=short --transport=tcp,smc \
			--duration=1s --rounds=3 --json-out="$out/short/$b.r$r.jsonl" >"$out/short/$b.r$r.txt" 2>&1
	done
done
date -u >"$out/done.txt"
