#!/usr/bin/env bash
# On the GPU machine, from the repo root, after `make gpu-bundle` here and with build/gpu carried:
# build libdeepgo_cuda.so, run the kernel tests (GPU against the CPU kernels), then the reference
# fixtures (transformers' logits) on --backend cuda, in f32 and in bf16 activations, and a
# generate smoke run. Logs go to LOGDIR; a summary is printed last.
#
#   bash tests/gpu_check.sh [LOGDIR]
set -uo pipefail
logdir="${1:-build/gpu/logs}"
mkdir -p "$logdir"
root="$(pwd)"
export DEEPGO_LIB_DIR="$root/build/cuda"
bash tests/kernels/gpu_check.sh "$logdir"
krc=$?
fixtures() {
    (cd tests && DEEPGO_TEST_BACKEND=cuda DEEPGO_TEST_ACT="$1" "$root/build/gpu/tests.test" -test.v \
        -test.run 'TestReferenceFixtures|TestStepErrors|TestSharedExpertsAsExperts|TestKcTransposed' -test.timeout 5m) >"$logdir/fixtures_$1.log" 2>&1
    local rc=$?
    echo "gpu_check: reference fixtures on cuda ($1 activations) exit $rc"
    grep -E "^(--- |    --- )|reference_test.go:[0-9]+: [a-z -]+:" "$logdir/fixtures_$1.log" | head -60
    return $rc
}
fixtures f32; frc=$?
fixtures bf16; brc=$?
F=tests/fixtures/models/lora-yarn-bf16
ids=$(python3 -c "import json;print(','.join(map(str,json.load(open('$F/reference.json'))['ids'])))")
want=$(python3 -c "import json;print(','.join(map(str,json.load(open('$F/reference.json'))['greedy'])))")
got=$(build/gpu/deepgo generate --model "$F" --ids "$ids" --max-tokens 8 --temperature 0 --print-ids --backend cuda --activations f32 2>"$logdir/generate.log")
echo "gpu_check: deepgo generate --backend cuda: $got (transformers: $want)"; tail -1 "$logdir/generate.log"
grc=1; [[ "$got" == "$want" ]] && grc=0
echo "gpu_check: summary kernels=$krc fixtures_f32=$frc fixtures_bf16=$brc generate=$grc"
[[ $krc == 0 && $frc == 0 && $brc == 0 && $grc == 0 ]]
