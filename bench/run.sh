#!/bin/sh
# Records the runs BENCHMARKS.md quotes, raw, under bench/results/<UTC time>/:
#   perf.txt, perf.jsonl          smc perf's default table (tcp, unix, smc, fallback)
#   shmipc.txt, shmipc.jsonl      the lab's shmipc-go comparison at all 11 sizes of
#                                 shmipc-go's own benchmark
#   fallback.txt, fallback.jsonl  the lab's wrk/nginx table (the IPPROTO_SMC cover
#                                 letter's, for fallback), 7 rounds with an A/A control
#   machine.txt                   machine, load, commit and the commands
# Run as root from anywhere in the repository; about 6 minutes. Needs wrk and nginx
# (apt-get install wrk nginx), otherwise those rows say "unavailable". Extra
# arguments go to smc perf. It holds /tmp/smc-bench.lock while it measures.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SMC_BENCH_LOCKED:-}" ]; then
	SMC_BENCH_LOCKED=1 exec flock /tmp/smc-bench.lock "$0" "$@"
fi
dir=bench/results/$(date -u +%Y-%m-%dT%H%MZ)
mkdir -p "$dir"
go build -o "$dir/.smc" ./cmd/smc
go build -o "$dir/.lab" ./bench/lab
. bench/machine.sh
sizes=64,512,1024,4096,16384,32768,65536,262144,524288,1048576,4194304
wrk="--scenario=wrk --wrk-duration=2s --wrk-rounds=7 --wrk-control"
machine before >"$dir/machine.txt"
{
	echo "command: smc perf --json-out=perf.jsonl $*"
	echo "command: go run ./bench/lab --scenario=shmipc --shmipc-sizes=$sizes --json-out=shmipc.jsonl"
	echo "command: go run ./bench/lab $wrk --json-out=fallback.jsonl"
} >>"$dir/machine.txt"
"$dir/.smc" perf --json-out="$dir/perf.jsonl" "$@" | tee "$dir/perf.txt"
machine between >>"$dir/machine.txt"
"$dir/.lab" --scenario=shmipc --shmipc-sizes=$sizes --json-out="$dir/shmipc.jsonl" | tee "$dir/shmipc.txt"
machine between >>"$dir/machine.txt"
# shellcheck disable=SC2086 # $wrk is a list of flags
"$dir/.lab" $wrk --json-out="$dir/fallback.jsonl" | tee "$dir/fallback.txt"
machine after >>"$dir/machine.txt"
rm -f "$dir/.smc" "$dir/.lab"
echo "recorded in $dir"
