/*
 * gemm_fp8_wgmma.cuh: dg_linear's W8A8 GEMM on Hopper's fp8 tensor cores (gemm_fp8_wgmma.cu).
 *
 * linear.cu asks w8a8_wgmma_ok() first; where it says yes, w8a8_wgmma() does the whole op (x's
 * quantisation into the workspace, then the GEMM) and dg_linear_workspace_size covers
 * w8a8_wgmma_workspace_size() bytes.
 */
#pragma once
#include "common.cuh"

namespace dg {

/* Whether dg_linear takes the wgmma path for these args: W8A8 mode, e4m3 W with 128x128 block
 * scales, cols % 128 == 0, W rows 16-byte aligned, m > 32, a compute capability 9.0 device running
 * the library's sm_90a code, and DEEPGO_W8A8_GEMM is not "emulate". Host side, cheap (cached). */
bool w8a8_wgmma_ok(const dg_linear_args *a);

/* Workspace bytes the wgmma path needs at a->m rows: e4m3 x [m, cols] and f32 scales
 * [cols/128, round_up(m, 4)], each rounded to 256 bytes, plus 256 for aligning the base. */
int64_t w8a8_wgmma_workspace_size(const dg_linear_args *a);

/* The op (w8a8_wgmma_ok(a) must hold; a->workspace holds w8a8_wgmma_workspace_size(a) bytes). */
dg_status w8a8_wgmma(const dg_linear_args *a, cudaStream_t st);

}  // namespace dg
