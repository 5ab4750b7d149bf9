# strace_per_conn.py STRACE_C_OUTPUT PERF_OUTPUT: system calls per connection of an
# "strace -f -c" run of smc perf --scenario=short (connections: the SMCD×N count).
import re, sys
n = int(re.search(r'SMCD×(\d+)', open(sys.argv[2]).read()).group(1))
tot, d = 0, {}
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) >= 5 and p[0][0].isdigit() and p[-1] != 'total':
        d[p[-1]] = int(p[3])
        tot += int(p[3])
print(f"{n} connections; per connection: all {tot/n:.1f}, " + ", ".join(
    f"{k} {d.get(k, 0)/n:.2f}" for k in ['read', 'write', 'sendmsg', 'recvmsg', 'epoll_pwait', 'futex', 'nanosleep']))
