#!/bin/bash
# pstat.sh BIN TRANSPORT OUT: perf stat each side separately (client: smc perf client, server: smc perf server)
bin=$1 tr=$2 out=$3
perf stat -e task-clock,context-switches,cpu-migrations -o $out.server.stat $bin perf server > $out.server.out 2>&1 &
spid=$!
for i in $(seq 50); do ctl=$(grep -o '"control":"[^"]*' $out.server.out | cut -d'"' -f4); [ -n "$ctl" ] && break; sleep 0.2; done
perf stat -e task-clock,context-switches,cpu-migrations -o $out.client.stat $bin perf client --control=$ctl --scenario=short --transport=$tr --rounds=1 --duration=3s --json-out=$out.json > $out.client.out 2>&1
kill -INT $(pgrep -P $spid); wait $spid
