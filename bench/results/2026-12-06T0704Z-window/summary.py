import json, glob, statistics, sys, os, re
d = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(d, '*.jsonl'))):
    m = re.match(r'(\w+)-(old|new)-(\d)\.jsonl', os.path.basename(f))
    if not m: continue
    name, b, r = m.groups()
    for l in open(f):
        x = json.loads(l)
        rows.setdefault(((name, x['scenario'], x['size'], x['transport']), b), []).append(x)
def med(xs): return statistics.median(xs) if xs else float('nan')
def fmt(v): return f"{v:.3g}" if v < 100 else f"{v:.0f}"
keys = sorted({k for k, _ in rows})
print("| cells | scenario | size | transport | old (main) | new (window) | new/old | CPU client+server, old → new |")
print("|---|---|---|---|---|---|---|---|")
for k in keys:
    o, n = rows.get((k, 'old'), []), rows.get((k, 'new'), [])
    sc = k[1]
    if sc == 'idlemem':
        f = lambda xs: med([x['mem_cgroup'] / 1024 for x in xs])
        g = lambda xs: med([x['mem_pss'] / 1024 for x in xs])
        print(f"| {k[0]} | {sc} | {k[2]} | {k[3]} | memcg {f(o):.1f} KiB, PSS {g(o):.1f} KiB | memcg {f(n):.1f} KiB, PSS {g(n):.1f} KiB | {f(n)/f(o):.2f}× | memcg vs tcp {med([x['memcg_vs_tcp'] for x in o]):.2f}× → {med([x['memcg_vs_tcp'] for x in n]):.2f}× |")
        continue
    if sc == 'pingpong':
        f = lambda xs: med([x['p50_us'] for x in xs]); unit = 'µs p50'
    elif sc == 'bulk':
        f = lambda xs: med([x['gb_per_sec'] for x in xs]); unit = 'GB/s'
    else:
        f = lambda xs: med([x['ops_per_sec'] for x in xs]); unit = 'conn/s'
    c = lambda xs: med([x['client_cpu'] + x['server_cpu'] for x in xs])
    cu = (o or n)[0]['cpu_unit']
    print(f"| {k[0]} | {sc} | {k[2]} | {k[3]} | {fmt(f(o))} {unit} | {fmt(f(n))} {unit} | {f(n)/f(o):.3f}× | {fmt(c(o))} → {fmt(c(n))} {cu} |")
fl = {}
for f in sorted(glob.glob(os.path.join(d, 'firstlap-*.txt'))):
    b = re.match(r'firstlap-(old|new)-\d', os.path.basename(f)).group(1)
    for l in open(f):
        if l.startswith('BenchmarkFirstLap'):
            p = l.split()
            vals = {p[i+1]: float(p[i]) for i in range(4, len(p)-1, 2)}
            fl.setdefault(b, []).append(vals)
if fl:
    print()
    print("| BenchmarkFirstLap (in-process, socket wake-ups, 300 laps) | old (main) | new (window) |")
    print("|---|---|---|")
    for m in [*[m for m in ('first-ns', 'second-ns', 'first-wakes', 'second-wakes') if all(m in v for vs in fl.values() for v in vs)]]:
        print(f"| {m} median of 3 runs (runs) | {med([v[m] for v in fl.get('old', [])]):.4g} ({', '.join(f'{v[m]:.4g}' for v in fl.get('old', []))}) | {med([v[m] for v in fl.get('new', [])]):.4g} ({', '.join(f'{v[m]:.4g}' for v in fl.get('new', []))}) |")
