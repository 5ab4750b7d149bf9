#!/bin/bash
# A/B of main, wonly (the writer makes the inline copy, the reader ignores it) and head
# (this branch), alternating, the order rotated every round; the lock is taken for each
# command, the timeout inside it. Binaries: /tmp/inl/{main,wonly,head}/{smc,shm.test}
# built from `git archive` exports (/tmp/inl/srcm = main, /tmp/inl/src = head; wonly
# is head with `if true {` instead of the loadInline calls in consume and BareRing).
D=$(cd "$(dirname "$0")" && pwd)/v1
log() { echo "$* $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/log.txt; }
rot() { local r=$1; shift; local a=("$@"); local n=${#a[@]}; for i in $(seq 0 $((n-1))); do echo -n "${a[$(( (i+r) % n ))]} "; done; }
for r in 1 2 3 4; do
  for v in $(rot $r main wonly head); do
    log "inpkg $v r$r"
    (cd /tmp/inl/src/internal/shm && flock /tmp/smc-bench.lock timeout 600 /tmp/inl/$v/shm.test -test.run XXX \
      -test.bench 'BareRing|PingPong/processes|HotPath' -test.benchtime 1s -test.count 1 -test.timeout 10m) > $D/inpkg/$v-r$r.txt 2>&1
  done
done
for r in 1 2 3 4; do
  for v in $(rot $r main wonly head); do
    log "pingpong $v r$r"
    flock /tmp/smc-bench.lock timeout 600 /tmp/inl/$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
      --json-out $D/pingpong/$v-r$r.json > $D/pingpong/$v-r$r.txt 2>&1
  done
done
log done
