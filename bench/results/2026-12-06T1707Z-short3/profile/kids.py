import sys, re, collections
# usage: kids.py PERF_SCRIPT_OUTPUT SYMBOL_SUBSTR CONNS
# CPU per connection (4 kHz samples) of the first frame matching SYMBOL_SUBSTR, split
# by the frame it called (its direct children), in microseconds.
f, target, conns = sys.argv[1], sys.argv[2], int(sys.argv[3])
cnt = collections.Counter(); tot = 0
def flush(stack):
    global tot
    for i, fr in enumerate(stack):
        if target in fr:
            tot += 1
            cnt[stack[i-1] if i > 0 else '(self)'] += 1
            return
stack = []
for line in open(f):
    line = line.rstrip('\n')
    if not line.strip():
        if stack: flush(stack)
        stack = []
        continue
    if line.startswith('\t') or line.startswith(' '):
        parts = line.split()
        if len(parts) >= 2:
            stack.append(re.sub(r'\+0x[0-9a-f]+$', '', parts[1]))
if stack: flush(stack)
us = lambda n: n / 4000 / conns * 1e6
print(f"{target}: {us(tot):.2f} us/conn")
for k, v in cnt.most_common(25):
    print(f"  {us(v):6.2f}  {k}")
