#!/usr/bin/env python3
"""Reduce an output directory of ab.sh … rr: per row, medians [min-max] per arm and B/A.

Usage: compare-rr.py DIR"""
import glob, json, os, statistics, sys
from collections import defaultdict

v = defaultdict(lambda: defaultdict(list))
for f in sorted(glob.glob(os.path.join(sys.argv[1], "perf-*-*.jsonl"))):
    arm = f.rsplit("-", 1)[1][0]
    for line in open(f):
        r = json.loads(line)
        k = "%s %d x%d %s" % (r["scenario"], r["size"], r["conns"], r["transport"])
        if r["scenario"] == "bulk":
            v[k + " GB/s"][arm].append(r["gb_per_sec"])
        else:
            v[k + " ops/s"][arm].append(r["ops_per_sec"])
        v[k + " cpu cli+srv (" + r["cpu_unit"] + ")"][arm].append(r["client_cpu"] + r["server_cpu"])
        if r["transport"] == "smc" and "vs_tcp" in r:
            v[k + " vs tcp"][arm].append(r["vs_tcp"])
for k in sorted(v):
    a, b = v[k]["A"], v[k]["B"]
    ma, mb = statistics.median(a), statistics.median(b)
    print("%-40s A %9.4g [%.4g-%.4g]  B %9.4g [%.4g-%.4g]  B/A %.3f" % (k, ma, min(a), max(a), mb, min(b), max(b), mb / ma))
