#!/bin/bash
# precord.sh BIN TRANSPORT OUT: perf record -g of the server process (smc perf server) during a short run
bin=$1 tr=$2 out=$3
$bin perf server > $out.server.out 2>&1 &
spid=$!
for i in $(seq 50); do ctl=$(grep -o '"control":"[^"]*' $out.server.out | cut -d'"' -f4); [ -n "$ctl" ] && break; sleep 0.2; done
perf record -g -p $spid -o $out.server.data 2>/dev/null &
ppid=$!
perf record -g -o $out.client.data $bin perf client --control=$ctl --scenario=short --transport=$tr --rounds=1 --duration=3s --json-out=$out.json > $out.client.out 2>&1
kill -INT $ppid; wait $ppid
kill $spid; wait $spid
