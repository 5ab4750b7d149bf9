#!/bin/bash
# quiet then under one busy loop per CPU; prints benchmark lines
echo "== quiet"; timeout 60 ./wk.test -test.run=^$ -test.bench=Wake -test.benchtime=1s -test.count=3 2>&1 | grep Bench
pids=(); for c in $(seq $(nproc)); do timeout 100 sh -c 'while :; do :; done' & pids+=($!); done
sleep 1
echo "== hog"; timeout 80 ./wk.test -test.run=^$ -test.bench=Wake -test.benchtime=1s -test.count=3 2>&1 | grep Bench
kill "${pids[@]}"; wait 2>/dev/null
