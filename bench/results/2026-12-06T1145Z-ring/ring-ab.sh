#!/bin/bash
# A/B main vs ring binary, alternating, default ring and 1 MiB, quiet then hog.
O=$1
run() { # label bin size
  echo "== $1 $(date -u +%H:%M:%S) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $O/log.txt
  $2 perf --scenario=bulk,pingpong,rr,short --transport=tcp,smc --duration=1s --rounds=1 --buffer-size=$3 > $O/$1.txt 2>&1
}
for r in 1 2 3; do
  run ab-quiet-r$r-main /tmp/ring-main/smc 0
  run ab-quiet-r$r-ring /tmp/ring-new/smc 0
done
for r in 1 2 3; do
  pids=()
  for c in $(seq $(nproc)); do timeout 200 sh -c 'while :; do :; done' & pids+=($!); done
  sleep 1
  run ab-hog-r$r-main /tmp/ring-main/smc 0
  run ab-hog-r$r-ring /tmp/ring-new/smc 0
  run ab-hog-r$r-main1M /tmp/ring-main/smc 1048576
  run ab-hog-r$r-ring1M /tmp/ring-new/smc 1048576
  echo "psi $(head -1 /proc/pressure/cpu)" >> $O/log.txt
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
done
for b in main ring; do
  echo "== mem $b $(date -u +%H:%M:%S) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $O/log.txt
  /tmp/ring-$([ $b = main ] && echo main || echo new)/smc perf --scenario=idlemem,many --transport=tcp,smc --rounds=1 > $O/ab-mem-$b.txt 2>&1
  /tmp/ring-$([ $b = main ] && echo main || echo new)/smc perf --scenario=idlemem --transport=smc --rounds=1 --buffer-size=1048576 > $O/ab-mem1M-$b.txt 2>&1
done
echo done >> $O/log.txt
