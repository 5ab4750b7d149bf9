#!/bin/bash
# Bulk only, main vs ring alternating (order swapped every round), quiet, 8 rounds.
O=$1
for r in 1 2 3 4 5 6 7 8; do
  if [ $((r % 2)) = 1 ]; then order="main ring"; else order="ring main"; fi
  for b in $order; do
    bin=/tmp/ring-main/smc; [ $b = ring ] && bin=/tmp/ring-new/smc
    echo "== bulk-r$r-$b $(date -u +%H:%M:%S) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $O/log.txt
    $bin perf --scenario=bulk --transport=tcp,smc --duration=1s --rounds=1 > $O/bulk-r$r-$b.txt 2>&1
  done
done
