#!/bin/sh
cd /tmp/bulk2
date -u +%Y-%m-%dT%H%MZ > ab3/start
./ab.sh ab3 5 /tmp/bulk2/A2/smc /tmp/bulk2/B2/smc /tmp/bulk2/shmB2.test
date -u +%Y-%m-%dT%H%MZ > ab3/end
