#!/bin/sh
# Second batch: default 250 ms cells for pingpong and bulk (the first lap weighs more),
# and BenchmarkFirstLap, old (main a99e48e, a copy of its tree with the benchmark added) vs new.
set -u
out=${1:?dir}
cd /work/wt/window
. bench/machine.sh
machine start2 >> "$out/machine.txt"
(cd /tmp/window-main-src && go test -c -o /tmp/window-bench/shm-old.test ./internal/shm/)
go test -c -o /tmp/window-bench/shm-new.test ./internal/shm/
for r in 1 2 3; do
	if [ $r = 2 ]; then order="new old"; else order="old new"; fi
	for b in $order; do
		echo "command: /tmp/smc-$b-window perf --scenario=pingpong,bulk --transport=tcp,smc --rounds=1 --json-out=lap250-$b-$r.jsonl" >> "$out/machine.txt"
		echo "lap250-$b-$r" >> "$out/order.txt"
		/tmp/smc-$b-window perf --scenario=pingpong,bulk --transport=tcp,smc --rounds=1 --json-out="$out/lap250-$b-$r.jsonl" > "$out/lap250-$b-$r.txt" 2>&1
		echo "command: shm-$b.test -test.run=NONE -test.bench=BenchmarkFirstLap -test.benchtime=300x > firstlap-$b-$r.txt" >> "$out/machine.txt"
		echo "firstlap-$b-$r" >> "$out/order.txt"
		(cd internal/shm && /tmp/window-bench/shm-$b.test -test.run=NONE -test.bench=BenchmarkFirstLap -test.benchtime=300x > "$out/firstlap-$b-$r.txt" 2>&1)
		machine "after $b-$r" >> "$out/machine.txt"
	done
done
echo done2 >> "$out/order.txt"
