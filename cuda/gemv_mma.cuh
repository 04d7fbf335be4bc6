/* gemv_mma.cuh: the tensor-core GEMV of dg_linear (gemv_mma.cu), for linear.cu. */
#pragma once
#include "common.cuh"

namespace dg {

/* Whether the tensor-core GEMV takes this call: bf16 x (16-byte aligned rows), 1..32 rows, bf16
 * weights (cols % 8 == 0) or fp8 weights with 16-row x 64-column-aligned scale blocks
 * (cols % 16 == 0), sm_80+, and DEEPGO_GEMV is not "simt". */
bool gemv_mma_ok(const void *x, int64_t ld_x, const dg_weight &w, int64_t m);
template <typename YT>
dg_status gemv_mma(const __nv_bfloat16 *x, YT *y, const dg_weight &w, int64_t m, int64_t ld_x, int64_t ld_y,
                   int accumulate, cudaStream_t st);

}  // namespace dg

namespace dg {

/* dg_head_matmul trans 1 (out = o_lat . W_uv^T per head) on the same kernel: bf16 x, <= 32 tokens,
 * the GEMV's layout conditions, and for fp8 head rows that start on 16-row boundaries. */
bool head_matmul_mma_ok(const dg_head_matmul_args *a);
dg_status head_matmul_mma(const dg_head_matmul_args *a, cudaStream_t st);

}  // namespace dg
