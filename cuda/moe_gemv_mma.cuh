/* moe_gemv_mma.cuh: dg_moe_ffn's tensor-core decode GEMVs (moe_gemv_mma.cu), for moe.cu. */
#pragma once
#include "common.cuh"

namespace dg {

/* Whether the tensor-core GEMVs take a small-n call: bf16 x with 16-byte aligned rows, top_k <= 16,
 * sm_80+, and DEEPGO_MOE_GEMV is not "simt" (the caller has checked n, mode and top_k <= 32). */
bool moe_gemv_mma_ok(const dg_moe_ffn_args *a);
/* Elements between H rows (16-byte aligned bf16 rows). */
int64_t moe_gemv_mma_ldh(int64_t inter);
/* gate/up into H [n * top_k, ldh] bf16 (the caller's workspace), then down into y. */
dg_status moe_gemv_mma(const dg_moe_ffn_args *a, __nv_bfloat16 *H, cudaStream_t cs);

}  // namespace dg
