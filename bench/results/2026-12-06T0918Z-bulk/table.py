import json, sys, glob, statistics as st, re, os
d = sys.argv[1]; scen = sys.argv[2]
rows = {}
for f in sorted(glob.glob(f"{d}/*.{scen}.r*.jsonl")):
    v, _, r = os.path.basename(f).split('.')[:3]
    for line in open(f):
        j = json.loads(line)
        if j.get('scenario') != scen: continue
        rows.setdefault((j['size'], v), {}).setdefault(r, {})[j['transport']] = j
for (size, v), byr in sorted(rows.items()):
    out = []
    for key in (['gb_per_sec','client_cpu','server_cpu'] if scen=='bulk' else ['p50_us','p99_us']):
        for tr in ['tcp','unix','smc']:
            vals = [byr[r][tr].get(key) for r in sorted(byr) if tr in byr[r] and byr[r][tr].get(key) is not None]
            if vals: out.append(f"{tr}.{key}={st.median(vals):.3g}")
    ratio = [byr[r]['smc']['vs_tcp'] for r in sorted(byr) if 'smc' in byr[r]]
    per = ' '.join(f"{x:.2f}" for x in ratio)
    print(f"{size>>10}K {v} n={len(byr)} " + ' '.join(out) + f" | smc vs tcp per round: {per} median {st.median(ratio):.2f}")
