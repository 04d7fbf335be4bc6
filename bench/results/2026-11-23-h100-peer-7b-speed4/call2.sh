#!/usr/bin/env bash
# Speed pass 4, device call 2: the tensor-core mla_decode (mla_decode_mma.cu) and the new combine.
# Kernel tests (MLA, graph capture), reference fixtures on cuda, generate A/B against the SIMT
# kernel (DEEPGO_MLA_DECODE=simt), the helper's tensor-core mla_prefill (DEEPGO_MLA_PREFILL=scalar), the mla_decode kernel figure, DeepSeek-V3 4 layers fp8.
set -uo pipefail
R=$PWD; T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
( build/gpu/deepgo synth --preset peer-7b --dtype bf16 --out /tmp/peer7b >/dev/null 2>&1; echo "synth done $(el) s" ) &
SP=$!
bash tests/gpu_check.sh /tmp/logs 2>&1 | grep -E "gpu_check|FAIL|pass=|panic|Error" | tail -40; echo "gpu_check rc=${PIPESTATUS[0]} at $(el) s"
grep -E -A6 -- "--- FAIL" /tmp/logs/kernels.log | head -40
grep -E "TestMLA.*(latent=512.*dtype=bf16/cache=bf16)" -A3 /tmp/logs/kernels.log | grep -E "o_lat|out:" | head -20
tar czf "$OUT/logs.tgz" -C /tmp logs
wait $SP
export DEEPGO_LIB_DIR=$R/build/cuda
IDS=$(python3 -c "print(','.join(str((i*7919)%120000+100) for i in range(512)))")
gen() { local m=$1 tag=$2; shift 2; build/gpu/deepgo generate --model "$m" --ids "$IDS" --max-tokens 128 --temperature 0 --ignore-eos --print-ids --backend cuda "$@" 2>/tmp/gen_$tag.err >/tmp/ids_$tag.txt; echo "$tag: $(grep -E 'tok/s' /tmp/gen_$tag.err | tail -1)"; }
gen /tmp/peer7b bf16
DEEPGO_MLA_DECODE=simt gen /tmp/peer7b bf16_simt
gen /tmp/peer7b bf16_2
DEEPGO_MLA_PREFILL=scalar gen /tmp/peer7b bf16_pfscalar
cmp -s /tmp/ids_bf16.txt /tmp/ids_bf16_pfscalar.txt && echo "ids prefill mma == scalar" || echo "ids prefill mma != scalar"
cmp -s /tmp/ids_bf16.txt /tmp/ids_bf16_simt.txt && echo "ids mma == simt" || echo "ids mma != simt: first differing token $(python3 -c "
a=open('/tmp/ids_bf16.txt').read().replace(',',' ').split(); b=open('/tmp/ids_bf16_simt.txt').read().replace(',',' ').split()
print(next((i for i,(x,y) in enumerate(zip(a,b)) if x!=y), -1))")"
for f in /tmp/gen_*.err /tmp/ids_*.txt; do echo "== $f"; cat $f; done > "$OUT/gen.txt"
{ timeout 60 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3,peer-7b --filter mla_ -r 10 2>&1
  DEEPGO_MLA_DECODE=simt DEEPGO_MLA_PREFILL=scalar timeout 60 build/gpu/deepgo bench kernels --backend cuda --shapes deepseek-v3,peer-7b --filter mla_ -r 10 2>&1; } > "$OUT/kernels_mla.txt"
grep -E "mla_|ceil" "$OUT/kernels_mla.txt" | head -12
echo "at $(el) s"
timeout 100 build/gpu/deepgo bench -m /tmp/peer7b --backend cuda -p 512 -n 128 -b 1,32 -r 3 --no-ceilings >"$OUT/bench_bf16.txt" 2>&1; echo "bench bf16 rc=$?"; grep -E "^\| peer" "$OUT/bench_bf16.txt"
timeout 200 build/gpu/deepgo bench --synthetic deepseek-v3 --layers 4 --backend cuda -p 512 -n 64 -b 1,32 -r 3 --profile --cache-dir /tmp/dsv3 >"$OUT/bench_dsv3_L4.txt" 2>&1; echo "bench dsv3 rc=$?"; grep -E "^\| deep|^memory|^ceil|^model" "$OUT/bench_dsv3_L4.txt"
echo "end $(el) s"
