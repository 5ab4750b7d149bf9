#!/bin/bash
# Third part, in one hold of /tmp/smc-bench.lock: the host's cache-line floor changed
# between the headline runs of run2.sh (slow placement) and its last runs (fast), so the
# headline is repeated, base and s5 alternated, and the in-package set once more.
# Run as: flock /tmp/smc-bench.lock run3.sh
D=$(cd "$(dirname "$0")" && pwd)
log() { echo "$* $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/log.txt; }
rot() { local r=$1; shift; local a=("$@"); local n=${#a[@]}; for i in $(seq 0 $((n-1))); do echo -n "${a[$(( (i+r) % n ))]} "; done; }
mkdir -p $D/pingpong3 $D/rr3
for r in 1 2 3 4; do
  for v in $(rot $r base s5); do
    log "pingpong3 $v r$r"
    /tmp/lat-$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
      --json-out $D/pingpong3/$v-r$r.json > $D/pingpong3/$v-r$r.txt 2>&1
  done
done
for v in $(rot 3 base s1 s2 s3 s4 s5); do
  log "inpkg $v r3"
  (cd /tmp/lat-src-$v/internal/shm && /tmp/lat-$v/shm.test -test.run XXX \
    -test.bench 'BareRing|PingPong/.*/ring=1MiB|HotPath' -test.benchtime 1s -test.count 1 -test.timeout 10m) > $D/inpkg/$v-r3.txt 2>&1
done
for v in base s5; do
  log "rr3 $v r1"
  /tmp/lat-$v/smc perf --scenario=rr,many --many-conns=64 --transport=tcp,smc --duration=1s --rounds=3 \
    --json-out $D/rr3/$v-r1.json > $D/rr3/$v-r1.txt 2>&1
done
log done
