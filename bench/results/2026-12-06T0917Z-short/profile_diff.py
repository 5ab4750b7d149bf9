# profile_diff.py SIDE NTCP NSMC: per-connection cumulative CPU of each function in the smc
# and tcp profiles of SIDE (client or server), sorted by the difference; run in this directory.
import subprocess, sys, re
def load(f, n):
    out = subprocess.run(['go','tool','pprof','-top','-cum','-nodecount=400',f],capture_output=True,text=True).stdout
    d={}
    for l in out.splitlines():
        p=l.split()
        if len(p)>=6 and p[3].endswith('s') and p[4].endswith('%'):
            v=p[3]; name=' '.join(p[5:])
            x=float(v[:-2])/1000 if v.endswith('ms') else float(v[:-1])
            d[name]=x/n*1e6
    return d
side=sys.argv[1]
t=load('short-tcp.'+side+'.pprof', float(sys.argv[2])); s=load('short-smc.'+side+'.pprof', float(sys.argv[3]))
keys=sorted(set(t)|set(s), key=lambda k: -(s.get(k,0)-t.get(k,0)))
for k in keys[:45]:
    print(f"{s.get(k,0):7.1f} {t.get(k,0):7.1f} {s.get(k,0)-t.get(k,0):+7.1f}  {k[:110]}")
