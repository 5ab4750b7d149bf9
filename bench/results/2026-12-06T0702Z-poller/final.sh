#!/bin/bash
out=$1; rounds=$2
mkdir -p $out
for r in $(seq 1 $rounds); do
  for b in old final; do
    uptime > $out/$b.r$r.load
    flock /tmp/smc-bench.lock /tmp/pab/$b perf --scenario=pingpong,rr,idle,many --many-conns=64 --transport=tcp,unix,smc --duration=1s --rounds=1 --json-out=$out/$b.r$r.json > $out/$b.r$r.txt 2>&1
    flock /tmp/smc-bench.lock /tmp/pab/$b perf --scenario=many --many-conns=256 --transport=tcp,unix,smc --duration=1s --rounds=1 --json-out=$out/$b.m256.r$r.json > $out/$b.m256.r$r.txt 2>&1
  done
done
echo done > $out/DONE
