#!/bin/sh
cd /tmp/bulk2
cat /proc/loadavg /proc/pressure/cpu > ab/zz.load
./zz2.test -test.run XXX -test.bench 'ZZAlias/skew=/writer=/reader=copy' -test.benchtime 0.3s -test.count 3 > ab/zz-alias.txt 2>&1
cat /proc/loadavg /proc/pressure/cpu >> ab/zz.load
for v in A B; do
/tmp/bulk2/$v/smc perf --scenario=bulk --transport=smc --duration=2s --rounds=1 --cpuprofile prof/$v > prof/$v.txt 2>&1
done
cat /proc/loadavg /proc/pressure/cpu >> ab/zz.load
