#!/bin/bash
# Fourth campaign: run3.sh again (same binaries: main and ahead = 8984c7c), its smc perf
# part only (the in-package loop has no rounds), 4 more turns, the order reversed every
# turn; the lock taken for each command, the timeout inside it.
# Binaries from `git archive` exports: /tmp/inl/srcm (main), /tmp/inl/src3 (8984c7c).
D=$(cd "$(dirname "$0")" && pwd)/v4
mkdir -p $D/inpkg $D/pingpong
log() { echo "$* $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/log.txt; }
for r in; do
  if [ $((r % 2)) = 1 ]; then order="main ahead"; else order="ahead main"; fi
  for v in $order; do
    log "inpkg $v r$r"
    (cd /tmp/inl/src3/internal/shm && flock /tmp/smc-bench.lock timeout 600 /tmp/inl/$v/shm.test -test.run XXX \
      -test.bench 'BareRing|PingPong/processes|HotPath' -test.benchtime 1s -test.count 1 -test.timeout 10m) > $D/inpkg/$v-r$r.txt 2>&1
  done
done
for r in 1 2 3 4; do
  if [ $((r % 2)) = 1 ]; then order="main ahead"; else order="ahead main"; fi
  for v in $order; do
    log "pingpong $v r$r"
    flock /tmp/smc-bench.lock timeout 600 /tmp/inl/$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
      --json-out $D/pingpong/$v-r$r.json > $D/pingpong/$v-r$r.txt 2>&1
  done
done
log done
