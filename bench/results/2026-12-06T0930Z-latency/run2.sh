#!/bin/bash
# Second part of the campaign, in one hold of /tmp/smc-bench.lock (run.sh took the lock per
# invocation and waited about 5 minutes for each; it was stopped after round 1 of the
# in-package benchmarks). Run as: flock /tmp/smc-bench.lock run2.sh
D=$(cd "$(dirname "$0")" && pwd)
log() { echo "$* $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/log.txt; }
rot() { local r=$1; shift; local a=("$@"); local n=${#a[@]}; for i in $(seq 0 $((n-1))); do echo -n "${a[$(( (i+r) % n ))]} "; done; }
# 1. in-package benchmarks, every step, round 2
for v in $(rot 2 base s1 s2 s3 s4 s5); do
  log "inpkg $v r2"
  (cd /tmp/lat-src-$v/internal/shm && /tmp/lat-$v/shm.test -test.run XXX \
    -test.bench 'BareRing|PingPong/.*/ring=1MiB|HotPath' -test.benchtime 1s -test.count 1 -test.timeout 10m) > $D/inpkg/$v-r2.txt 2>&1
done
# 2a. headline: main vs branch head, 4 rounds each
for r in 1 2 3 4; do
  for v in $(rot $r base s5); do
    log "pingpong $v r$r"
    /tmp/lat-$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
      --json-out $D/pingpong/$v-r$r.json > $D/pingpong/$v-r$r.txt 2>&1
  done
done
# 3. many connections: main vs branch head, 2 rounds each
for r in 1 2; do
  for v in $(rot $r base s5); do
    log "rr $v r$r"
    /tmp/lat-$v/smc perf --scenario=rr,many --many-conns=64 --transport=tcp,smc --duration=1s --rounds=3 \
      --json-out $D/rr/$v-r$r.json > $D/rr/$v-r$r.txt 2>&1
  done
done
# 2b. the intermediate steps of the headline, one run each (s5's are the headline's)
for v in s3 s4; do
  log "pingpong-steps $v r1"
  /tmp/lat-$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
    --json-out $D/pingpong/steps-$v-r1.json > $D/pingpong/steps-$v-r1.txt 2>&1
done
log done
