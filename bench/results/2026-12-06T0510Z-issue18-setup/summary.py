import json,glob,sys,statistics as st,os
d=sys.argv[1]
rows={}
for f in sorted(glob.glob(d+'/*.jsonl')):
    b=os.path.basename(f).rsplit('-',1)[0]
    for l in open(f):
        r=json.loads(l)
        k=(b,r['scenario'],r['transport'])
        rows.setdefault(k,[]).append(r)
print(f"{'binary':14} {'scen':6} {'tr':4} {'n':>2} {'ops/s':>8} {'cli µs':>7} {'srv µs':>7} {'vs tcp':>6} {'cpu vs tcp':>10}")
for k in sorted(rows):
    rs=rows[k]
    m=lambda key: st.median([r.get(key,0) or 0 for r in rs])
    ops = m('ops_per_sec') if rs[0].get('ops_per_sec') else 0
    print(f"{k[0]:14} {k[1]:6} {k[2]:4} {len(rs):2} {ops:8.0f} {m('client_cpu'):7.1f} {m('server_cpu'):7.1f} {m('vs_tcp'):6.3f} {m('cpu_vs_tcp'):10.3f}")
