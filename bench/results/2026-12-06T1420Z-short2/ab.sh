#!/bin/bash
# A/B for issue 18: OLD and NEW smc binaries alternating (order reversed every turn),
# TURNS turns, each binary once per turn:
#   smc perf $SCEN --duration=1s --rounds=5
# with SCEN="--scenario=short,setup --transport=tcp,smc" unless set (fb:
# SCEN="--scenario=short --transport=tcp,smc-fallback").
# Every run holds /tmp/smc-bench.lock, with its timeout inside the lock.
# Usage: [SCEN=...] ab.sh OUT TURNS OLD NEW   (as root)
set -u
out=$1 turns=$2 old=$3 new=$4
scen=${SCEN:---scenario=short,setup --transport=tcp,smc}
mkdir -p "$out"
for r in $(seq 1 "$turns"); do
	if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
	for b in $order; do
		if [ $b = old ]; then bin=$old; else bin=$new; fi
		flock /tmp/smc-bench.lock sh -c "uptime >'$out/$b.r$r.load'; timeout 300 '$bin' perf $scen \
			--duration=1s --rounds=5 --json-out='$out/$b.r$r.jsonl' >'$out/$b.r$r.txt' 2>&1"
	done
done
