import json, sys, glob, statistics as st, os
d = sys.argv[1]
runs = {}
for f in sorted(glob.glob(f"{d}/*.bulk.r*.jsonl")):
    v, _, r = os.path.basename(f).split('.')[:3]
    for line in open(f):
        j = json.loads(line)
        if j.get('scenario') != 'bulk': continue
        runs.setdefault((j['size'], v), {}).setdefault(int(r[1:]), {})[j['transport']] = j
for (size, v), byr in sorted(runs.items()):
    print(f"== {size>>10} KiB writes, binary {v}, {len(byr)} runs (each the median of 3 rounds)")
    print("run  tcp GB/s  unix GB/s  smc GB/s  smc/tcp  smc cpu s/GiB cli+srv (tcp)")
    for r in sorted(byr):
        x = byr[r]
        def g(t, k): return x.get(t, {}).get(k, float('nan'))
        print(f"r{r}   {g('tcp','gb_per_sec'):6.2f}   {g('unix','gb_per_sec'):6.2f}    {g('smc','gb_per_sec'):6.2f}   {g('smc','vs_tcp'):5.2f}x  {g('smc','client_cpu'):.3f}+{g('smc','server_cpu'):.3f} ({g('tcp','client_cpu'):.3f}+{g('tcp','server_cpu'):.3f})")
    med = lambda t, k: st.median([byr[r][t][k] for r in byr if t in byr[r] and k in byr[r][t]])
    ratios = [byr[r]['smc']['vs_tcp'] for r in byr if 'smc' in byr[r]]
    cpur = [(byr[r]['smc']['client_cpu']+byr[r]['smc']['server_cpu'])/(byr[r]['tcp']['client_cpu']+byr[r]['tcp']['server_cpu']) for r in byr]
    print(f"median: tcp {med('tcp','gb_per_sec'):.2f} unix {med('unix','gb_per_sec'):.2f} smc {med('smc','gb_per_sec'):.2f} GB/s; smc/tcp {st.median(ratios):.2f}x, runs >= 5x: {sum(q>=5 for q in ratios)} of {len(ratios)}; smc cpu {med('smc','client_cpu'):.3f}+{med('smc','server_cpu'):.3f} s/GiB, tcp {med('tcp','client_cpu'):.3f}+{med('tcp','server_cpu'):.3f}; smc cpu / tcp cpu per GiB median {st.median(cpur):.2f}")
    print()
