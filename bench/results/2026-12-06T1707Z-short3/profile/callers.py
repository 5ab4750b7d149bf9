# usage: callers.py PERF_SCRIPT_OUTPUT SYMBOL_SUBSTR CONNS [DEPTH]
# Self CPU per connection (4 kHz samples) of the leaf frames matching SYMBOL_SUBSTR,
# split by their DEPTH callers, in microseconds.
import sys, re, collections
f, target, conns = sys.argv[1], sys.argv[2], int(sys.argv[3])
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 1
cnt = collections.Counter(); tot = 0
def flush(stack):
    global tot
    if stack and target in stack[0]:
        tot += 1
        cnt[' < '.join(stack[1:1+depth])] += 1
stack = []
for line in open(f):
    line = line.rstrip('\n')
    if not line.strip():
        flush(stack); stack = []; continue
    if line[0] in '\t ':
        parts = line.split()
        if len(parts) >= 2: stack.append(re.sub(r'\+0x[0-9a-f]+$', '', parts[1]))
flush(stack)
us = lambda n: n / 4000 / conns * 1e6
print(f"{target} self: {us(tot):.2f} us/conn")
for k, v in cnt.most_common(12): print(f"  {us(v):6.2f}  {k}")
