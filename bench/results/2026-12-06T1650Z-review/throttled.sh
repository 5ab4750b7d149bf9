#!/bin/bash
# usage: throttled.sh CGROUP LOG BINARY ARGS...
# Runs BINARY (a test binary built with go test -race -c) at nice 19 inside CGROUP, a
# cgroup v1 cpu-controller directory made beforehand, e.g. for 0.4 CPU:
#   mkdir /sys/fs/cgroup/cpu/review-throttle
#   echo 100000 > /sys/fs/cgroup/cpu/review-throttle/cpu.cfs_period_us
#   echo 40000  > /sys/fs/cgroup/cpu/review-throttle/cpu.cfs_quota_us
# (this host mounts cgroup v1 cpu beside the v2 hierarchy). Child processes the tests
# start stay in the cgroup.
cg=$1 log=$2; shift 2
echo $$ > "$cg/cgroup.procs"
exec env SMC_REQUIRE_PRIVILEGED=1 nice -n 19 "$@" > "$log" 2>&1
