#!/usr/bin/env bash
# Speed pass 4, device call 3: why peer-7b's small decode GEMVs run at 0.4-0.9 TB/s. Kernel
# benchmarks of the four peer-7b GEMV shapes at m=1 (bf16, fp8), with 4 and 8 chunks in flight
# (DEEPGO_GEMV_UNROLL) and PDL off, then Nsight Compute's full sections for o_proj bf16 and fp8.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
mkdir -p build/cuda && cp build/gpu/lib/libdeepgo_cuda.so build/cuda/
export DEEPGO_LIB_DIR=$R/build/cuda
B='Linear/impl=cuda/w=.*/shape=(p7_.*|kv_a|q_b)/m=(1|8)$'
kb() { build/gpu/kernels.test -test.run '^$' -test.bench "$B" -test.benchtime 300x 2>&1 | grep -E "^Benchmark" | sed -E 's/ +/ /g'; }
{ echo "== default"; kb; echo "== DEEPGO_GEMV_UNROLL=8"; DEEPGO_GEMV_UNROLL=8 kb; echo "== DEEPGO_PDL=0"; DEEPGO_PDL=0 kb; } > "$OUT/gemv_bench.txt"
cat "$OUT/gemv_bench.txt" | cut -c1-160
echo "at $(el) s"
for w in bf16 f8e4m3; do
  timeout 150 ncu --set full --clock-control none -k regex:gemv_kernel -s 3 -c 1 \
    build/gpu/kernels.test -test.run '^$' -test.bench "Linear/impl=cuda/w=$w/shape=p7_o_proj/m=1\$" -test.benchtime 8x > "$OUT/ncu_o_proj_$w.txt" 2>&1
  echo "ncu $w rc=$?"
  grep -E "Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Warp Cycles Per Issued|Issued Ipc|Executed Ipc|No Eligible|Block Limit|Waves Per SM" "$OUT/ncu_o_proj_$w.txt" | head -30
done
echo "end $(el) s"
