#!/bin/bash
# Ring sizes 64 KiB / 256 KiB / 1 MiB alternating, quiet then under contention.
# $1 = binary, $2 = out dir
B=$1; O=$2
run() { # label size extra...
  local lab=$1 sz=$2; shift 2
  echo "== $lab size=$sz $(date -u +%H:%M:%S) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $O/log.txt
  $B perf --scenario=bulk,pingpong,rr,short --transport=tcp,smc --duration=1s --rounds=1 --buffer-size=$sz "$@" > $O/$lab-$sz.txt 2>&1
}
for r in 1 2 3; do
  for sz in 65536 262144 1048576; do run quiet-r$r $sz; done
done
for r in 1 2 3; do
  pids=()
  for c in $(seq $(nproc)); do timeout 200 sh -c 'while :; do :; done' & pids+=($!); done
  sleep 1
  for sz in 65536 262144 1048576; do run hog-r$r $sz; done
  echo "psi $(head -1 /proc/pressure/cpu)" >> $O/log.txt
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
done
for sz in 65536 262144 1048576; do
  echo "== mem size=$sz $(date -u +%H:%M:%S) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $O/log.txt
  $B perf --scenario=idlemem,many --transport=tcp,smc --rounds=1 --buffer-size=$sz > $O/mem-$sz.txt 2>&1
done
echo done >> $O/log.txt
