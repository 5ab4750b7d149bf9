#!/bin/sh
# A/B alternating: old = main (/tmp/smc-old-window; shm-old.test from main's tree plus
# BenchmarkFirstLap), new = the window branch. Run as root under flock /tmp/smc-bench.lock.
set -u
out=${1:?dir}
cd /work/wt/window
. bench/machine.sh
machine start > "$out/machine.txt"
(cd /tmp/window-main-src && go test -c -o /tmp/window-bench/shm-old.test ./internal/shm/)
go test -c -o /tmp/window-bench/shm-new.test ./internal/shm/
step() { # bin name args...
	bin=$1; name=$2; shift 2
	echo "command: /tmp/smc-$bin-window perf $* --json-out=$name.jsonl > $name.txt" >> "$out/machine.txt"
	echo "$name" >> "$out/order.txt"
	/tmp/smc-$bin-window perf "$@" --json-out="$out/$name.jsonl" > "$out/$name.txt" 2>&1
}
for r in 1 2 3; do
	if [ $r = 2 ]; then order="new old"; else order="old new"; fi
	for b in $order; do
		step $b idlemem-$b-$r --scenario=idlemem --transport=tcp,smc --idle-conns=1000 --rounds=1
		step $b speed1s-$b-$r --scenario=short,pingpong,bulk --transport=tcp,smc --duration=1s --rounds=1
		step $b lap250-$b-$r --scenario=short,pingpong,bulk --transport=tcp,smc --rounds=1
		echo "command: (cd internal/shm && shm-$b.test -test.run=NONE -test.bench=BenchmarkFirstLap -test.benchtime=300x) > firstlap-$b-$r.txt" >> "$out/machine.txt"
		echo "firstlap-$b-$r" >> "$out/order.txt"
		(cd internal/shm && /tmp/window-bench/shm-$b.test -test.run=NONE -test.bench=BenchmarkFirstLap -test.benchtime=300x > "$out/firstlap-$b-$r.txt" 2>&1)
		machine "after $b-$r" >> "$out/machine.txt"
	done
done
echo done >> "$out/order.txt"
