import re, statistics as st, sys
cur=None; d={}
for line in open(sys.argv[1]):
    m=re.match(r'([AB]) r(\d+) some avg10=([\d.]+)',line)
    if m: cur=(m.group(1),int(m.group(2)),float(m.group(3))); continue
    m=re.match(r'ring=(\d+)K ([\d.]+) GB/s .* writer cpu ([\d.]+) s/GiB',line)
    if m: d.setdefault((cur[0],'bulk ring='+m.group(1)+'K'),[]).append((cur[1],cur[2],float(m.group(2)),float(m.group(3)))); continue
    m=re.match(r'msg=(\d+)K n=(\d+) p50=(\S+) p90=(\S+) p99=(\S+) max=\S+ woken=\d+ \(([\d.]+)%\)',line)
    if m:
        def us(s):
            if s.endswith('µs'): return float(s[:-2])
            if s.endswith('ms'): return float(s[:-2])*1000
            if s.endswith('ns'): return float(s[:-2])/1000
            return float(s[:-1])*1e6
        d.setdefault((cur[0],'pingpong '+m.group(1)+'K'),[]).append((cur[1],cur[2],us(m.group(3)),us(m.group(5)),float(m.group(6))))
for k in sorted(d, key=lambda k:(k[1],k[0])):
    v=d[k]
    if k[1].startswith('bulk'):
        print(f"{k[1]:16s} {k[0]} n={len(v)} median {st.median(x[2] for x in v):.2f} GB/s writer {st.median(x[3] for x in v):.2f} s/GiB | per round (r,psi,GB/s): "+' '.join(f"r{x[0]}/{x[1]:.0f}/{x[2]:.2f}" for x in v))
    else:
        print(f"{k[1]:16s} {k[0]} n={len(v)} p50 {st.median(x[2] for x in v):.1f} us p99 {st.median(x[3] for x in v):.1f} us woken {st.median(x[4] for x in v):.2f}% | per round (r,psi,p50,p99,woken%): "+' '.join(f"r{x[0]}/{x[1]:.0f}/{x[2]:.1f}/{x[3]:.0f}/{x[4]:.2f}" for x in v))
