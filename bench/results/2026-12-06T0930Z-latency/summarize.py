#!/usr/bin/env python3
"""Summarise the campaign of run.sh: medians over runs (each run's own figures are
already medians over its rounds). Usage: summarize.py DIR > summary.md"""
import glob, json, os, re, statistics, sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
med = statistics.median

def fmt(x, unit=''):
    return '%.2f%s' % (x, unit) if x < 100 else '%.0f%s' % (x, unit)

print('## In-package benchmarks (ns/op, median of the runs; cpu-ns/op in brackets)\n')
bench = {}
for f in sorted(glob.glob(os.path.join(d, 'inpkg', '*.txt'))):
    v = os.path.basename(f).split('-r')[0]
    for line in open(f):
        m = re.match(r'(Benchmark\S+?)-\d+\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) cpu-ns/op)?', line)
        if m:
            bench.setdefault(m.group(1), {}).setdefault(v, []).append((float(m.group(2)), float(m.group(3) or 0)))
vs = ['base', 's1', 's2', 's3', 's4', 's5']
print('| benchmark | ' + ' | '.join(vs) + ' |')
print('|---|' + '---|' * len(vs))
for b in sorted(bench):
    cells = []
    for v in vs:
        xs = bench[b].get(v, [])
        if not xs:
            cells.append('-')
            continue
        s = fmt(med(x for x, _ in xs))
        if any(c for _, c in xs):
            s += ' (%s)' % fmt(med(c for _, c in xs))
        s += ' n=%d' % len(xs)
        cells.append(s)
    print('| %s | %s |' % (b.replace('Benchmark', ''), ' | '.join(cells)))

def pingpong(sets, sub='pingpong'):
    print('| binary | size | runs | tcp p50 / p99 µs | smc p50 / p99 µs | smc vs tcp p50 | smc vs tcp p99 | smc CPU µs/op cli+srv |')
    print('|---|---|---|---|---|---|---|---|')
    for v, pat in sets:
        runs = {}
        for f in sorted(glob.glob(os.path.join(d, sub, pat))):
            for line in open(f):
                if line.startswith('{'):
                    j = json.loads(line)
                    runs.setdefault((j['size'], j['transport']), []).append(j)
        for size in sorted({k[0] for k in runs}):
            t, s = runs.get((size, 'tcp'), []), runs.get((size, 'smc'), [])
            if not s:
                continue
            print('| %s | %s | %d | %s / %s | %s / %s | %.1f× | %.2f× | %s+%s |' % (
                v, size, len(s),
                fmt(med(x['p50_us'] for x in t)), fmt(med(x['p99_us'] for x in t)),
                fmt(med(x['p50_us'] for x in s)), fmt(med(x['p99_us'] for x in s)),
                med(a['p50_us'] / b['p50_us'] for a, b in zip(t, s)),
                med(a['p99_us'] / b['p99_us'] for a, b in zip(t, s)),
                fmt(med(x['client_cpu'] for x in s)), fmt(med(x['server_cpu'] for x in s))))

print('\n## Ping-pong, main (base) against the branch head (s5), run3.sh (fast placement)\n')
pingpong([('base', 'base-r*.json'), ('s5', 's5-r*.json')], 'pingpong3')
print('\n## Ping-pong, main (base) against the branch head (s5), run2.sh (slow placement)\n')
pingpong([('base', 'base-r*.json'), ('s5', 's5-r*.json')])
print('\n## Ping-pong, the steps s3 (op lock + spin clock) and s4 (+ line layout), run2.sh (fast placement, one run each)\n')
pingpong([('s3', 'steps-s3-r*.json'), ('s4', 'steps-s4-r*.json')])

def rr(sub, what):
    print('\n## Request/response over 1, 16 and 64 connections, main (base) against the branch head (s5), %s\n' % what)
    print('| binary | scenario | conns | runs | tcp ops/s | smc ops/s | smc vs tcp | smc CPU µs/op cli+srv | tcp CPU µs/op cli+srv |')
    print('|---|---|---|---|---|---|---|---|---|')
    for v in ['base', 's5']:
        runs = {}
        for f in sorted(glob.glob(os.path.join(d, sub, '%s-r*.json' % v))):
            for line in open(f):
                if line.startswith('{'):
                    j = json.loads(line)
                    runs.setdefault((j['scenario'], j['conns'], j['transport']), []).append(j)
        for sc, c in sorted({(k[0], k[1]) for k in runs}, key=lambda k: (k[0] != 'rr', k[1])):
            t, s = runs.get((sc, c, 'tcp'), []), runs.get((sc, c, 'smc'), [])
            print('| %s | %s | %d | %d | %.1fk | %.1fk | %.2f× | %s+%s | %s+%s |' % (
                v, sc, c, len(s), med(x['ops_per_sec'] for x in t) / 1e3, med(x['ops_per_sec'] for x in s) / 1e3,
                med(b['ops_per_sec'] / a['ops_per_sec'] for a, b in zip(t, s)),
                fmt(med(x['client_cpu'] for x in s)), fmt(med(x['server_cpu'] for x in s)),
                fmt(med(x['client_cpu'] for x in t)), fmt(med(x['server_cpu'] for x in t))))

rr('rr', 'run2.sh (fast placement)')
rr('rr3', 'run3.sh')
