#!/bin/sh
# Issue 19: A/B of two builds, alternating A B B A ... in one run.
# Usage (as root, from anywhere): ab.sh A_DIR B_DIR PAIRS OUTDIR [hot|rr]
# Each DIR holds shm.test (go test -c ./internal/shm) and smc (go build ./cmd/smc); the rr
# suite needs only smc.
# rr: per run, smc perf rr and bulk (tcp and smc, 250 ms cells, 3 rounds).
# hot (the default): per run, BenchmarkPingPong (64 B round trips; goroutines and processes, 1 MiB rings) and
# BenchmarkHotPath (one goroutine's Write+Read), -test.benchtime=1s, BenchmarkBareRing (the
# cache-line floor, from $CAL/shm.test, default B's: it moves as the host moves the
# virtual CPUs, so it tells whether both arms ran in the same regime), the processes ping-pong
# again with a 500 µs spin (-shm.spin=500us, spin500-*.txt: a spin that outlasts this
# host's wake-ups, so the run stays on the fast path and measures it), then smc perf pingpong
# (tcp and smc, 250 ms cells, 3 rounds). Each run holds flock /tmp/smc-bench.lock for its
# own duration, and runs through hiprio.sh (autogroup nice -20): the host is shared with
# other engineers' builds and tests, and without it a cross-process ping-pong mostly
# measures their load (both ends must be on a CPU at once).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
a=$1 b=$2 pairs=$3 out=$4 suite=${5:-hot}
case $suite in hot | rr) ;; *) echo "ab.sh: unknown suite $suite (hot or rr)" >&2; exit 2 ;; esac
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
	if [ $suite = rr ]; then
		flock /tmp/smc-bench.lock "$here/hiprio.sh" "$dir/smc" perf --transport=tcp,smc --scenario=rr,bulk --duration=250ms --rounds=3 --json-out="$out/perf-$i-$arm.jsonl" >"$out/perf-$i-$arm.txt" 2>&1
	else
		flock /tmp/smc-bench.lock "$here/hiprio.sh" sh -c "
			'$dir/shm.test' -test.run x -test.bench 'PingPong/(goroutines|processes)/ring=1MiB' -test.benchtime 1s >'$out/bench-$i-$arm.txt' 2>&1
			'$dir/shm.test' -test.run x -test.bench 'HotPath' -test.benchtime 1s >>'$out/bench-$i-$arm.txt' 2>&1
			'${CAL:-$b}/shm.test' -test.run x -test.bench 'BareRing' -test.benchtime 1s >>'$out/bench-$i-$arm.txt' 2>&1
			'$dir/shm.test' -test.run x -test.bench 'PingPong/processes/ring=1MiB' -test.benchtime 1s -shm.spin 500us >'$out/spin500-$i-$arm.txt' 2>&1
			'$dir/smc' perf --transport=tcp,smc --scenario=pingpong --duration=250ms --rounds=3 --json-out='$out/perf-$i-$arm.jsonl' >'$out/perf-$i-$arm.txt' 2>&1
		"
	fi
	echo "run $i ($arm) done at $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
done
