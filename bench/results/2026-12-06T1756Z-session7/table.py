#!/usr/bin/env python3
"""Medians over rounds per binary of the ab.sh rows: python3 table.py [DIR]."""
import glob, json, os, statistics, sys
d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
rows = {}
for f in glob.glob(os.path.join(d, "*.jsonl")):
    b = os.path.basename(f).split(".")[0]
    for line in open(f):
        r = json.loads(line)
        if "scenario" not in r:
            continue
        k = (r["scenario"], r.get("size", 0), r.get("conns", 0), r["transport"])
        rows.setdefault(k, {}).setdefault(b, []).append(r)
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("| scenario | size | conns | transport | binary | n | ops/s | p50 µs | p99 µs | vs tcp | p99 vs tcp | cpu cli+srv | unit |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in sorted(rows):
    for b in ("old", "new"):
        rs = rows[k].get(b, [])
        if not rs:
            continue
        g = lambda f: med([r.get(f) or 0 for r in rs])
        cpu = med([(r.get("client_cpu") or 0) + (r.get("server_cpu") or 0) for r in rs])
        print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {b} | {len(rs)} | {g('ops_per_sec'):.0f} | {g('p50_us'):.2f} | {g('p99_us'):.2f} | {g('vs_tcp'):.2f} | {g('p99_vs_tcp'):.2f} | {cpu:.2f} | {rs[0].get('cpu_unit','')} |")
