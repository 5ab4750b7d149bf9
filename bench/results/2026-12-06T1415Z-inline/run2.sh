#!/bin/bash
# Second campaign, at aa73e07 (the tag and length stored for every write): main, wonly2
# (aa73e07 with the reader ignoring the copy: `if true {` instead of the loadInline calls
# in consume and BareRing) and head2 (aa73e07), the order rotated every round; the lock
# taken for each command, the timeout inside it. Binaries from `git archive` exports:
# /tmp/inl/srcm (main), /tmp/inl/src2 (aa73e07).
D=$(cd "$(dirname "$0")" && pwd)/v2
mkdir -p $D/inpkg $D/pingpong
log() { echo "$* $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/log.txt; }
rot() { local r=$1; shift; local a=("$@"); local n=${#a[@]}; for i in $(seq 0 $((n-1))); do echo -n "${a[$(( (i+r) % n ))]} "; done; }
for r in 1 2 3 4 5 6; do
  for v in $(rot $r main wonly2 head2); do
    log "inpkg $v r$r"
    (cd /tmp/inl/src2/internal/shm && flock /tmp/smc-bench.lock timeout 600 /tmp/inl/$v/shm.test -test.run XXX \
      -test.bench 'BareRing|PingPong/processes|HotPath' -test.benchtime 1s -test.count 1 -test.timeout 10m) > $D/inpkg/$v-r$r.txt 2>&1
  done
done
for r in 1 2 3 4; do
  if [ $((r % 2)) = 1 ]; then order="main head2"; else order="head2 main"; fi
  for v in $order; do
    log "pingpong $v r$r"
    flock /tmp/smc-bench.lock timeout 600 /tmp/inl/$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
      --json-out $D/pingpong/$v-r$r.json > $D/pingpong/$v-r$r.txt 2>&1
  done
done
log done
