#!/usr/bin/env python3
"""fbsummary.py DIR: medians over the turns of fb.sh's rows (short, tcp and the two
smc-fallback rows), per binary, with each turn's ratio to tcp."""
import glob, json, os, re, statistics, sys
d = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
    m = re.match(r"(\w+)\.r(\d+)", os.path.basename(f))
    for l in open(f):
        r = json.loads(l)
        if "scenario" in r:
            runs.setdefault((m.group(1), r["transport"]), []).append(r)
print("| transport | binary | turns | ops/s | cpu client µs | cpu server µs | vs tcp | cpu vs tcp | vs tcp per turn |")
print("|---|---|---|---|---|---|---|---|---|")
for tr in ("tcp", "smc-fallback/client", "smc-fallback/server"):
    for b in ("old", "new"):
        rs = runs.get((b, tr), [])
        if not rs:
            continue
        g = lambda k: statistics.median([r.get(k) or 0 for r in rs])
        per = " ".join("%.3f" % r.get("vs_tcp", 0) for r in rs) if tr != "tcp" else ""
        print(f"| {tr} | {b} | {len(rs)} | {g('ops_per_sec'):.0f} | {g('client_cpu'):.1f} | {g('server_cpu'):.1f} | {g('vs_tcp'):.3f} | {g('cpu_vs_tcp'):.3f} | {per} |")
