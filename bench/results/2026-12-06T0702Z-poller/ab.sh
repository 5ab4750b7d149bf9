#!/bin/bash
# usage: ab.sh OUTDIR ROUNDS "perf args" bin1 bin2 ...
out=$1; rounds=$2; args=$3; shift 3
mkdir -p $out
for r in $(seq 1 $rounds); do
  for b in "$@"; do
    name=$(basename $b)
    flock /tmp/smc-bench.lock $b perf $args --rounds=1 --json-out=$out/$name.r$r.json > $out/$name.r$r.txt 2>&1
  done
done
