#!/bin/sh
for i in 1 2 3 4; do
  if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for v in $order; do
    flock /tmp/smc-bench.lock sh -c "printf '$v r$i %s\n' \"\$(head -1 /proc/pressure/cpu)\"; ZZP99=1 /tmp/bulkab/zz$v.test -test.run 'ZZP99|ZZBulk' -test.count 1 2>&1 | grep -E 'msg=|ring='" >> /tmp/bulkab/zz.txt
  done
done
