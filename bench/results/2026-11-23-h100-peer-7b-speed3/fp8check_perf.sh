#!/usr/bin/env bash
# perf of the fast fp8 tile: kernel benchmarks (tile auto/64/128) and peer-7b prefill fp8 vs bf16
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT; R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
[ -f build/cuda/libdeepgo_cuda.so ] || { cmake -S cuda -B build/cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DDEEPGO_CUDA_ARCHS=90a > $OUT/cmake.log 2>&1 && cmake --build build/cuda >> $OUT/cmake.log 2>&1; echo "rebuilt $(el) s"; }
( build/gpu/deepgo synth --preset peer-7b --dtype fp8 --out /tmp/peer7b8 >"$OUT/synth.log" 2>&1
  build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >>"$OUT/synth.log" 2>&1; echo "synth done $(el) s" ) &
SP=$!
T=build/fp8check/kernels.test
B='Linear/impl=cuda/w=(bf16|f8e4m3)/shape=(q_b|kv_a|o_proj|dense_up)/m=(64|512)'
for v in 0 64 128; do DEEPGO_FP8_TILE=$v $T -test.run '^$' -test.bench "$B" -test.benchtime 30x > $OUT/bench_$v.txt 2>&1; echo "== bench tile=$v"; grep -E '^Benchmark' $OUT/bench_$v.txt | sed -E 's/ +/ /g' | awk '{print $1, $5, $6, $7, $8}'; done
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(512)))")
gen() { local m=$1 tag=$2 tile=${3:-0}; env DEEPGO_FP8_TILE=$tile build/gpu/deepgo generate --model "$m" --ids "$IDS" --max-tokens 16 --temperature 0 --ignore-eos --print-ids --backend cuda 2>"$OUT/gen_$tag.err" >$OUT/ids_$tag.txt; echo "$tag: $(grep -E 'tok/s' "$OUT/gen_$tag.err" | tail -1)"; }
gen /tmp/peer7b bf16
gen /tmp/peer7b8 fp8_auto
gen /tmp/peer7b8 fp8_64 64
gen /tmp/peer7b8 fp8_128 128
gen /tmp/peer7b8 fp8_auto2
echo "end $(el) s"
