#!/bin/sh
cd /tmp/bulk2
for i in 1 2 3; do
  if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for v in $order; do
    cat /proc/loadavg /proc/pressure/cpu > pp/$v.pp.r$i.load
    /tmp/bulk2/${v}2/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=3 --json-out=pp/$v.pp.r$i.jsonl > pp/$v.pp.r$i.txt 2>&1
    cat /proc/loadavg /proc/pressure/cpu >> pp/$v.pp.r$i.load
  done
done
