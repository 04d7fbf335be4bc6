/* moe_gemv_mma.cuh: dg_moe_ffn's tensor-core decode GEMVs (moe_gemv_mma.cu), for moe.cu. */
#pragma once
#include "common.cuh"

namespace dg {

/* Whether the tensor-core GEMVs take a small-n call: bf16 x with 16-byte aligned rows, top_k <= 16,
 * sm_80+, and DEEPGO_MOE_GEMV is not "simt" (the caller has checked n, mode and top_k <= 32). */
bool moe_gemv_mma_ok(const dg_moe_ffn_args *a);
/* gate/up into H [n * top_k, ldh] bf16 (the caller's workspace), then down into y. */
dg_status moe_gemv_mma(const dg_moe_ffn_args *a, __nv_bfloat16 *H, cudaStream_t cs);

/* Whether the sorted path takes the call: moe_gemv_mma_ok, DEFAULT mode, n <= 32, and enough
 * tokens share experts that reading each chosen expert once beats one read per assignment. */
bool moe_gemv_mma_grouped_ok(const dg_moe_ffn_args *a);
/* After moe.cu's count/plan/scatter: H [A, ldh] bf16 and O [A, hidden] f32 (sorted rows), for
 * moe.cu's combine. */
dg_status moe_gemv_mma_grouped(const dg_moe_ffn_args *a, const int32_t *offsets, const int32_t *rows,
                               __nv_bfloat16 *H, float *O, cudaStream_t cs);

}  // namespace dg
