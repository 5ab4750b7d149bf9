#!/bin/sh
# usage: perfab.sh OUTDIR ROUNDS SCEN BIN_A BIN_B [extra smc perf flags]
# Alternates A and B (order reversed every round) under the bench lock.
out=$1; n=$2; scen=$3; a=$4; b=$5; shift 5
mkdir -p $out
for i in $(seq $n); do
  if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for v in $order; do
    if [ $v = A ]; then bin=$a; else bin=$b; fi
    flock /tmp/smc-bench.lock sh -c "cat /proc/loadavg /proc/pressure/cpu > $out/$v.$scen.r$i.load; $bin perf --scenario=$scen --transport=tcp,unix,smc --duration=1s --rounds=1 --json-out=$out/$v.$scen.r$i.jsonl $* > $out/$v.$scen.r$i.txt 2>&1; cat /proc/loadavg /proc/pressure/cpu >> $out/$v.$scen.r$i.load"
  done
done
