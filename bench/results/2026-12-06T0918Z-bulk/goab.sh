#!/bin/sh
# usage: goab.sh OUT ROUNDS BENCHTIME PATTERN BIN_A BIN_B   (order reversed every round, under the lock)
out=$1; n=$2; bt=$3; pat=$4; a=$5; b=$6
for i in $(seq $n); do
  if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for v in $order; do
    if [ $v = A ]; then bin=$a; else bin=$b; fi
    flock /tmp/smc-bench.lock sh -c "printf '%s r%s psi10=%s ' $v $i \$(head -1 /proc/pressure/cpu | cut -d' ' -f2 | cut -d= -f2); $bin -test.run XXX -test.bench '$pat' -test.count 1 -test.benchtime $bt" | awk '/GB\/s/{printf "%s %s GB/s %s cpu-ns/op | ", $1, $(NF-3), $(NF-1)} /psi10/{printf "%s %s %s ", $1,$2,$3} END {print ""}' >> $out
  done
done
