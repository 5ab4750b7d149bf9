#!/bin/sh
# Records issue 18's benchmarks (link groups), raw, under
# bench/results/<UTC time>-issue18-<LABEL>/, so that the same commands can be run
# before and after a change of the library:
#   headline.txt/.jsonl  short (1 KiB, 32 clients) and setup, every transport, 7 rounds
#   short1s.txt/.jsonl   short with 1 s cells, tcp and smc: are 250 ms cells long enough?
#   mem1000.txt/.jsonl   idlemem and many at 1000 connections, tcp and smc
#   mem100.txt/.jsonl    idlemem at 100 connections, tcp and smc
#   machine.txt          machine, load, commit and the commands
# Usage: bench/issue18.sh LABEL (e.g. before, after). Run as root from anywhere in
# the repository; about 4 minutes. It holds /tmp/smc-bench.lock while it measures.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${SMC_BENCH_LOCKED:-}" ]; then
	SMC_BENCH_LOCKED=1 exec flock /tmp/smc-bench.lock "$0" "$@"
fi
label=${1:?usage: bench/issue18.sh LABEL}
dir=bench/results/$(date -u +%Y-%m-%dT%H%MZ)-issue18-$label
mkdir -p "$dir"
go build -o "$dir/.smc" ./cmd/smc
. bench/machine.sh
machine before >"$dir/machine.txt"
run() {
	name=$1
	shift
	echo "command: smc perf $* --json-out=$name.jsonl > $name.txt" >>"$dir/machine.txt"
	"$dir/.smc" perf "$@" --json-out="$dir/$name.jsonl" | tee "$dir/$name.txt"
	machine "after $name" >>"$dir/machine.txt"
}
run headline --scenario=short,setup --rounds=7
run short1s --scenario=short --transport=tcp,smc --duration=1s --rounds=5
run mem1000 --scenario=idlemem,many --transport=tcp,smc --idle-conns=1000 --many-conns=1000 --rounds=3
run mem100 --scenario=idlemem --transport=tcp,smc --idle-conns=100 --rounds=3
rm -f "$dir/.smc"
echo "recorded in $dir"
