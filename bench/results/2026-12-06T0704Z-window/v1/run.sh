#!/bin/sh
# A/B alternating: old = main a99e48e (/tmp/smc-old-window), new = window branch (/tmp/smc-new-window).
# Order per round: ABBA-style across rounds to spread drift. Run as root, holds the bench lock.
set -u
out=${1:?dir}
cd /work/wt/window
. bench/machine.sh
machine start > "$out/machine.txt"
step() { # bin label name args...
	bin=$1; label=$2; name=$3; shift 3
	echo "command: /tmp/smc-$bin-window perf $* --json-out=$name-$label.jsonl" >> "$out/machine.txt"
	echo "$name-$label" >> "$out/order.txt"
	/tmp/smc-$bin-window perf "$@" --json-out="$out/$name-$label.jsonl" > "$out/$name-$label.txt" 2>&1
	machine "after $name-$label" >> "$out/machine.txt"
}
for r in 1 2 3; do
	if [ $r = 2 ]; then first=new second=old; else first=old second=new; fi
	for b in $first $second; do
		step $b "$b-$r" idlemem --scenario=idlemem --transport=tcp,smc --idle-conns=1000 --rounds=1
		step $b "$b-$r" speed1s --scenario=short,pingpong,bulk --transport=tcp,smc --duration=1s --rounds=1
		step $b "$b-$r" short250 --scenario=short --transport=tcp,smc --rounds=1
	done
done
machine end >> "$out/machine.txt"
echo done >> "$out/order.txt"
