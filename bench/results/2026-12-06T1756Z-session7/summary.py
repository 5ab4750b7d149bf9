#!/usr/bin/env python3
"""summary.py DIR: medians over the turns of ab.sh's rows, per binary (old, new):
ops/s, p50 (setup), client and server CPU per connection, ratio to the same run's tcp
row (throughput and CPU), and each turn's ratio, in turn order."""
import glob, json, os, re, statistics, sys
d = sys.argv[1]
runs = {}  # (binary, turn) -> {(scenario, transport): row}
for f in glob.glob(os.path.join(d, "*.jsonl")):
    m = re.match(r"(\w+)\.r(\d+)\.jsonl", os.path.basename(f))
    rows = {}
    for line in open(f):
        r = json.loads(line)
        if "scenario" in r:
            rows[(r["scenario"], r["transport"])] = r
    runs[(m.group(1), int(m.group(2)))] = rows
med = statistics.median
print("| scenario | transport | binary | turns | ops/s | p50 µs | cpu client µs | cpu server µs | vs tcp | cpu vs tcp | vs tcp per turn |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for sc in ("short", "setup"):
    for tr in ("tcp", "smc"):
        for b in ("old", "new"):
            rs = [(t, rows[(sc, tr)]) for (bb, t), rows in sorted(runs.items()) if bb == b and (sc, tr) in rows]
            if not rs:
                continue
            g = lambda k: med([r.get(k) or 0 for _, r in rs])
            per = " ".join(f"{r.get('vs_tcp', 0):.3f}" for _, r in rs)
            p50 = f"{g('p50_us'):.1f}" if sc == "setup" else "-"
            print(f"| {sc} | {tr} | {b} | {len(rs)} | {g('ops_per_sec'):.0f} | {p50} | {g('client_cpu'):.1f} | {g('server_cpu'):.1f} | {g('vs_tcp'):.3f} | {g('cpu_vs_tcp'):.3f} | {per if tr == 'smc' else ''} |")
# Paired per turn: new minus old CPU per connection of the smc row, each side.
print()
print("smc rows, new minus old per turn (µs CPU per connection, client / server):")
for sc in ("short", "setup"):
    out = []
    for (b, t), rows in sorted(runs.items()):
        if b != "new" or ("old", t) not in runs:
            continue
        n, o = rows.get((sc, "smc")), runs[("old", t)].get((sc, "smc"))
        if n and o:
            out.append(f"{n['client_cpu']-o['client_cpu']:+.1f}/{n['server_cpu']-o['server_cpu']:+.1f}")
    print(f"  {sc}: {' '.join(out)}")
# The gap: smc minus tcp CPU per connection within each run, each side; medians.
print()
print("smc minus tcp within each run (µs CPU per connection, client / server), median [per turn]:")
for sc in ("short", "setup"):
    for b in ("old", "new"):
        cs, ss = [], []
        for (bb, t), rows in sorted(runs.items()):
            if bb == b and (sc, "smc") in rows and (sc, "tcp") in rows:
                cs.append(rows[(sc, "smc")]["client_cpu"] - rows[(sc, "tcp")]["client_cpu"])
                ss.append(rows[(sc, "smc")]["server_cpu"] - rows[(sc, "tcp")]["server_cpu"])
        if cs:
            per = " ".join(f"{c:.0f}/{s:.0f}" for c, s in zip(cs, ss))
            print(f"  {sc} {b}: {med(cs):.1f} / {med(ss):.1f}  [{per}]")
