#!/usr/bin/env python3
"""Compares the A and B runs of ab.sh: the same rows, and per row the median over
runs of the main figure, of the client's and server's CPU per unit, and of vs tcp.
Usage: compare.py DIR > DIR/compare.txt"""
import glob, json, os, statistics, sys

d = sys.argv[1]
runs = {"A": [], "B": []}
for f in sorted(glob.glob(os.path.join(d, "*-[AB].jsonl")), key=lambda p: int(os.path.basename(p).split("-")[0])):
    arm = f[-7]
    rows = {}
    for line in open(f):
        r = json.loads(line)
        rows[(r["scenario"], r["size"], r["conns"], r["transport"])] = r
    runs[arm].append(rows)

def main(r):
    if r["scenario"] == "idle":
        return r.get("client_cpu", 0) + r.get("server_cpu", 0), "ms/s cpu"
    if r.get("p50_us"):
        return r["p50_us"], "µs p50"
    if r.get("gb_per_sec"):
        return r["gb_per_sec"], "GB/s"
    return r.get("ops_per_sec", 0), "/s"

keys = list(runs["A"][0].keys())
same = all(list(rs.keys()) == keys for arm in runs for rs in runs[arm])
print(f"runs: {len(runs['A'])} A, {len(runs['B'])} B; same rows in the same order in every run: {same}")
errors = [(arm, k) for arm in runs for rs in runs[arm] for k, r in rs.items() if r.get("error")]
print(f"rows with an error: {errors or 'none'}")
print()
print(f"{'row':44} {'A main':>10} {'B main':>10} {'unit':>9} {'A cpu c/s':>17} {'B cpu c/s':>17} {'A vs tcp':>8} {'B vs tcp':>8} {'B/A':>6}  modes (A | B)")
ratios = []
for k in keys:
    med = lambda arm, f: statistics.median(f(rs[k]) for rs in runs[arm])
    am, unit = med("A", lambda r: main(r)[0]), main(runs["A"][0][k])[1]
    bm = med("B", lambda r: main(r)[0])
    acpu = (med("A", lambda r: r.get("client_cpu", 0)), med("A", lambda r: r.get("server_cpu", 0)))
    bcpu = (med("B", lambda r: r.get("client_cpu", 0)), med("B", lambda r: r.get("server_cpu", 0)))
    av, bv = med("A", lambda r: r.get("vs_tcp", 0)), med("B", lambda r: r.get("vs_tcp", 0))
    modes = lambda arm: ",".join(sorted({rs[k].get("mode", "-") or "-" for rs in runs[arm]}))
    ba = ""
    if k[3] != "tcp" and av > 0 and bv > 0:
        ba = f"{bv / av:.3f}"
        ratios.append((k, bv / av))
    name = f"{k[0]} {k[1]}B x{k[2]} {k[3]}"
    print(f"{name:44} {am:10.3f} {bm:10.3f} {unit:>9} {acpu[0]:8.3f}/{acpu[1]:<8.3f} {bcpu[0]:8.3f}/{bcpu[1]:<8.3f} {av:8.3f} {bv:8.3f} {ba:>6}  {modes('A')} | {modes('B')}")
if ratios:
    rs = sorted(r for _, r in ratios)
    print()
    print(f"B/A of the median vs tcp over {len(rs)} non-tcp rows: median {statistics.median(rs):.3f}, "
          f"quartiles {rs[len(rs)//4]:.3f}-{rs[3*len(rs)//4]:.3f}, range {rs[0]:.3f}-{rs[-1]:.3f}")
