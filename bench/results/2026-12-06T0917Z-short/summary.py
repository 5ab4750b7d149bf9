# summary.py DIR: medians over the turns of each binary, scenario and transport of the
# JSON rows ab.sh wrote (each row is itself a median over 5 rounds). CPU is µs per
# connection and side.
import json, glob, sys, statistics as st, os
d = sys.argv[1]
rows = {}
for f in sorted(glob.glob(d + '/*.jsonl')):
    name, _ = os.path.basename(f)[:-len('.jsonl')].rsplit('-', 1)
    for l in open(f):
        r = json.loads(l)
        rows.setdefault((r['scenario'], r['transport'], name), []).append(r)
print(f"{'scen':6} {'tr':4} {'binary':6} {'n':>2} {'ops/s':>7} {'p50 µs':>7} {'cli µs':>7} {'srv µs':>7} {'vs tcp':>6} {'cpu vs tcp':>10}   per turn: vs tcp")
for k in sorted(rows, key=lambda k: (k[0], k[1], k[2] != 'main')):
    rs = rows[k]
    m = lambda key: st.median([(r.get(key) or 0) for r in rs])
    turns = ' '.join(f"{(r.get('vs_tcp') or 0):.3f}" for r in rs)
    print(f"{k[0]:6} {k[1]:4} {k[2]:6} {len(rs):2} {m('ops_per_sec'):7.0f} {m('p50_us'):7.1f} {m('client_cpu'):7.1f} {m('server_cpu'):7.1f} {m('vs_tcp'):6.3f} {m('cpu_vs_tcp'):10.3f}   {turns}")
