import sys,glob,re,statistics,collections
# usage: ring-summ.py dir glob-prefix  -> medians per cell and label (file suffix)
d,pre=sys.argv[1],sys.argv[2]
rows=collections.defaultdict(list)
def tm(s):
    m=re.match(r'([\d.]+)(µs|ms|s)$',s); v=float(m.group(1)); return v*{'µs':1,'ms':1000,'s':1e6}[m.group(2)]
for f in sorted(glob.glob(f"{d}/{pre}-r*-*.txt")):
    lab=re.search(r'-r\d+-([\w.]+)\.txt$',f).group(1)
    for line in open(f):
        t=line.split()
        if len(t)<9 or t[0] not in('pingpong','bulk','rr','short','many','idlemem') or t[3] not in('tcp','smc'): continue
        r=t[5:]
        if r[0]=='p50': res=tm(r[1]); r=r[2:]
        elif r[1]=='GB/s': res=float(r[0]); r=r[2:]
        else: res=float(r[0].rstrip('k/s')); r=r[1:]
        p99=r[0]; cli,srv,unit,vs=r[1],r[2],r[3],float(r[4].rstrip('x'))
        rows[(t[0],t[1],t[2],t[3],lab)].append(dict(res=res,p99=p99,cli=cli,srv=srv,vs=vs))
labs=sorted({k[4] for k in rows},key=lambda s:(len(s),s))
cells=[]
for k in rows:
    if k[:4] not in cells: cells.append(k[:4])
med=statistics.median
print(f"{pre}: medians over rounds; result (p50 µs | GB/s | k/s), [p99 µs], [CPU s/GiB cli/srv | CPU µs/op cli/srv], vs tcp")
for c in cells:
    line=f"{c[0]:9}{c[1]:>4}{c[2]:>3} {c[3]:3}"
    for s in labs:
        v=rows.get(c+(s,))
        if not v: continue
        x=f"{med(e['res'] for e in v):.2f}"
        if c[0]=='pingpong': x+=f" p99 {med(tm(e['p99']) for e in v):.1f}"
        if c[0]=='bulk': x+=f" cpu {med(tm(e['cli']) for e in v)/1e6:.2f}/{med(tm(e['srv']) for e in v)/1e6:.2f}"
        if c[0] in('rr','short'): x+=f" cpu {med(tm(e['cli']) for e in v):.1f}/{med(tm(e['srv']) for e in v):.1f}"
        x+=f" {med(e['vs'] for e in v):.2f}x(n{len(v)})"
        line+=f" | {s}: {x}"
    print(line)
