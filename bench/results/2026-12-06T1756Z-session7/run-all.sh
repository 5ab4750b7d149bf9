#!/bin/bash
# The seventh session's end-of-session runs, one after the other, on a quiet host:
# issue 18's rows (4 alternating rounds), issue 19's rows (2 alternating rounds, a
# regression check: the data path did not change) and the CLC floor (2 runs).
# Usage: run-all.sh OLD NEW CLCFLOOR   (run as root from this directory)
set -eu
old=$1 new=$2 floor=$3
../2026-12-06T1530Z-session6/ab18.sh ab18 4 "$old" "$new" >ab18.log 2>&1
../2026-12-06T1530Z-session6/ab.sh ab19 2 "$old" "$new" >ab19.log 2>&1
for i in 1 2; do
	uptime >"floor.$i.load"
	flock /tmp/smc-bench.lock timeout 300 "$floor" -rounds=6 >"floor.$i.txt" 2>&1
done
date >done.txt
