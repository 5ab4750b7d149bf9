#!/bin/bash
# A/B alternating: base (main afb7403) vs new, pingpong; $1 = rounds of alternation
out=/tmp/lat-ab/pingpong
mkdir -p $out
for r in $(seq 1 $1); do
  for v in base s4; do
    echo "== $v round $r $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)" >> $out/log.txt
    flock /tmp/smc-bench.lock /tmp/lat-$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=3 --json-out $out/$v-$r.json > $out/$v-$r.txt 2>&1
  done
done
echo done >> $out/log.txt
