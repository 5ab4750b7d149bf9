#!/bin/sh
# Records one run of the IPPROTO_SMC cover letter's short-connection benchmark for
# fallback (issue 3) the way BENCHMARKS.md quotes it, raw, under
# bench/results/<UTC time>-issue3/: machine.txt (machine, load, commit and the
# exact command, GODEBUG included), fallback.txt (the table) and fallback.jsonl
# (the rows, with every round's rate in per_round).
#
#   bench/fallback.sh                       # 120 rounds: about 20 minutes
#   bench/fallback.sh 40                    # fewer rounds
#   GODEBUG=multipathtcp=0 bench/fallback.sh   # net.Listen plain TCP, like smc.Listen
#
# Run as root from anywhere in the repository; needs wrk and nginx
# (apt-get install wrk nginx). Extra arguments after the round count go to the
# lab (bench/lab). It holds /tmp/smc-bench.lock while it measures.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SMC_BENCH_LOCKED:-}" ]; then
	SMC_BENCH_LOCKED=1 exec flock /tmp/smc-bench.lock "$0" "$@"
fi
rounds=${1:-120}
[ $# -gt 0 ] && shift
dir=bench/results/$(date -u +%Y-%m-%dT%H%MZ)-issue3
mkdir -p "$dir"
go build -o "$dir/.lab" ./bench/lab
. bench/machine.sh
set -- --scenario=wrk --wrk-conns=128,512 --wrk-duration=1s --nginx-duration=200ms \
	--wrk-rounds="$rounds" --wrk-control "$@"
machine before >"$dir/machine.txt"
echo "command: ${GODEBUG:+GODEBUG=$GODEBUG }go run ./bench/lab $*" >>"$dir/machine.txt"
"$dir/.lab" "$@" --json-out="$dir/fallback.jsonl" | tee "$dir/fallback.txt"
machine after >>"$dir/machine.txt"
rm -f "$dir/.lab"
echo "recorded in $dir"
