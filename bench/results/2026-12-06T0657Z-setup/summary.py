# summary.py DIR: medians over the runs of each binary, run kind, scenario and
# transport of the JSON rows ab.sh wrote (each row is itself a median over 5 rounds).
import json, glob, sys, statistics as st, os
d = sys.argv[1]
rows = {}
for f in sorted(glob.glob(d + '/*.jsonl')):
    name, kind, _ = os.path.basename(f)[:-len('.jsonl')].rsplit('-', 2)
    for l in open(f):
        r = json.loads(l)
        rows.setdefault((kind, r['scenario'], r['transport'], name), []).append(r)
print(f"{'run':9} {'scen':6} {'tr':4} {'binary':6} {'n':>2} {'ops/s':>7} {'p50 µs':>7} {'cli µs':>7} {'srv µs':>7} {'vs tcp':>6} {'cpu vs tcp':>10}")
for k in sorted(rows, key=lambda k: (k[0], k[1], k[2], ['base', 'A', 'B', 'C'].index(k[3]) if k[3] in ['base', 'A', 'B', 'C'] else 9)):
    rs = rows[k]
    m = lambda key: st.median([(r.get(key) or 0) for r in rs])
    p50 = st.median([(r.get('lat_p50_us') or r.get('p50_us') or 0) for r in rs])
    print(f"{k[0]:9} {k[1]:6} {k[2]:4} {k[3]:6} {len(rs):2} {m('ops_per_sec'):7.0f} {p50:7.1f} {m('client_cpu'):7.1f} {m('server_cpu'):7.1f} {m('vs_tcp'):6.3f} {m('cpu_vs_tcp'):10.3f}")
