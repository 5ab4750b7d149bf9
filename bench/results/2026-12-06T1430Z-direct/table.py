#!/usr/bin/env python3
"""Tables of bench.sh's results: python3 table.py [DIR]. Medians over runs per binary."""
import glob, json, os, re, statistics, sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
med = lambda xs: statistics.median(xs) if xs else float("nan")


def rows(sub):
    out = {}
    for f in glob.glob(os.path.join(d, sub, "*.jsonl")):
        b = os.path.basename(f).split(".")[0]
        for line in open(f):
            r = json.loads(line)
            if "scenario" not in r:
                continue
            k = (r["scenario"], r.get("size", 0), r.get("conns", 0), r["transport"])
            out.setdefault(k, {}).setdefault(b, []).append(r)
    return out


def table(sub, bins):
    rs = rows(sub)
    print(f"\n### {sub}\n")
    print("| scenario | size | conns | transport | binary | runs | ops/s | p50 µs | p99 µs | vs tcp (per run) | p99 vs tcp | cpu µs/op cli+srv |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(rs):
        for b in bins:
            x = rs[k].get(b, [])
            if not x:
                continue
            g = lambda f: med([r.get(f) or 0 for r in x])
            cpu = med([(r.get("client_cpu") or 0) + (r.get("server_cpu") or 0) for r in x])
            per = ", ".join(f"{r.get('vs_tcp') or 0:.2f}" for r in x)
            print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {b} | {len(x)} | {g('ops_per_sec'):.0f} | {g('p50_us'):.2f} | {g('p99_us'):.2f} | {g('vs_tcp'):.2f} ({per}) | {g('p99_vs_tcp'):.2f} | {cpu:.2f} |")


def nospin():
    print("\n### nospin: context switches per round trip (both processes, whole invocation)\n")
    print("| binary | transport | runs | ctx switches / op (per run) | task-clock µs / op |")
    print("|---|---|---|---|---|")
    for b in ("oldns", "newns"):
        for t in ("tcp", "smc"):
            cs, tc = [], []
            for ps in sorted(glob.glob(os.path.join(d, "nospin", f"{b}.{t}.r*.ps"))):
                js = ps[:-3] + ".jsonl"
                ops = sum(json.loads(l)["ops_per_sec"] for l in open(js) if '"scenario"' in l)
                txt = open(ps).read()
                c = float(re.search(r"^([\d.]+),,context-switches", txt, re.M).group(1))
                m = float(re.search(r"^([\d.]+),msec,task-clock", txt, re.M).group(1))
                cs.append(c / ops)
                tc.append(m * 1000 / ops)
            if cs:
                print(f"| {b} | {t} | {len(cs)} | {med(cs):.2f} ({', '.join(f'{c:.2f}' for c in cs)}) | {med(tc):.1f} |")


nospin()
table("nospin", ("oldns", "newns"))
table("normal", ("old", "new"))
table("hog", ("old", "new"))
table("short", ("old", "new"))
