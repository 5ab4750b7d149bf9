#!/bin/sh
# Issue 20: what the bookkeeping costs a fallback connection, measured with the root
# package's BenchmarkDialCost and BenchmarkAcceptCost (bench_test.go), alternating
# two test binaries: A before the bookkeeping (main at 53c6a66), B after.
# Usage: ab-cost.sh A_TEST_BINARY B_TEST_BINARY PAIRS
# (run as root, under flock /tmp/smc-bench.lock): PAIRS times "A B" (as A B B A
# ...), each run 5000 ops of both benchmarks, into cost-N-ARM.txt here.
set -eu
dir=${OUT:-$(cd "$(dirname "$0")" && pwd)}
a=$1 b=$2 pairs=${3:-10}
i=${START:-0}
p=0
while [ $p -lt "$pairs" ]; do
	p=$((p + 1))
	order="A B"
	[ $((p % 2)) = 0 ] && order="B A"
	for arm in $order; do
		i=$((i + 1))
		bin=$a
		[ $arm = B ] && bin=$b
		(cd /tmp && "$bin" -test.run '^$' -test.bench 'DialCost|AcceptCost' -test.benchtime=5000x) >"$dir/cost-$i-$arm.txt"
	done
done
