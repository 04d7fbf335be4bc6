/* gemv_tile.cuh: one warp's share of a tensor-core GEMV tile (16 weight rows against up to 8 bf16 x
 * rows), shared by dg_linear's GEMV (gemv_mma.cu) and the MoE decode GEMVs (moe.cu). The mapping
 * is described at the top of gemv_mma.cu. */
#pragma once
#include "gemm.cuh"
#include <stdlib.h>
#include <string.h>

namespace dg {

/* Rounds of 4 lanes x 16 bytes loaded before the first mma of an iteration: 4, or 2 with 4
 * token groups (their x fragments would not fit in registers otherwise). */
template <int NT> constexpr int gemv_tile_u() { return NT <= 2 ? 4 : 2; }

/* Columns per iteration (gemv_tile_u rounds of the 4 lanes t, 16 bytes each). */
template <bool FP8, int NT = 1> constexpr int gemv_tile_cols() { return gemv_tile_u<NT>() * 4 * (FP8 ? 16 : 8); }

/* Token groups of 8 (the mma's n) for m x rows. */
inline int gemv_tile_groups(int64_t m) { return m <= 8 ? 1 : m <= 16 ? 2 : 4; }

/* A weight's rows as the tile reads them: 16-byte aligned rows, bf16 with cols % 8 == 0, or e4m3
 * with cols % 16 == 0 and scale blocks of 16-row / 64-column multiples (each round of 64 columns
 * and each 16-row tile inside one block). Host and device. */
__host__ __device__ __forceinline__ bool gemv_tile_layout_ok(const dg_weight &w) {
    if ((uintptr_t)w.data % 16 != 0) return false;
    if (w.dtype == DG_BF16) return w.cols % 8 == 0 && w.ld % 8 == 0;
    if (w.dtype == DG_F8E4M3)
        return w.cols % 16 == 0 && w.ld % 16 == 0 && w.scale && w.block_rows > 0 && w.block_rows % 16 == 0 &&
               w.block_cols > 0 && w.block_cols % 64 == 0;
    return false;
}

/* acc += this warp's part of D[16 rows][8 NT x rows] = W[r0 .. r0+16) . x^T over the column
 * iterations ks, ks + S, ... Lane (g = lane/4, t = lane%4): wa/wb are rows r0+g and r0+g+8
 * (oka/okb: they exist), xr[q] is the lane's x row of group q, row g + 8q (xok[q]: it exists;
 * missing rows give zeros), srow the fp8 scale row of the tile's 128-row block. acc[q][0..1]: row g, x rows 8q + 2t and
 * 8q + 2t + 1; acc[q][2..3]: row g+8. The weights are 16-byte streaming loads, read once for all
 * NT groups; x rows 16-byte aligned. */
template <bool FP8, int NT>
__device__ __forceinline__ void gemv_tile_dot(const char *wa, const char *wb, bool oka, bool okb, const float *srow,
                                              int64_t block_cols, int64_t cols, const __nv_bfloat16 *const (&xr)[NT],
                                              const bool (&xok)[NT], int64_t ks, int S, float (&acc)[NT][4]) {
    constexpr int U = gemv_tile_u<NT>();
    constexpr int ECH = FP8 ? 16 : 8; /* columns per 16-byte chunk */
    constexpr int RC = 4 * ECH;       /* columns per round */
    constexpr int IC = U * RC;        /* columns per iteration */
    constexpr int ES = FP8 ? 1 : 2;   /* weight element bytes */
    constexpr int XC = FP8 ? 2 : 1;   /* 16-byte x chunks per weight chunk */
    const int t = (threadIdx.x & 31) & 3;
    const int64_t nit = (cols + IC - 1) / IC;
    for (int64_t it = ks; it < nit; it += S) {
        const int64_t cb = it * IC;
        uint4 A[U], B[U], X[U][NT][XC];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = cb + u * RC + t * ECH;
            const bool ok = c < cols;
            const uint4 z = make_uint4(0, 0, 0, 0);
            A[u] = ok && oka ? ld_stream16(wa + c * ES) : z;
            B[u] = ok && okb ? ld_stream16(wb + c * ES) : z;
#pragma unroll
            for (int q = 0; q < NT; q++)
#pragma unroll
                for (int h = 0; h < XC; h++)
                    X[u][q][h] = ok && xok[q] ? *(const uint4 *)(xr[q] + c + 8 * h) : z;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c0 = cb + u * RC; /* the round's first column: uniform over the warp */
            if (c0 >= cols) break;
            if constexpr (FP8) {
                const uint32_t wa4[4] = {A[u].x, A[u].y, A[u].z, A[u].w};
                const uint32_t wb4[4] = {B[u].x, B[u].y, B[u].z, B[u].w};
                float d[NT][4];
#pragma unroll
                for (int q = 0; q < NT; q++) d[q][0] = d[q][1] = d[q][2] = d[q][3] = 0.f;
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    uint32_t alo, ahi, blo, bhi;
                    e4m3x4_to_bf16x2(wa4[s], alo, ahi);
                    e4m3x4_to_bf16x2(wb4[s], blo, bhi);
#pragma unroll
                    for (int q = 0; q < NT; q++) {
                        const uint4 &xv = X[u][q][s >> 1];
                        const uint32_t x0 = (s & 1) ? xv.z : xv.x, x1 = (s & 1) ? xv.w : xv.y;
                        mma_bf16_16816(d[q], alo, blo, ahi, bhi, x0, x1);
                    }
                }
                const float sc = srow[c0 / block_cols];
#pragma unroll
                for (int q = 0; q < NT; q++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[q][e] = fmaf(sc, d[q][e], acc[q][e]);
            } else {
#pragma unroll
                for (int q = 0; q < NT; q++) {
                    mma_bf16_16816(acc[q], A[u].x, B[u].x, A[u].y, B[u].y, X[u][q][0].x, X[u][q][0].y);
                    mma_bf16_16816(acc[q], A[u].z, B[u].z, A[u].w, B[u].w, X[u][q][0].z, X[u][q][0].w);
                }
            }
        }
    }
}

/* The fp8 scale row of the 128-row block holding weight row r (nullptr for bf16). */
__device__ __forceinline__ const float *gemv_tile_scale_row(const dg_weight &w, int64_t r) {
    if (w.dtype != DG_F8E4M3) return nullptr;
    const int64_t lds = (w.cols + w.block_cols - 1) / w.block_cols;
    return w.scale + (r / w.block_rows) * lds;
}

/* Warps per row tile (split-K): the most, a power of two up to max_s and the column iterations,
 * that keep the grid within 16 warps per SM (what the tile's ~120 registers let 256-thread blocks
 * hold: 2 per SM). Past one wave the last blocks run on a third of the SMs: the MoE gate/up at
 * peer-7b batch 1 (704 tiles) took S = 4, 1.33 waves, 38 us on the H100 (ncu), where S = 2 is one
 * wave with twice the columns per warp. DEEPGO_GEMV_SPLIT=overfill keeps the earlier rule (doubling
 * while under 16 warps per SM, so up to twice that; A/B runs). A kernel with fewer registers passes
 * the warps per SM it can hold, and pow2 = false lets S be any count (gemv_w8a8.cu, whose blocks are
 * S warps; the W8A16 kernels keep powers of two). */
inline int gemv_tile_split(int64_t tiles, int64_t iters, int max_s, int warps_per_sm = 16, bool pow2 = true) {
    static const int sms = device_attr(cudaDevAttrMultiProcessorCount, 132);
    static const bool overfill = [] {
        const char *e = getenv("DEEPGO_GEMV_SPLIT");
        return e && strcmp(e, "overfill") == 0;
    }();
    const int64_t cap = (int64_t)warps_per_sm * sms;
    int s = 1;
    if (!pow2) { /* any count: e.g. 5 warps x 448 tiles fill 17 of 20 warps per SM where 4 fill 13.6 */
        while (s + 1 <= max_s && s + 1 <= iters && tiles * (s + 1) <= cap) s++;
        return s;
    }
    while (2 * s <= max_s && 2 * s <= iters && (overfill ? tiles * s < cap : tiles * 2 * s <= cap)) s *= 2;
    return s;
}

/* Warps per SM that Kernel holds in blocks of two warps (its registers and shared memory decide),
 * for gemv_tile_split's warps_per_sm; 16 if the runtime cannot say. */
template <auto Kernel> int tile_warps_per_sm() {
    static const int w = [] {
        int nb = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, Kernel, 64, 0) != cudaSuccess || nb <= 0) {
            cudaGetLastError();
            return 16;
        }
        return std::min(2 * nb, 32);
    }();
    return w;
}

/* Warps per block for split S: one row tile's S warps (two tiles at S = 1), not max_warps / S
 * tiles. Row tiles stream for equal times, so a grid of few large blocks ends unevenly: DeepSeek-V3's
 * fp8 gate/up at batch 1 (1,152 tiles, S = 1) was 144 blocks of 8 warps on 132 SMs, 12 of them
 * holding two, at 56% of copy on the H100. Small blocks let the block scheduler even it out.
 * DEEPGO_GEMV_BLOCK=8 keeps blocks of max_warps (A/B runs). */
inline int gemv_tile_block_warps(int S, int max_warps) {
    static const bool wide = [] {
        const char *e = getenv("DEEPGO_GEMV_BLOCK");
        return e && strcmp(e, "8") == 0;
    }();
    return wide ? max_warps : std::max(S, 2);
}

}  // namespace dg
