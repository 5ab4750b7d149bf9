#!/usr/bin/env python3
"""Reduce an ab.sh output directory: medians (and min-max) per arm.

Usage: compare.py DIR   prints, per arm, the shm BenchmarkPingPong ns/op and cpu-ns/op,
and smc perf's smc/tcp ping-pong p50 and p99 per size."""
import glob, json, os, re, statistics, sys
from collections import defaultdict

d = sys.argv[1]
vals = defaultdict(lambda: defaultdict(list))
for f in sorted(glob.glob(os.path.join(d, "bench-*-*.txt")) + glob.glob(os.path.join(d, "spin500-*-*.txt"))):
    arm = f.rsplit("-", 1)[1][:-4]
    pre = "spin500 " if os.path.basename(f).startswith("spin500") else ""
    for line in open(f):
        m = re.match(r"Benchmark(PingPong|HotPath|BareRing)/?(\S*?)-\d+\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) cpu-ns/op)?", line)
        if m:
            vals[arm][pre + "shm %s/%s ns/op" % (m.group(1), m.group(2))].append(float(m.group(3)))
            if m.group(4):
                vals[arm][pre + "shm %s/%s cpu-ns/op" % (m.group(1), m.group(2))].append(float(m.group(4)))
for f in sorted(glob.glob(os.path.join(d, "perf-*-*.jsonl"))):
    arm = f.rsplit("-", 1)[1][:-6]
    for line in open(f):
        r = json.loads(line)
        if r.get("scenario") != "pingpong":
            continue
        k = "perf %s %dB" % (r["transport"], r["size"])
        vals[arm][k + " p50 us"].append(r["p50_us"])
        vals[arm][k + " p99 us"].append(r["p99_us"])
        vals[arm][k + " cpu us/op cli+srv"].append(r["client_cpu"] + r["server_cpu"])
arms = sorted(vals)
keys = sorted({k for a in arms for k in vals[a]})
print("%-44s " % "metric" + " ".join("%28s" % ("%s median [min-max] n" % a) for a in arms) + ("   B/A" if arms == ["A", "B"] else ""))
for k in keys:
    row = []
    meds = []
    for a in arms:
        v = vals[a].get(k, [])
        if v:
            med = statistics.median(v)
            meds.append(med)
            row.append("%28s" % ("%.3g [%.3g-%.3g] %d" % (med, min(v), max(v), len(v))))
        else:
            row.append("%28s" % "-")
    ratio = ("  %5.3f" % (meds[1] / meds[0])) if len(meds) == 2 and meds[0] else ""
    print("%-44s " % k + " ".join(row) + ratio)
