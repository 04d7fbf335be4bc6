#!/usr/bin/env bash
# device-side check of the fast fp8 tile (carried: build/fp8check)
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
t0=$(date +%s)
cmake -S cuda -B build/cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEEPGO_CUDA_ARCHS=${ARCHS:-90a} > $OUT/cmake.log 2>&1 && cmake --build build/cuda >> $OUT/cmake.log 2>&1 || { tail -40 $OUT/cmake.log; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
T=build/fp8check/kernels.test
$T -test.run 'FP8' -test.v > $OUT/fp8.log 2>&1; echo "fp8 auto rc=$?"
DEEPGO_FP8_TILE=128 $T -test.run 'LinearFP8' -test.v > $OUT/fp8_128.log 2>&1; echo "fp8 tile128 rc=$?"
DEEPGO_FP8_TILE=64 $T -test.run 'LinearFP8' -test.v > $OUT/fp8_64.log 2>&1; echo "fp8 tile64 rc=$?"
if [ -z "$QUICK" ]; then $T -test.run 'TestLinear$|TestMoEFFN$' -test.v > $OUT/old.log 2>&1; echo "old Linear/MoEFFN rc=$?"; fi
echo "tests done at $(( $(date +%s) - t0 )) s"
grep -E -- '--- FAIL|BAD' $OUT/*.log | head -30
for f in $OUT/fp8.log $OUT/fp8_128.log $OUT/fp8_64.log $OUT/old.log; do [ -f $f ] && echo "$f pass=$(grep -c -- '--- PASS' $f) fail=$(grep -c -- '--- FAIL' $f) skip=$(grep -c -- '--- SKIP' $f)"; done
if [ -n "$BENCH" ]; then
for v in 0 64 128; do DEEPGO_FP8_TILE=$v $T -test.run '^$' -test.bench "$BENCH" -test.benchtime 20x > $OUT/bench_$v.txt 2>&1; echo "== bench tile=$v"; grep -E '^Benchmark' $OUT/bench_$v.txt | sed -E 's/ +/ /g' | awk '{print $1, $5, $6, $7, $8}'; done
fi
echo "total $(( $(date +%s) - t0 )) s"
