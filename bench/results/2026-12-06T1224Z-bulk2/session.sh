#!/bin/sh
cd /tmp/bulk2
date -u +%Y-%m-%dT%H%MZ > ab/start
cat /proc/loadavg /proc/pressure/cpu > ab/zz.load
./zz2.test -test.run XXX -test.bench 'ZZAlias/.*/reader=copy' -test.benchtime 0.3s -test.count 3 > ab/zz-alias.txt 2>&1
cat /proc/loadavg /proc/pressure/cpu >> ab/zz.load
./ab.sh ab 5 /tmp/bulk2/A/smc /tmp/bulk2/B/smc /tmp/bulk2/shmB.test
date -u +%Y-%m-%dT%H%MZ > ab/end
