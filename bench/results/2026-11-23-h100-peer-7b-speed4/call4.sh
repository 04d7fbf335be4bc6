#!/usr/bin/env bash
# Speed pass 4, device call 4: call 3's Nsight Compute part again (call 3 named the benchmarks in
# upper case and profiled nothing): full sections of the o_proj GEMV (2048 x 2048, m=1), bf16 and fp8.
set -uo pipefail
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$PWD/build/cuda
for w in bf16 f8e4m3; do
  timeout 200 ncu --set full --clock-control none -k regex:gemv -s 3 -c 1 \
    build/gpu/kernels.test -test.run '^$' -test.bench "Linear/impl=cuda/w=$w/shape=p7_o_proj/m=1\$" -test.benchtime 8x > "$OUT/ncu_o_proj_$w.txt" 2>&1
  echo "ncu $w rc=$?"
  grep -E "Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Waves Per SM|L2 Hit|L1/TEX Hit" "$OUT/ncu_o_proj_$w.txt" | head -30
done
