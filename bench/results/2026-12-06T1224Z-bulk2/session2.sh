#!/bin/sh
cd /tmp/bulk2
date -u +%Y-%m-%dT%H%MZ > ab2/start
./ab.sh ab2 5 /tmp/bulk2/A/smc /tmp/bulk2/B/smc /tmp/bulk2/shmB.test
date -u +%Y-%m-%dT%H%MZ > ab2/end
