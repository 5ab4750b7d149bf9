#!/usr/bin/env python3
"""Per arm: the smc rows of every run (p50/p99 µs of ping-pong, rr ratios), and medians."""
import glob, json, statistics as st
arms = {}
for f in sorted(glob.glob("*.jsonl")):
    arm = f.split(".")[0]
    for l in open(f):
        r = json.loads(l)
        if r.get("transport") != "smc":
            continue
        k = ("pp%d" % r["size"]) if r["scenario"] == "pingpong" else ("rr%d" % r["conns"])
        v = (r["p50_us"], r["p99_us"]) if r["scenario"] == "pingpong" else (r["vs_tcp"],)
        arms.setdefault(arm, {}).setdefault(k, []).append(v)
keys = ["pp64", "pp1024", "pp16384", "pp65536", "rr1", "rr16"]
print("| arm | runs | " + " | ".join(keys) + " |")
print("|---" * (len(keys) + 2) + "|")
for arm, d in sorted(arms.items()):
    cells = []
    for k in keys:
        vs = d.get(k, [])
        if k.startswith("pp"):
            cells.append("%.2f / %.1f (p99 %s)" % (st.median(v[0] for v in vs), st.median(v[1] for v in vs), ", ".join("%.1f" % v[1] for v in vs)))
        else:
            cells.append("%.1f×" % st.median(v[0] for v in vs))
    print("| %s | %d | %s |" % (arm, len(d["pp64"]), " | ".join(cells)))
