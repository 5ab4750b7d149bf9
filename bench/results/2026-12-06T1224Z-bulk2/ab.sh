#!/bin/sh
# usage: ab.sh OUTDIR TURNS BIN_A BIN_B SHMTEST   (run under flock /tmp/smc-bench.lock)
# Alternates A and B smc perf bulk runs, order reversed every turn, with BareBulk/BareRing
# of SHMTEST before and after.
out=$1; n=$2; a=$3; b=$4; t=$5
mkdir -p $out
bare() {
  cat /proc/loadavg /proc/pressure/cpu > $out/bare.$1.load
  $t -test.run XXX -test.bench 'BareRing|BareBulk/ring=64KiB/writer=(store|copy)/reader=copy' -test.benchtime 0.3s -test.count 3 > $out/bare.$1.txt 2>&1
  cat /proc/loadavg /proc/pressure/cpu >> $out/bare.$1.load
}
bare before
for i in $(seq $n); do
  if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for v in $order; do
    if [ $v = A ]; then bin=$a; else bin=$b; fi
    cat /proc/loadavg /proc/pressure/cpu > $out/$v.bulk.r$i.load
    $bin perf --scenario=bulk --transport=tcp,unix,smc --duration=1s --rounds=3 --json-out=$out/$v.bulk.r$i.jsonl > $out/$v.bulk.r$i.txt 2>&1
    cat /proc/loadavg /proc/pressure/cpu >> $out/$v.bulk.r$i.load
  done
done
bare after
