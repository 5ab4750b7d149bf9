#!/bin/sh
# Records the runs BENCHMARKS.md quotes, raw, under bench/results/<UTC time>/:
# the default smc perf table (every scenario; shmipc at all of shmipc-go's own
# benchmark sizes instead of the default four) and a longer A/B run of the
# IPPROTO_SMC cover letter's short-connection benchmark (issue 3), with an
# A/A control row (tcp measured twice) that shows the noise floor.
# Run as root from anywhere in the repository; needs wrk and nginx
# (apt-get install wrk nginx), otherwise those rows say "unavailable".
set -eu
cd "$(dirname "$0")/.."
dir=bench/results/$(date -u +%Y-%m-%dT%H%MZ)
mkdir -p "$dir"
go build -o "$dir/.smc" ./cmd/smc
. bench/machine.sh
machine before >"$dir/machine.txt"
"$dir/.smc" perf --json-out="$dir/perf.jsonl" \
	--shmipc-sizes=64,512,1024,4096,16384,32768,65536,262144,524288,1048576,4194304 "$@" | tee "$dir/perf.txt"
machine between >>"$dir/machine.txt"
"$dir/.smc" perf --scenario=wrk --wrk-duration=2s --wrk-rounds=7 --wrk-control --json-out="$dir/fallback.jsonl" | tee "$dir/fallback.txt"
machine after >>"$dir/machine.txt"
rm -f "$dir/.smc"
echo "recorded in $dir"
