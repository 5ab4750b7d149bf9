#!/usr/bin/env python3
"""Reduces ab-perf.sh's runs (perf-N-ARM.jsonl) and ab-cost.sh's (cost-N-ARM.txt).
Per smc perf row: the median over runs of each arm of the main figure (µs p50 or
operations/s), of the client's and server's CPU per operation, and of vs tcp (the
ratio to the TCP row of the same run); B/A is the ratio of the vs tcp medians,
oriented so that more than 1 means B is better. Per benchmark metric: the medians
of the A and B runs. Usage: compare.py DIR > DIR/compare.txt"""
import glob, json, os, re, statistics, sys

d = sys.argv[1]
runs = {"A": [], "B": []}
for f in sorted(glob.glob(os.path.join(d, "perf-*-[AB].jsonl")), key=lambda p: int(os.path.basename(p).split("-")[1])):
    rows = {}
    for line in open(f):
        r = json.loads(line)
        rows[(r["scenario"], r["size"], r["conns"], r["transport"])] = r
    runs[f[-7]].append(rows)

def main(r):
    if r.get("p50_us"):
        return r["p50_us"], "µs p50"
    return r.get("ops_per_sec", 0), "/s"

print(f"smc perf: {len(runs['A'])} runs of A, {len(runs['B'])} of B")
print(f"{'row':40} {'A main':>10} {'B main':>10} {'unit':>7} {'A cpu c/s µs':>16} {'B cpu c/s µs':>16} {'A vs tcp':>8} {'B vs tcp':>8} {'B/A':>6}  modes")
keys = list(runs["A"][0].keys())
for k in keys:
    med = lambda arm, f: statistics.median(f(rs[k]) for rs in runs[arm] if k in rs)
    am, unit = med("A", lambda r: main(r)[0]), main(runs["A"][0][k])[1]
    bm = med("B", lambda r: main(r)[0])
    cpu = lambda arm: (med(arm, lambda r: r.get("client_cpu", 0)), med(arm, lambda r: r.get("server_cpu", 0)))
    (ac, asv), (bc, bsv) = cpu("A"), cpu("B")
    av, bv = med("A", lambda r: r.get("vs_tcp", 0)), med("B", lambda r: r.get("vs_tcp", 0))
    ba = f"{bv / av:.3f}" if k[3] != "tcp" and av > 0 else ""
    modes = ",".join(sorted({rs[k].get("mode") or "-" for arm in runs for rs in runs[arm] if k in rs}))
    print(f"{k[0]+' '+str(k[1])+'B x'+str(k[2])+' '+k[3]:40} {am:10.2f} {bm:10.2f} {unit:>7} {ac:7.2f}/{asv:<8.2f} {bc:7.2f}/{bsv:<8.2f} {av:8.3f} {bv:8.3f} {ba:>6}  {modes}")

cost = {"A": {}, "B": {}}
for f in glob.glob(os.path.join(d, "cost-*-[AB].txt")):
    for line in open(f):
        m = re.match(r"(Benchmark\w+)-\d+\s+\d+\s+\d+ ns/op\s+(.*)", line)
        if m:
            for v, name in re.findall(r"([-\d.]+) (\S+)", m.group(2)):
                cost[f[-5]].setdefault((m.group(1), name), []).append(float(v))
if cost["A"]:
    n = len(next(iter(cost["A"].values())))
    print()
    print(f"bench_test.go: {n} runs of A, {len(next(iter(cost['B'].values())))} of B (5000 ops each); medians over runs of each run's median")
    for k in sorted(cost["A"]):
        print(f"{k[0]:22} {k[1]:26} A {statistics.median(cost['A'][k]):9.0f}  B {statistics.median(cost['B'][k]):9.0f}")
