#!/bin/bash
# prms.sh BIN OUT: perf record -g of the probe probe_smc:ms (runtime.morestack.abi0 of
# BIN, added with perf probe) in the server process (smc perf server) during a 2 s
# short run of smc perf client against it. As root.
bin=$1 out=$2
$bin perf server > $out.server.out 2>&1 &
spid=$!
for i in $(seq 50); do ctl=$(grep -o '"control":"[^"]*' $out.server.out | cut -d'"' -f4); [ -n "$ctl" ] && break; sleep 0.2; done
perf record -e probe_smc:ms -g -p $spid -o $out.server.data 2>/dev/null &
ppid=$!
$bin perf client --control=$ctl --scenario=short --transport=smc --rounds=1 --duration=2s --json-out=$out.json > $out.client.out 2>&1
kill -INT $ppid; wait $ppid
kill $spid; wait $spid
