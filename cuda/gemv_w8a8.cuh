/* gemv_w8a8.cuh: the W8A8 decode kernels on e4m3 tensor cores (gemv_w8a8.cu for dg_linear,
 * moe_gemv_w8a8.cu for dg_moe_ffn), for linear.cu and moe.cu. */
#pragma once
#include "common.cuh"

namespace dg {

/* sm_89+ (e4m3 mma.sync) and DEEPGO_W8A8_GEMV is not "emulate". */
bool w8a8_gemv_device_ok();

/* Whether the W8A8 GEMV takes this dg_linear call: W8A8 mode, 1..8 rows, f32 or bf16 x with
 * 16-byte aligned rows, e4m3 weights with 16-byte rows, cols % 16 == 0 and scale blocks of
 * (16k rows) x 128 columns. */
bool gemv_w8a8_ok(const dg_linear_args *a);
dg_status gemv_w8a8(const dg_linear_args *a, cudaStream_t st);

/* Whether the W8A8 MoE GEMVs take this dg_moe_ffn call: W8A8 mode, 1..8 tokens, top_k <= 16,
 * f32 or bf16 x with 16-byte aligned rows, hidden and inter % 16 == 0. */
bool moe_gemv_w8a8_ok(const dg_moe_ffn_args *a);
/* gate/up into H [n * top_k, round4(inter)] f32 (the caller's workspace), then down into y. */
dg_status moe_gemv_w8a8(const dg_moe_ffn_args *a, float *H, cudaStream_t cs);

}  // namespace dg
