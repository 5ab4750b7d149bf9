#!/bin/bash
# A/B campaign for branch latency. Binaries: /tmp/lat-NAME/{smc,shm.test}, built from
# the commits listed in README.md (go build ./cmd/smc; go test -c ./internal/shm/).
# Every invocation holds flock /tmp/smc-bench.lock; the order rotates each round.
D=$(cd "$(dirname "$0")" && pwd)
log() { echo "$* $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/log.txt; }
rot() { local r=$1; shift; local a=("$@"); local n=${#a[@]}; for i in $(seq 0 $((n-1))); do echo -n "${a[$(( (i+r) % n ))]} "; done; }
mkdir -p $D/inpkg $D/pingpong $D/rr
# 1. in-package benchmarks, every step
for r in 1 2 3; do
  for v in $(rot $r base s1 s2 s3 s4 s5); do
    log "inpkg $v r$r"
    (cd /tmp/lat-src-$v/internal/shm && flock /tmp/smc-bench.lock /tmp/lat-$v/shm.test -test.run XXX \
      -test.bench 'BareRing|PingPong/.*/ring=1MiB|HotPath' -test.benchtime 1s -test.count 1 -test.timeout 10m) > $D/inpkg/$v-r$r.txt 2>&1
  done
done
# 2a. headline: main vs branch head
for r in 1 2 3 4; do
  for v in $(rot $r base s5); do
    log "pingpong $v r$r"
    flock /tmp/smc-bench.lock /tmp/lat-$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=5 \
      --json-out $D/pingpong/$v-r$r.json > $D/pingpong/$v-r$r.txt 2>&1
  done
done
# 3. many connections: main vs branch head
for r in 1 2 3; do
  for v in $(rot $r base s5); do
    log "rr $v r$r"
    flock /tmp/smc-bench.lock /tmp/lat-$v/smc perf --scenario=rr,many --many-conns=64 --transport=tcp,smc --duration=1s --rounds=3 \
      --json-out $D/rr/$v-r$r.json > $D/rr/$v-r$r.txt 2>&1
  done
done
# 2b. intermediate steps of the headline
for r in 1 2; do
  for v in $(rot $r s3 s4 s5); do
    log "pingpong-steps $v r$r"
    flock /tmp/smc-bench.lock /tmp/lat-$v/smc perf --scenario=pingpong --transport=tcp,smc --duration=1s --rounds=3 \
      --json-out $D/pingpong/steps-$v-r$r.json > $D/pingpong/steps-$v-r$r.txt 2>&1
  done
done
log done
