#!/usr/bin/env python3
"""Summarise run.sh's results: per binary, the median (and min) over runs of each
in-package benchmark, and of smc perf's pingpong rows. Usage: summarize.py [DIR] [SUBDIR...]"""
import glob, json, os, re, statistics, sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
subs = sys.argv[2:] or ['']
med = statistics.median
vs = ['main', 'wonly', 'head', 'wonly2', 'head2', 'ahead']

for sub in subs:
    print('## In-package %s (ns/op median [min] over runs; cpu-ns/op median)\n' % (sub or ''))
    bench = {}
    for f in sorted(glob.glob(os.path.join(d, sub, 'inpkg', '*.txt'))):
        v = os.path.basename(f).split('-r')[0]
        for line in open(f):
            m = re.match(r'(Benchmark\S+?)-\d+\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) cpu-ns/op)?', line)
            if m:
                bench.setdefault(m.group(1), {}).setdefault(v, []).append((float(m.group(2)), float(m.group(3) or 0)))
    print('| benchmark | ' + ' | '.join(vs) + ' |')
    print('|---|' + '---|' * len(vs))
    for b in sorted(bench):
        cells = []
        for v in vs:
            xs = bench[b].get(v, [])
            if not xs:
                cells.append('-'); continue
            c = '%.0f [%.0f]' % (med(x for x, _ in xs), min(x for x, _ in xs))
            if any(y for _, y in xs):
                c += ' (%.0f)' % med(y for _, y in xs)
            c += ' n=%d' % len(xs)
            cells.append(c)
        print('| %s | %s |' % (b.replace('Benchmark', ''), ' | '.join(cells)))
    print()
    rows = {}
    for f in sorted(glob.glob(os.path.join(d, sub, 'pingpong', '*.json'))):
        v = os.path.basename(f).split('-r')[0]
        for line in open(f):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            rows.setdefault(v, []).append(r)
    if rows:
        print('## smc perf pingpong %s: medians over runs of each run\'s figures (p50 and p99 in us, CPU us/op client+server, ratio to TCP in the same run)\n' % sub)
        print('| binary | size | runs | smc p50 | smc p99 | TCP p50 | TCP p99 | p50 vs TCP | p99 vs TCP | CPU cli+srv |')
        print('|---|---|---|---|---|---|---|---|---|---|')
        for v in vs:
            rs = rows.get(v, [])
            for size in sorted({r['size'] for r in rs}):
                sm = [r for r in rs if r['size'] == size and r['transport'] == 'smc']
                tc = [r for r in rs if r['size'] == size and r['transport'] == 'tcp']
                if not sm:
                    continue
                f = lambda xs, k: med(x[k] for x in xs)
                print('| %s | %d | %d | %.2f | %.1f | %.1f | %.1f | %.1fx | %.2fx | %.2f+%.2f |' % (
                    v, size, len(sm), f(sm, 'p50_us'), f(sm, 'p99_us'), f(tc, 'p50_us'), f(tc, 'p99_us'),
                    f(sm, 'vs_tcp'), f(sm, 'p99_vs_tcp'), f(sm, 'client_cpu'), f(sm, 'server_cpu')))
        print()
        print('Per run, smc 64 B p50 (us):\n')
        for v in vs:
            print('- %s: %s' % (v, ', '.join('%.2f' % r['p50_us'] for r in rows.get(v, []) if r['size'] == 64 and r['transport'] == 'smc')))
        print()
