/* gemv_tile.cuh: one warp's share of a tensor-core GEMV tile (16 weight rows against up to 8 bf16 x
 * rows), shared by dg_linear's GEMV (gemv_mma.cu) and the MoE decode GEMVs (moe.cu). The mapping
 * is described at the top of gemv_mma.cu. */
#pragma once
#include "gemm.cuh"

namespace dg {

/* Rounds of 4 lanes x 16 bytes loaded before the first mma of an iteration. */
constexpr int GEMV_TILE_U = 4;

/* Columns per 16-byte chunk and per iteration (GEMV_TILE_U rounds of the 4 lanes t). */
template <bool FP8> constexpr int gemv_tile_cols() { return GEMV_TILE_U * 4 * (FP8 ? 16 : 8); }

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

/* acc += this warp's part of D[16 rows][8 x rows] = W[r0 .. r0+16) . x^T over the column iterations
 * ks, ks + S, ... (GEMV_TILE_U rounds each). Lane (g = lane/4, t = lane%4): wa/wb are rows r0+g and
 * r0+g+8 (oka/okb: they exist), xr is x row g (xrow: it exists; rows >= m give zeros), srow the
 * fp8 scale row of the tile's 128-row block. acc[0..1]: row g, x rows 2t, 2t+1; acc[2..3]: row
 * g+8. Every load is a 16-byte streaming load; x rows 16-byte aligned. */
template <bool FP8>
__device__ __forceinline__ void gemv_tile_dot(const char *wa, const char *wb, bool oka, bool okb, const float *srow,
                                              int64_t block_cols, int64_t cols, const __nv_bfloat16 *xr, bool xrow,
                                              int64_t ks, int S, float (&acc)[4]) {
    constexpr int U = GEMV_TILE_U;
    constexpr int ECH = FP8 ? 16 : 8; /* columns per 16-byte chunk */
    constexpr int RC = 4 * ECH;       /* columns per round */
    constexpr int IC = U * RC;        /* columns per iteration */
    constexpr int ES = FP8 ? 1 : 2;   /* weight element bytes */
    const int t = (threadIdx.x & 31) & 3;
    const int64_t nit = (cols + IC - 1) / IC;
    for (int64_t it = ks; it < nit; it += S) {
        const int64_t cb = it * IC;
        uint4 A[U], B[U], X[U][FP8 ? 2 : 1];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = cb + u * RC + t * ECH;
            const bool ok = c < cols;
            const uint4 z = make_uint4(0, 0, 0, 0);
            A[u] = ok && oka ? ld_stream16(wa + c * ES) : z;
            B[u] = ok && okb ? ld_stream16(wb + c * ES) : z;
#pragma unroll
            for (int q = 0; q < (FP8 ? 2 : 1); q++) X[u][q] = ok && xrow ? *(const uint4 *)(xr + c + 8 * q) : z;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c0 = cb + u * RC; /* the round's first column: uniform over the warp */
            if (c0 >= cols) break;
            if constexpr (FP8) {
                const uint32_t wa4[4] = {A[u].x, A[u].y, A[u].z, A[u].w};
                const uint32_t wb4[4] = {B[u].x, B[u].y, B[u].z, B[u].w};
                const uint32_t xw[8] = {X[u][0].x, X[u][0].y, X[u][0].z, X[u][0].w,
                                        X[u][1].x, X[u][1].y, X[u][1].z, X[u][1].w};
                float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    uint32_t alo, ahi, blo, bhi;
                    e4m3x4_to_bf16x2(wa4[s], alo, ahi);
                    e4m3x4_to_bf16x2(wb4[s], blo, bhi);
                    mma_bf16_16816(d, alo, blo, ahi, bhi, xw[2 * s], xw[2 * s + 1]);
                }
                const float sc = srow[c0 / block_cols];
#pragma unroll
                for (int e = 0; e < 4; e++) acc[e] = fmaf(sc, d[e], acc[e]);
            } else {
                mma_bf16_16816(acc, A[u].x, B[u].x, A[u].y, B[u].y, X[u][0].x, X[u][0].y);
                mma_bf16_16816(acc, A[u].z, B[u].z, A[u].w, B[u].w, X[u][0].z, X[u][0].w);
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

/* Warps per row tile (split-K): the fewest, a power of two up to max_s, that give the grid
 * ~16 warps per SM, and no more than half the column iterations. */
inline int gemv_tile_split(int64_t tiles, int64_t iters, int max_s) {
    static const int sms = device_attr(cudaDevAttrMultiProcessorCount, 132);
    int s = 1;
    while (2 * s <= max_s && tiles * s < 16LL * sms && 2 * s <= iters) s *= 2;
    return s;
}

}  // namespace dg
