/* w8a8_tile.cuh: the W8A8 decode tile, shared by dg_linear's W8A8 GEMV (gemv_w8a8.cu) and the W8A8
 * MoE decode GEMVs (moe_gemv_w8a8.cu): each warp quantises the columns of the few x rows it is
 * about to use (per token per 128 channels, act_quant's arithmetic) into its own shared memory and
 * streams 16 rows of e4m3 weights through mma.sync m16n8k32 e4m3 x e4m3 (sm_89+).
 *
 * Why: the W8A16 tile (gemv_tile.cuh) converts every weight to bf16 before its mma, 8 conversions
 * and 4 mma per 16-byte chunk pair, and reached 58-78% of copy on the H100 where bf16 weights
 * reach 88-95%. With x in e4m3 the weight bytes are the mma operand as loaded: 2 mma per round,
 * no conversion, as few instructions per byte as the bf16 tile.
 *
 * Mapping (as in gemv_mma.cu, where the sum over k ignores which column sits in which k slot as
 * long as A and B agree): lane (g = lane / 4, t = lane % 4) loads the 16 bytes at column
 * round + 16 t of rows g and g + 8. m16n8k32's A registers a0/a2 are row g at k slots 4t..4t+3 and
 * 16+4t..16+4t+3, a1/a3 row g + 8 at the same slots, B's b0/b1 column (token) g at those slots, so
 * one mma takes the chunk's first 8 bytes (words x, y) and a second its last 8 (z, w), with B the
 * same columns of token g's quantised x. A round of 64 columns lies in one 128-column x block and
 * one weight scale block (block_cols % 64 == 0), so its exact integer-valued sum is scaled once in
 * f32 by w_scale * x_scale of each token.
 */
#pragma once
#include "gemv_tile.cuh"

namespace dg {

constexpr int W8V_XB = 128; /* x quantisation block (columns) the tile handles */

/* d += A . B, A 16x32 e4m3 (row), B 32x8 e4m3 (col), f32 accumulate. */
__device__ __forceinline__ void mma_e4m3_16832(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    __trap(); /* the host dispatches here only on sm_89+ */
#endif
}

/* A warp's shared buffer for its iteration of quantised x: MT token rows of 256 bytes, each 64
 * bytes longer so that consecutive rows fall in the other half of the banks (lanes of 2 tokens
 * share one 128-byte load phase), then the rows' two scales. */
constexpr int W8V_IC = 256; /* columns per iteration: 4 rounds of 64, two x blocks */
constexpr int W8V_XLD = W8V_IC + 64;
template <int MT> constexpr int w8v_warp_smem() { return MT * W8V_XLD + (MT * 8 + 15) / 16 * 16; } /* 16-byte multiple */

/* The 8 f32 elements of x at [c, c + 8) (zeros past cols): 16-byte aligned rows, cols % 4 == 0. */
__device__ __forceinline__ void w8v_load8(const float *row, int64_t c, int64_t cols, float (&v)[8]) {
    if (c >= cols) {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = 0.f;
        return;
    }
    const float4 a = *(const float4 *)(row + c);
    const float4 b = c + 4 < cols ? *(const float4 *)(row + c + 4) : make_float4(0.f, 0.f, 0.f, 0.f);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

/* acc += this warp's split of D[16 rows][8 tokens] = W[r0 .. r0+16) . q(x)^T over the column
 * iterations ks, ks + S, ... of 256 columns. wa/wb, oka/okb, srow, wbc: the tile's rows, which
 * exist, their scale row and the weight's block_cols (% 64 == 0). xr[q]: token q's x row (q < m
 * <= MT; bf16 or f32, 16-byte aligned, cols % 16 == 0), quantised here per 128 columns an iteration
 * at a time: its loads are issued with the weights' and the quantisation runs while those are in
 * flight (a block-wide staging of whole rows before the loop cost 4-12 us at DeepSeek-V3 widths on
 * the H100). buf: the warp's w8v_warp_smem<MT>() bytes. acc as gemv_tile_dot's with one group:
 * [0..1] row g, tokens 2t, 2t+1; [2..3] row g + 8. */
template <int MT, typename XT>
__device__ __forceinline__ void w8v_tile_dot(const char *wa, const char *wb, bool oka, bool okb, const float *srow,
                                             int64_t wbc, int64_t cols, const XT *const (&xr)[MT], int m,
                                             uint8_t *buf, int64_t ks, int S, float (&acc)[4]) {
    constexpr int U = 4, RC = 64;
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, h = lane >> 4, l16 = lane & 15;
    float *xsb = (float *)(buf + MT * W8V_XLD); /* [MT][2] */
    const int64_t nit = (cols + W8V_IC - 1) / W8V_IC;
    const bool b128 = wbc == 128;
    for (int64_t it = ks; it < nit; it += S) {
        const int64_t cb = it * W8V_IC;
        uint4 A[U], B[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = cb + u * RC + t * 16;
            const bool ok = c < cols;
            const uint4 z = make_uint4(0, 0, 0, 0);
            A[u] = ok && oka ? ld_stream16(wa + c) : z;
            B[u] = ok && okb ? ld_stream16(wb + c) : z;
        }
        /* x: lane (h, l16) takes columns cb + 128 h + 8 l16 of each token; bf16 rows are loaded for
         * all tokens at once (4 registers each), f32 ones a token at a time (the f32 path is the
         * exact-activation mode, not the fast one: 8 tokens' floats would cost 64 registers) */
        const int64_t xc = cb + 128 * h + 8 * l16;
        auto put = [&](int q, const float(&v)[8]) {
            float sc;
            const uint2 p = act_quant8(v, &sc);
            *(uint2 *)(buf + q * W8V_XLD + 128 * h + 8 * l16) = p;
            if (l16 == 0) xsb[2 * q + h] = sc;
        };
        if constexpr (sizeof(XT) == 2) {
            uint4 raw[MT];
#pragma unroll
            for (int q = 0; q < MT; q++)
                raw[q] = q < m && xc < cols ? *(const uint4 *)(xr[q] + xc) : make_uint4(0, 0, 0, 0);
            __syncwarp(); /* the previous iteration's reads of buf are done */
#pragma unroll
            for (int q = 0; q < MT; q++) {
                if (q >= m) break; /* uniform */
                const XT *e = (const XT *)&raw[q];
                float v[8];
#pragma unroll
                for (int i = 0; i < 8; i++) v[i] = to_f32(e[i]);
                put(q, v);
            }
        } else {
            __syncwarp();
            for (int q = 0; q < m; q++) {
                float v[8];
                w8v_load8(xr[q], xc, cols, v);
                put(q, v);
            }
        }
        __syncwarp();
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c0 = cb + u * RC; /* uniform over the warp */
            if (c0 >= cols) break;
            const uint4 X = g < m ? *(const uint4 *)(buf + g * W8V_XLD + u * RC + t * 16) : make_uint4(0, 0, 0, 0);
            float d[4] = {0.f, 0.f, 0.f, 0.f};
            mma_e4m3_16832(d, A[u].x, B[u].x, A[u].y, B[u].y, X.x, X.y);
            mma_e4m3_16832(d, A[u].z, B[u].z, A[u].w, B[u].w, X.z, X.w);
            const float sw = srow[b128 ? (c0 >> 7) : c0 / wbc];
            const float s0 = 2 * t < m ? sw * xsb[4 * t + (u >> 1)] : 0.f;
            const float s1 = 2 * t + 1 < m ? sw * xsb[4 * t + 2 + (u >> 1)] : 0.f;
            acc[0] = fmaf(s0, d[0], acc[0]);
            acc[1] = fmaf(s1, d[1], acc[1]);
            acc[2] = fmaf(s0, d[2], acc[2]);
            acc[3] = fmaf(s1, d[3], acc[3]);
        }
    }
}

/* Whether the tile reads w: e4m3 with gemv_tile_layout_ok's layout (16-byte rows, 16-row /
 * 64-column scale blocks). Host and device. */
__host__ __device__ __forceinline__ bool w8v_weight_ok(const dg_weight &w) {
    return w.dtype == DG_F8E4M3 && gemv_tile_layout_ok(w);
}

}  // namespace dg
