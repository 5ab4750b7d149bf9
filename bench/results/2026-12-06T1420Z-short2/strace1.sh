#!/bin/bash
# strace1.sh BIN TRANSPORT OUTPREFIX: strace -f -c each side separately
bin=$1 tr=$2 out=$3
strace -f -c -o $out.server.strace $bin perf server > $out.server.out 2>&1 &
spid=$!
for i in $(seq 50); do ctl=$(grep -o '"control":"[^"]*' $out.server.out | cut -d'"' -f4); [ -n "$ctl" ] && break; sleep 0.2; done
cat $out.server.out
strace -f -c -o $out.client.strace $bin perf client --control=$ctl --scenario=short --transport=$tr --rounds=1 --duration=2s > $out.client.out 2>&1
kill $spid; wait $spid
