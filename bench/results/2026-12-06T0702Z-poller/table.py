#!/usr/bin/env python3
"""Medians per (scenario, size, conns, transport, binary) over the rounds of an A/B run."""
import json, glob, sys, statistics, collections, os
d = sys.argv[1]
rows = collections.defaultdict(list)
for f in sorted(glob.glob(d + '/*.jsonl')):
    b = os.path.basename(f).split('.')[0]
    for line in open(f):
        if line.strip():
            j = json.loads(line)
            rows[(j['scenario'], j.get('size', 0), j.get('conns', 0), j['transport'], b)].append(j)
def med(js, f):
    v = [j[f] for j in js if isinstance(j.get(f), (int, float))]
    return statistics.median(v) if v else None
def fmt(v, unit=''):
    if v is None: return '-'
    if abs(v) >= 1e6: return f'{v/1e6:.2f}M{unit}'
    if abs(v) >= 1e3: return f'{v/1e3:.1f}k{unit}'
    return f'{v:.3g}{unit}'
order = ['pingpong', 'bulk', 'rr', 'many', 'idle']
keys = sorted({k[:4] for k in rows}, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[1], k[2], ['tcp', 'unix', 'smc'].index(k[3]) if k[3] in ('tcp','unix','smc') else 9))
print('| scenario | size | conns | transport | binary | n | result | p99 | cpu cli | cpu srv | unit | vs tcp (same binary) | /old |')
print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
for k in keys:
    res = {}
    for b in ['old'] + sorted({x[4] for x in rows} - {'old'}):
        js = rows.get(k + (b,))
        if not js: continue
        sc = k[0]
        if sc == 'pingpong':
            r, p99 = med(js, 'p50_us'), med(js, 'p99_us'); rs = f'p50 {r:.2f}µs' if r else '-'; ps = f'{p99:.1f}µs' if p99 else '-'
        elif sc == 'bulk':
            r = med(js, 'gb_per_sec'); rs = f'{r:.2f} GB/s' if r else '-'; ps = '-'
        elif sc == 'idle':
            r = None; rs = 'idle'; ps = '-'
        else:
            r = med(js, 'ops_per_sec'); rs = fmt(r, '/s'); ps = '-'
        res[b] = r
        cc, cs = med(js, 'client_cpu'), med(js, 'server_cpu')
        vt = med(js, 'vs_tcp')
        unit = js[0].get('cpu_unit', '')
        ratio = ''
        if b != 'old' and res.get('old') and r:
            ratio = f'{(res["old"]/r if sc=="pingpong" else r/res["old"]):.2f}x'
        errs = sum(1 for j in js if j.get('error'))
        print(f'| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {b} | {len(js)}{" ("+str(errs)+" err)" if errs else ""} | {rs} | {ps} | {fmt(cc)} | {fmt(cs)} | {unit} | {fmt(vt) if vt else "-"} | {ratio} |')
