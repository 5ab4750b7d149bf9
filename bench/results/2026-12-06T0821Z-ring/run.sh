#!/bin/bash
# Ring sizes alternated: 3 rounds, the order rotated each round, then (unless
# IDLEMEM=0) one idlemem run per size. Usage: run.sh OUTDIR
# Set 1: run.sh set1; set 2: IDLEMEM=0 run.sh set2.
set -u
B=${SMC:-./smc}  # go build -o smc ./cmd/smc at commit c5faa15
O=$1
mkdir -p $O
sizes=(65536 262144 1048576)
for r in 0 1 2; do
  for i in 0 1 2; do
    s=${sizes[$(( (i + r) % 3 ))]}
    echo "$(date -u +%T) round $r size $s load $(cut -d' ' -f1-3 /proc/loadavg)" >> $O/log
    flock /tmp/smc-bench.lock $B perf --scenario=bulk,pingpong --transport=tcp,smc --duration=1s --rounds=1 --buffer-size=$s --json-out=$O/r$r-$s.json > $O/r$r-$s.txt 2>&1
    echo "rc=$?" >> $O/log
  done
done
if [ "${IDLEMEM:-1}" != 0 ]; then
  for s in "${sizes[@]}"; do
    echo "$(date -u +%T) idlemem size $s load $(cut -d' ' -f1-3 /proc/loadavg)" >> $O/log
    flock /tmp/smc-bench.lock $B perf --scenario=idlemem --idle-conns=100 --transport=tcp,smc --rounds=1 --buffer-size=$s --json-out=$O/idlemem-$s.json > $O/idlemem-$s.txt 2>&1
    echo "rc=$?" >> $O/log
  done
fi
echo done >> $O/log
