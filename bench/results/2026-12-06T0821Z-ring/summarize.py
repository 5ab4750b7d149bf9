import json, statistics, glob, sys
Os=sys.argv[1:]; O=Os[0]
sizes=[65536,262144,1048576]
name={65536:'64 KiB',262144:'256 KiB',1048576:'1 MiB'}
def rows(f):
    return [json.loads(l) for l in open(f) if l.strip()]
data={}
for s in sizes:
    for r,d in [(r,d) for d in Os for r in range(3)]:
        for row in rows(f'{d}/r{r}-{s}.json'):
            data.setdefault((s,row['scenario'],row['size'],row['transport']),[]).append(row)
med=lambda xs: statistics.median(xs)
print('| ring | bulk write | tcp GB/s | smc GB/s | smc vs tcp | CPU s/GiB tcp (cli+srv) | CPU s/GiB smc (cli+srv) | smc mode |')
print('|---|---|---|---|---|---|---|---|')
for s in sizes:
    for w in (65536,1048576):
        t=data[(s,'bulk',w,'tcp')]; m=data[(s,'bulk',w,'smc')]
        print(f"| {name[s]} | {name.get(w,w) if w!=65536 else '64 KiB'} | {med([x['gb_per_sec'] for x in t]):.2f} | {med([x['gb_per_sec'] for x in m]):.2f} | {med([x['vs_tcp'] for x in m]):.2f}x | {med([x['client_cpu'] for x in t]):.3f}+{med([x['server_cpu'] for x in t]):.3f} | {med([x['client_cpu'] for x in m]):.3f}+{med([x['server_cpu'] for x in m]):.3f} | {'/'.join(sorted(set(x.get('mode','') for x in m)))} |")
print()
print('| ring | pingpong size | tcp p50/p99 µs | smc p50/p99 µs | smc p50 vs tcp (round trips/s) | smc p99 vs tcp | smc CPU µs/op cli+srv |')
print('|---|---|---|---|---|---|---|')
for s in sizes:
    for w in (16384,65536):
        t=data[(s,'pingpong',w,'tcp')]; m=data[(s,'pingpong',w,'smc')]
        print(f"| {name[s]} | {w//1024} KiB | {med([x['p50_us'] for x in t]):.1f} / {med([x['p99_us'] for x in t]):.1f} | {med([x['p50_us'] for x in m]):.1f} / {med([x['p99_us'] for x in m]):.1f} | {med([x['vs_tcp'] for x in m]):.2f}x | {med([x['p99_vs_tcp'] for x in m]):.2f}x | {med([x['client_cpu'] for x in m]):.1f}+{med([x['server_cpu'] for x in m]):.1f} |")
print()
print('Per round (smc bulk GB/s 64 KiB writes / 1 MiB writes; pingpong 64 KiB p99 µs smc vs tcp):')
for s in sizes:
    b64=[round(x['gb_per_sec'],2) for x in data[(s,'bulk',65536,'smc')]]
    b1m=[round(x['gb_per_sec'],2) for x in data[(s,'bulk',1048576,'smc')]]
    p=[(round(a['p99_us'],1),round(b['p99_us'],1)) for a,b in zip(data[(s,'pingpong',65536,'smc')],data[(s,'pingpong',65536,'tcp')])]
    print(f'- ring {name[s]}: bulk64K {b64}, bulk1M {b1m}, pingpong64K p99 smc/tcp {p}')
print()
print('| ring | idlemem lap | transport | PSS/conn (both) | RSS/conn | cgroup/conn | vs tcp (mem) | mode |')
print('|---|---|---|---|---|---|---|---|')
for s in sizes:
    try: rs=rows(f'{O}/idlemem-{s}.json')
    except FileNotFoundError: continue
    for x in rs:
        print(f"| {name[s]} | {x['size']} B | {x['transport']} | {x.get('mem_pss',0)/1024:.1f} KiB | {x.get('mem_rss',0)/1024:.1f} KiB | {x.get('mem_cgroup',0)/1024:.1f} KiB | {x.get('mem_vs_tcp',0):.2f} | {x.get('mode','')} |")
