/*
 * linear.cu: y[m, :] (+)= x[m, :] . W^T  and the per-head matmul of MLA's absorbed form.
 *
 * Math: y[t, i] = sum_j x[t, j] * W[i, j], f32 accumulation; fp8 weights are dequantised as
 * W[i, j] = e4m3(q[i, j]) * scale[i / br][j / bc]. accumulate=1 adds to y (read in y_dtype).
 *
 * Variants of dg_linear (x F32/BF16, y F32/BF16, W F32/BF16/F16/F8E4M3, any shape and stride):
 *   GEMV on tensor cores (m <= 32, bf16 x, bf16 or block-scaled fp8 W): gemv_mma.cu.
 *   GEMV  (m <= 8; m <= 32 where the fast bf16 tile below does not apply): memory-bound path. 8 warps per block, one output row per warp; each lane
 *         streams 16-byte chunks of the weight row (4 f32 / 8 bf16,f16 / 16 fp8), dequantises in
 *         registers (one block scale per chunk when bc % chunk == 0) and keeps m accumulators
 *         (8, or 32 for 9..32 rows: batched decode with fp8/f16/f32 weights, faster than the generic tile);
 *         rows that are not 16-byte aligned take the scalar path. Warp-shuffle reduction.
 *         GEMV_UNROLL (4) chunks are loaded (streaming, no L1 allocation) before their first use,
 *         and x is read in vectors when its rows are 16-byte aligned.
 *   GEMM  (m > 8), BF16 x and BF16 W with 16-byte aligned rows: gemm.cuh's fast tile (64x128x32,
 *         3-stage cp.async pipeline, ldmatrix, mma.sync).
 *         (m > 32), BF16 x and F8E4M3 W (default mode) with 16-byte aligned rows, cols % 16 == 0
 *         and block_cols % 32 == 0: gemm.cuh's fast fp8 tiles (e4m3 bytes staged by cp.async and
 *         converted exactly to bf16 in registers, each block scale applied in f32 to that
 *         K-block's partial sums): 64x128 when that grid fills the GPU at 2 blocks per SM, else
 *         64x64 (4 blocks per SM); DEEPGO_FP8_TILE=64/128 forces one. fp8 at m 9..32 stays on
 *         the GEMV.
 *         Otherwise gemm.cuh tiles, 64x64x32. BF16 x: mma.sync bf16 tensor cores (W rounded to
 *         bf16 in shared memory, f32 accumulators). F32 x: SIMT f32 (exact, slower).
 *   W8A8  (mode DG_LINEAR_W8A8, F8E4M3 weights): x is quantised per token per bc channels to
 *         e4m3 (scale amax/448, kernel.py's act_quant) into the workspace as q*scale in f32, then
 *         the GEMV or the f32 SIMT GEMM run on it. That is an exact emulation of sum_b (x_q.w_q) * xs * ws up to
 *         f32 summation order. On H100/H200 (sm_90a), m > 8, 128x128 blocks, cols % 128 == 0: e4m3 x and
 *         scales into the workspace and the wgmma fp8 GEMM of gemm_fp8_wgmma.cu (DEEPGO_W8A8_GEMM=emulate: never).
 *         On sm_89+, m <= 8, 128-column blocks: gemv_w8a8.cu (x quantised in each block's shared
 *         memory, e4m3 mma.sync; DEEPGO_W8A8_GEMV=emulate: never).
 *         Workspace: m * cols * 4 bytes (rounded up to 256), or what the wgmma path needs where it applies.
 * Layout: x [m, cols] stride ld_x; y [m, rows] stride ld_y; W [rows, cols] stride ld.
 *
 * head_matmul: one small matrix per head, rows r_h = row0 + h*head_stride of W.
 *   trans 0: y[t,h,j] = sum_i x[t,h,i] W[r_h+i, j]: one lane per output column j (coalesced W
 *            rows), the block's 8 warps split i (typed, pipelined loads), fixed-order sum of the
 *            8 partials; 8 tokens per block in registers.
 *   trans 1: y[t,h,j] = sum_i x[t,h,i] W[r_h+j, i]: one warp per output j, lanes along i; for bf16 x
 *            and <= 32 tokens the tensor-core GEMV of gemv_mma.cu, one head per row tile.
 *
 * Test:  go test ./tests/kernels -run 'Linear|HeadMatmul' -v
 * Bench: go test ./tests/kernels -run - -bench Linear
 */
#include "gemm.cuh"
#include "gemm_fp8_wgmma.cuh"
#include "gemv_mma.cuh"
#include "gemv_w8a8.cuh"
#include <stdlib.h>
#include <type_traits>

using namespace dg;

namespace {

constexpr int GEMV_MAX_M = 8;
constexpr int GEMV_SKINNY_M = 32; /* the GEMV takes m <= 32 (GEMV_MAX_M or 32 accumulators) */
constexpr int GEMV_WARPS = 8;
constexpr int GEMV_UNROLL = 4;

/* VEC consecutive x values as f32; vector loads when vec (the row start is 16-byte aligned;
 * VEC * sizeof(XT) is 8, 16, 32 or 64 bytes here). */
template <typename XT, int VEC>
__device__ __forceinline__ void load_x_chunk(const XT *p, bool vec, float (&f)[VEC]) {
    constexpr int BYTES = VEC * (int)sizeof(XT);
    if (vec && BYTES % 16 == 0) {
        constexpr int PER = 16 / (int)sizeof(XT);
#pragma unroll
        for (int q = 0; q < VEC / PER; q++) {
            uint4 v = *(const uint4 *)(p + q * PER);
            const XT *xv = (const XT *)&v;
#pragma unroll
            for (int e = 0; e < PER; e++) f[q * PER + e] = to_f32(xv[e]);
        }
    } else if (vec && BYTES == 8) {
        uint2 v = *(const uint2 *)p;
        const XT *xv = (const XT *)&v;
#pragma unroll
        for (int e = 0; e < VEC; e++) f[e] = to_f32(xv[e]);
    } else {
#pragma unroll
        for (int e = 0; e < VEC; e++) f[e] = to_f32(p[e]);
    }
}

template <typename YT>
__device__ __forceinline__ void store_y(YT *y, int64_t i, float v, int accumulate) {
    if (accumulate) v += to_f32(y[i]);
    y[i] = from_f32<YT>(v);
}

template <typename WT, typename XT, typename YT, int wpr, int MAXM>
__global__ void __launch_bounds__(GEMV_WARPS * 32, 2)
    gemv_kernel(const XT *__restrict__ x, YT *__restrict__ y, dg_weight w, int m, int64_t ld_x,
                int64_t ld_y, int accumulate) {
    /* wpr warps per row (1, 2, 4 or 8): part p of the row's warps takes the lane slots
     * p*32 .. p*32+31 of every 32*wpr chunks; the parts' sums are added in part order. */
    __shared__ float part[wpr > 1 ? GEMV_WARPS : 1][MAXM];
    constexpr int VEC = 16 / sizeof(WT);
    const int warp = threadIdx.x >> 5;
    const int prt = warp % wpr;
    const int lane = (threadIdx.x & 31) + 32 * prt; /* lane slot within the row's wpr*32 */
    const int64_t i = (int64_t)blockIdx.x * (GEMV_WARPS / wpr) + warp / wpr;
    const bool row_ok = i < w.rows;
    if constexpr (wpr == 1) {
        if (!row_ok) return; /* no block barrier in the 1-warp kernel */
    }
    if (threadIdx.x == 0) { /* this block's rows into L2 while the previous kernel finishes */
        const int64_t r0 = (int64_t)blockIdx.x * (GEMV_WARPS / wpr);
        const int64_t nr = std::min<int64_t>(GEMV_WARPS / wpr, w.rows - r0);
        if (nr > 0) prefetch_l2((const WT *)w.data + r0 * w.ld, ((nr - 1) * w.ld + w.cols) * (int64_t)sizeof(WT));
    }
    pdl_enter();
    const int64_t ir = row_ok ? i : 0;
    const int nl = 32 * wpr; /* lane slots per row */
    const WT *wr = (const WT *)w.data + ir * w.ld;
    const int64_t cols = (wpr == 1 || row_ok) ? w.cols : 0;
    const bool fp8 = w.dtype == DG_F8E4M3;
    const float *srow = nullptr;
    if (fp8) srow = w.scale + (ir / w.block_rows) * ((w.cols + w.block_cols - 1) / w.block_cols);

    float acc[MAXM];
#pragma unroll
    for (int t = 0; t < MAXM; t++) acc[t] = 0.f;

    int64_t jv = 0;
    const bool aligned = ((uintptr_t)w.data % 16 == 0) && ((w.ld * (int64_t)sizeof(WT)) % 16 == 0);
    /* x rows read as vectors when every row start is 16-byte aligned */
    const bool xvec = ((uintptr_t)x % 16 == 0) && ((ld_x * (int64_t)sizeof(XT)) % 16 == 0);
    if (aligned) {
        jv = cols - cols % VEC;
        const bool chunk_scale = fp8 && (w.block_cols % VEC == 0);
        /* GEMV_UNROLL 16-byte weight chunks in flight per lane before their first use (8 measured
         * slower on the H100: bench/NOTES.md, pass 4) */
        for (int64_t j0 = (int64_t)lane * VEC; j0 < jv; j0 += (int64_t)nl * VEC * GEMV_UNROLL) {
            uint4 raw[GEMV_UNROLL];
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++)
                if (j0 + (int64_t)nl * VEC * u < jv) raw[u] = ld_stream16(wr + j0 + (int64_t)nl * VEC * u);
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) {
                const int64_t j = j0 + (int64_t)nl * VEC * u;
                if (j >= jv) break;
                const WT *wv = (const WT *)&raw[u];
                float wf[VEC];
                if constexpr (sizeof(WT) == 1) {
                    e4m3x16_to_f32(raw[u], wf); /* two per conversion */
                } else {
#pragma unroll
                    for (int e = 0; e < VEC; e++) wf[e] = to_f32(wv[e]);
                }
                /* fp8 with one scale per chunk: the chunk's sum is scaled once (1 multiply, not 16) */
                float csc = 1.f;
                if (fp8) {
                    if (chunk_scale) {
                        csc = srow[j / w.block_cols];
                    } else {
#pragma unroll
                        for (int e = 0; e < VEC; e++) wf[e] *= srow[(j + e) / w.block_cols];
                    }
                }
#pragma unroll
                for (int t = 0; t < MAXM; t++) {
                    if (t < m) {
                        float xf[VEC];
                        load_x_chunk<XT, VEC>(x + t * ld_x + j, xvec, xf);
                        float s = 0.f;
#pragma unroll
                        for (int e = 0; e < VEC; e++) s = fmaf(wf[e], xf[e], s);
                        acc[t] = fmaf(csc, s, acc[t]); /* csc 1: exactly acc + s */
                    }
                }
            }
        }
    }
    for (int64_t j = jv + lane; j < cols; j += nl) {
        float wf = to_f32(wr[j]);
        if (fp8) wf *= srow[j / w.block_cols];
#pragma unroll
        for (int t = 0; t < MAXM; t++)
            if (t < m) acc[t] = fmaf(wf, to_f32(x[t * ld_x + j]), acc[t]);
    }
    if constexpr (wpr == 1) {
#pragma unroll
        for (int t = 0; t < MAXM; t++) {
            if (t < m) {
                float v = warp_sum(acc[t]);
                if (lane == 0 && row_ok) store_y(y, t * ld_y + i, v, accumulate);
            }
        }
    } else {
#pragma unroll
        for (int t = 0; t < MAXM; t++) {
            if (t < m) {
                float v = warp_sum(acc[t]);
                if ((threadIdx.x & 31) == 0) part[warp][t] = v;
            }
        }
        __syncthreads();
        if (prt == 0 && (threadIdx.x & 31) < m && row_ok) {
            const int t = threadIdx.x & 31;
            float v = 0.f;
#pragma unroll
            for (int q = 0; q < wpr; q++) v += part[warp + q][t];
            store_y(y, t * ld_y + i, v, accumulate);
        }
    }
}

/* Warps per row: 4 for short, wide matrices (kv_a, q_a, the router: too few warps otherwise),
 * 1 for the rest (the 1-warp kernel is a little faster per byte). */
int gemv_wpr(int64_t rows, int64_t cols) { return (rows < 2048 && cols >= 2048) ? 4 : 1; }

template <typename YT>
struct LinearEpi {
    YT *y;
    int64_t ld_y;
    int accumulate;
    __device__ __forceinline__ void operator()(int64_t r, int64_t n, float v) const {
        store_y(y, r * ld_y + n, v, accumulate);
    }
};

template <typename XT, typename YT, bool MMA>
__global__ void __launch_bounds__(MMA ? GEMM_MMA_THREADS : GEMM_SIMT_THREADS)
    gemm_kernel(const XT *__restrict__ x, YT *__restrict__ y, dg_weight w, int64_t m, int64_t ld_x,
                int64_t ld_y, int accumulate) {
    int64_t n0 = (int64_t)blockIdx.x * GEMM_BN;
    int64_t m0 = (int64_t)blockIdx.y * GEMM_BM;
    LinearEpi<YT> epi{y, ld_y, accumulate};
    if (MMA)
        gemm_tile_mma<XT>(x, ld_x, nullptr, m0, m, w, n0, epi);
    else
        gemm_tile_simt<XT>(x, ld_x, nullptr, m0, m, w, n0, epi);
}

template <typename YT>
__global__ void __launch_bounds__(GF_THREADS)
    gemm_fast_kernel(const __nv_bfloat16 *__restrict__ x, YT *__restrict__ y, dg_weight w, int64_t m, int64_t ld_x,
                     int64_t ld_y, int accumulate) {
    extern __shared__ __align__(16) char gsm[];
    int64_t n0 = (int64_t)blockIdx.x * GF_BN;
    int64_t m0 = (int64_t)blockIdx.y * GF_BM;
    LinearEpi<YT> epi{y, ld_y, accumulate};
    gemm_tile_fast(x, ld_x, nullptr, m0, m, (const __nv_bfloat16 *)w.data, w.ld, w.rows, w.cols, n0, epi, gsm);
}

/* bf16 x, e4m3 W (gemm_fast_fp8_ok): gemm.cuh's fast fp8 tiles, block scales on f32 partial sums.
 * BNT 128: gemm_tile_fast_fp8 (64x128, ~190 registers: 2 blocks per SM); BNT 64:
 * gemm_tile_fast_fp8_n64 (64x64, <= 128 registers: 4 blocks per SM, twice the blocks). */
template <typename YT, int BNT>
__global__ void __launch_bounds__(GF_THREADS, BNT == 64 ? 4 : 1)
    gemm_fast_fp8_kernel(const __nv_bfloat16 *__restrict__ x, YT *__restrict__ y, dg_weight w, int64_t m,
                         int64_t ld_x, int64_t ld_y, int accumulate) {
    extern __shared__ __align__(16) char gsm[];
    int64_t n0 = (int64_t)blockIdx.x * BNT;
    int64_t m0 = (int64_t)blockIdx.y * GF_BM;
    LinearEpi<YT> epi{y, ld_y, accumulate};
    const int64_t lds = (w.cols + w.block_cols - 1) / w.block_cols;
    if constexpr (BNT == 64)
        gemm_tile_fast_fp8_n64(x, ld_x, nullptr, m0, m, (const uint8_t *)w.data, w.ld, w.rows, w.cols, w.scale,
                               w.block_rows, w.block_cols, lds, n0, epi, gsm);
    else
        gemm_tile_fast_fp8(x, ld_x, nullptr, m0, m, (const uint8_t *)w.data, w.ld, w.rows, w.cols, w.scale,
                           w.block_rows, w.block_cols, lds, n0, epi, gsm);
}

/* Which fast fp8 tile a GEMM gets: the 64x128 one when its grid fills the GPU at 2 blocks per SM,
 * else the 64x64 one (prefill grids are often small: rows 576 x m 512 is 40 blocks of 64x128).
 * DEEPGO_FP8_TILE=64 or =128 forces one (read once per process; for A/B runs and tests). */
int fp8_tile_width(int64_t rows, int64_t m) {
    static const int forced = [] {
        const char *e = getenv("DEEPGO_FP8_TILE");
        int v = e ? atoi(e) : 0;
        return v == 64 || v == 128 ? v : 0;
    }();
    if (forced) return forced;
    static const int sms = device_attr(cudaDevAttrMultiProcessorCount, 132);
    return ceil_div(rows, GF_BN) * ceil_div(m, GF_BM) >= 2 * (int64_t)sms ? 128 : 64;
}

/* ---- dispatch ---- */

template <typename XT, typename YT>
dg_status launch_linear_xy(const XT *x, YT *y, const dg_weight &w, int64_t m, int64_t ld_x, int64_t ld_y,
                           int accumulate, bool mma, cudaStream_t st) {
    /* The fast bf16 tile, where it applies, beats the 32-row GEMV at 9..32 rows (peer-7b batch 32:
     * linear 3.5 ms/step on the tile, 8.6 ms on the GEMV); the generic tiles (fp8, f16, f32 weights)
     * do not (fp8 batch 32: 198 -> 290 tok/s with the GEMV). */
    bool fast_tile = false;
    if constexpr (std::is_same<XT, __nv_bfloat16>::value)
        fast_tile = mma && w.dtype == DG_BF16 && gemm_fast_ok(x, ld_x, w.cols) && gemm_fast_ok(w.data, w.ld, w.cols);
    if constexpr (std::is_same<XT, __nv_bfloat16>::value) {
        if (m <= GEMV_SKINNY_M && gemv_mma_ok(x, ld_x, w, m)) return gemv_mma<YT>(x, y, w, m, ld_x, ld_y, accumulate, st);
    }
    if (m <= GEMV_MAX_M || (m <= GEMV_SKINNY_M && !fast_tile)) {
        const int wpr = gemv_wpr(w.rows, w.cols);
        unsigned grid = (unsigned)ceil_div(w.rows, GEMV_WARPS / wpr);
        /* up to 8 rows: 8 accumulators per lane; 9..32 rows (batched decode) where the fast bf16
         * tile does not apply: 32, one pass over the weight for all of them. */
#define DG_GEMV_M(WT, MM)                                                                                         \
    do {                                                                                                          \
        if (wpr == 4)                                                                                             \
            launch_pdl(gemv_kernel<WT, XT, YT, 4, MM>, grid, GEMV_WARPS * 32, 0, st, x, y, w, (int)m, ld_x, ld_y, accumulate); \
        else                                                                                                      \
            launch_pdl(gemv_kernel<WT, XT, YT, 1, MM>, grid, GEMV_WARPS * 32, 0, st, x, y, w, (int)m, ld_x, ld_y, accumulate); \
    } while (0)
#define DG_GEMV(WT)                                        \
    do {                                                   \
        if (m <= GEMV_MAX_M) DG_GEMV_M(WT, GEMV_MAX_M);    \
        else DG_GEMV_M(WT, GEMV_SKINNY_M);                 \
    } while (0)
        switch (w.dtype) {
        case DG_F32: DG_GEMV(float); break;
        case DG_BF16: DG_GEMV(__nv_bfloat16); break;
        case DG_F16: DG_GEMV(__half); break;
        case DG_F8E4M3: DG_GEMV(fp8_t); break;
        }
#undef DG_GEMV
#undef DG_GEMV_M
        DG_LAUNCHED("gemv_kernel");
        return DG_OK;
    }
    DG_REQUIRE(ceil_div(m, GEMM_BM) <= 65535, "dg_linear: m %lld too large for one call", (long long)m);
    if constexpr (std::is_same<XT, __nv_bfloat16>::value) {
        if (fast_tile) {
            dim3 grid((unsigned)ceil_div(w.rows, GF_BN), (unsigned)ceil_div(m, GF_BM));
            gemm_fast_kernel<YT><<<grid, GF_THREADS, GEMM_FAST_SMEM, st>>>(x, y, w, m, ld_x, ld_y, accumulate);
            DG_LAUNCHED("gemm_fast_kernel");
            return DG_OK;
        }
        /* fp8 W, m > 32 only (9..32 stay on the GEMV above: measured faster than the generic tile,
         * not yet compared with this one). W8A8 never gets here (it runs on f32 x). */
        if (mma && w.dtype == DG_F8E4M3 && gemm_fast_ok(x, ld_x, w.cols) &&
            gemm_fast_fp8_ok(w.data, w.ld, w.cols, w.block_rows, w.block_cols)) {
            if (fp8_tile_width(w.rows, m) == 128) {
                dim3 grid((unsigned)ceil_div(w.rows, GF_BN), (unsigned)ceil_div(m, GF_BM));
                gemm_fast_fp8_kernel<YT, 128>
                    <<<grid, GF_THREADS, GEMM_FAST_FP8_SMEM, st>>>(x, y, w, m, ld_x, ld_y, accumulate);
            } else {
                dim3 grid((unsigned)ceil_div(w.rows, 64), (unsigned)ceil_div(m, GF_BM));
                gemm_fast_fp8_kernel<YT, 64>
                    <<<grid, GF_THREADS, GEMM_FAST_FP8_SMEM, st>>>(x, y, w, m, ld_x, ld_y, accumulate);
            }
            DG_LAUNCHED("gemm_fast_fp8_kernel");
            return DG_OK;
        }
    }
    dim3 grid((unsigned)ceil_div(w.rows, GEMM_BN), (unsigned)ceil_div(m, GEMM_BM));
    if (mma)
        gemm_kernel<XT, YT, true><<<grid, GEMM_MMA_THREADS, 0, st>>>(x, y, w, m, ld_x, ld_y, accumulate);
    else
        gemm_kernel<XT, YT, false><<<grid, GEMM_SIMT_THREADS, 0, st>>>(x, y, w, m, ld_x, ld_y, accumulate);
    DG_LAUNCHED("gemm_kernel");
    return DG_OK;
}

template <typename XT>
dg_status launch_linear_x(const XT *x, void *y, int32_t y_dtype, const dg_weight &w, int64_t m, int64_t ld_x,
                          int64_t ld_y, int accumulate, bool mma, cudaStream_t st) {
    if (y_dtype == DG_F32)
        return launch_linear_xy<XT, float>(x, (float *)y, w, m, ld_x, ld_y, accumulate, mma, st);
    return launch_linear_xy<XT, __nv_bfloat16>(x, (__nv_bfloat16 *)y, w, m, ld_x, ld_y, accumulate, mma, st);
}

const char *linear_unsupported_reason(const dg_linear_args *a) {
    if (!is_act_dtype(a->x_dtype)) return "x_dtype must be F32 or BF16";
    if (!is_act_dtype(a->y_dtype)) return "y_dtype must be F32 or BF16";
    switch (a->w.dtype) {
    case DG_F32: case DG_BF16: case DG_F16: case DG_F8E4M3: break;
    default: return "weight dtype must be F32, BF16, F16 or F8E4M3";
    }
    if (a->mode != DG_LINEAR_DEFAULT && a->mode != DG_LINEAR_W8A8) return "unknown mode";
    if (a->mode == DG_LINEAR_W8A8 && a->w.dtype != DG_F8E4M3) return "W8A8 needs F8E4M3 weights";
    return nullptr;
}

int64_t align256(int64_t b) { return (b + 255) / 256 * 256; }

}  // namespace

extern "C" {

DG_API int32_t dg_linear_supported(const dg_linear_args *a) {
    if (!a) return 0;
    return linear_unsupported_reason(a) == nullptr ? 1 : 0;
}

DG_API int64_t dg_linear_workspace_size(const dg_linear_args *a) {
    if (!a || a->mode != DG_LINEAR_W8A8) return 0;
    /* a caller that sizes at its largest m may run <= 32 rows later: those take the emulation */
    if (w8a8_wgmma_ok(a))
        return std::max(w8a8_wgmma_workspace_size(a), align256(std::min<int64_t>(a->m, 32) * a->w.cols * 4));
    return align256(a->m * a->w.cols * 4);
}

DG_API dg_status dg_linear(const dg_linear_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_linear");
    const char *why = linear_unsupported_reason(a);
    if (why) {
        int st = (a->mode == DG_LINEAR_W8A8 && a->w.dtype != DG_F8E4M3) ? DG_ERR_INVALID : DG_ERR_UNSUPPORTED;
        return fail(st, "dg_linear: %s (x %s, y %s, w %s, mode %d)", why, dtype_name(a->x_dtype),
                    dtype_name(a->y_dtype), dtype_name(a->w.dtype), a->mode);
    }
    dg_status st = check_weight(a->w, "dg_linear", true);
    if (st) return st;
    DG_REQUIRE(a->m >= 0, "dg_linear: m %lld", (long long)a->m);
    DG_REQUIRE(a->ld_x >= a->w.cols && a->ld_y >= a->w.rows,
               "dg_linear: ld_x %lld < cols %lld or ld_y %lld < rows %lld", (long long)a->ld_x,
               (long long)a->w.cols, (long long)a->ld_y, (long long)a->w.rows);
    if (a->m == 0 || a->w.rows == 0) return DG_OK;
    DG_REQUIRE(a->x && a->y, "dg_linear: NULL x or y");
    cudaStream_t cs = stream_of(s);
    if (a->mode == DG_LINEAR_W8A8) {
        DG_REQUIRE(a->workspace != nullptr, "dg_linear: W8A8 needs a workspace of %lld bytes",
                   (long long)dg_linear_workspace_size(a));
        DG_REQUIRE(a->m <= INT32_MAX, "dg_linear: m too large");
        if (gemv_w8a8_ok(a)) return gemv_w8a8(a, cs);
        if (w8a8_wgmma_ok(a)) return w8a8_wgmma(a, cs);
        float *xq = (float *)a->workspace;
        if (a->x_dtype == DG_F32)
            act_quant_kernel<float><<<(unsigned)a->m, 128, 0, cs>>>((const float *)a->x, a->ld_x, nullptr, nullptr,
                                                                 xq, a->w.cols, a->w.cols, a->w.block_cols, nullptr);
        else
            act_quant_kernel<__nv_bfloat16><<<(unsigned)a->m, 128, 0, cs>>>(
                (const __nv_bfloat16 *)a->x, a->ld_x, nullptr, nullptr, xq, a->w.cols, a->w.cols, a->w.block_cols,
                nullptr);
        DG_LAUNCHED("act_quant_kernel");
        /* f32 SIMT on the fake-quantised x: exact emulation (bf16 copies of q*scale would not be). */
        return launch_linear_x<float>(xq, a->y, a->y_dtype, a->w, a->m, a->w.cols, a->ld_y, a->accumulate, false, cs);
    }
    if (a->x_dtype == DG_F32)
        return launch_linear_x<float>((const float *)a->x, a->y, a->y_dtype, a->w, a->m, a->ld_x, a->ld_y,
                                      a->accumulate, false, cs);
    return launch_linear_x<__nv_bfloat16>((const __nv_bfloat16 *)a->x, a->y, a->y_dtype, a->w, a->m, a->ld_x,
                                          a->ld_y, a->accumulate, true, cs);
}

}  // extern "C"

/* ---------------------------------------------------------------------------------------------
 * head_matmul
 * ------------------------------------------------------------------------------------------- */
namespace {

constexpr int HM_TOK = 8;

/* trans 0, typed: lane = output column j (coalesced W rows), the block's 8 warps split the i
 * range (i = warp, warp+8, ...; loads pipelined by the unrolled typed loop), then a fixed-order sum
 * of the 8 partials in shared memory. grid (ceil(out/32), heads, ceil(n_tok/HM_TOK)). */
constexpr int HMF_WARPS = 8;
/* trans 0: lane l of the block owns CPL consecutive output columns j (CPL 4 when the rows allow
 * vector loads of 4 weights, else 1), the 8 warps split i, fixed-order sum of their partials.
 * The column's fp8 scale block is found once per lane; the row's once per i. */
template <typename WT, typename XT, int CPL>
__global__ void __launch_bounds__(HMF_WARPS * 32) head_matmul_n_fast_kernel(dg_head_matmul_args a) {
    __shared__ float part[HMF_WARPS][HM_TOK][32 * CPL + 1];
    pdl_enter();
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int64_t j = ((int64_t)blockIdx.x * 32 + lane) * CPL;
    const int64_t h = blockIdx.y;
    const int64_t t0 = (int64_t)blockIdx.z * HM_TOK;
    const int nt = (int)min((int64_t)HM_TOK, a.n_tok - t0);
    const int64_t r0 = a.row0 + h * a.head_stride;
    float acc[HM_TOK][CPL];
#pragma unroll
    for (int t = 0; t < HM_TOK; t++)
#pragma unroll
        for (int c = 0; c < CPL; c++) acc[t][c] = 0.f;
    if (j < a.out_dim) { /* CPL 4: out_dim % 4 == 0, so all 4 columns exist */
        const WT *W = (const WT *)a.w.data;
        const XT *X = (const XT *)a.x + t0 * a.ld_x_tok + h * a.ld_x_head;
        const bool fp8 = sizeof(WT) == 1;
        const int64_t ncb = fp8 ? (a.w.cols + a.w.block_cols - 1) / a.w.block_cols : 0;
        const float *scol = fp8 ? a.w.scale + j / a.w.block_cols : nullptr; /* CPL | block_cols */
#pragma unroll 4
        for (int64_t i = wp; i < a.in_dim; i += HMF_WARPS) {
            float wv[CPL];
            const WT *src = W + (r0 + i) * a.w.ld + j;
            if constexpr (CPL == 4) {
                if constexpr (sizeof(WT) == 1) {
                    const uint32_t q = *(const uint32_t *)src;
                    const float2 lo = e4m3x2_to_f32x2((uint16_t)(q & 0xffffu)), hi = e4m3x2_to_f32x2((uint16_t)(q >> 16));
                    wv[0] = lo.x, wv[1] = lo.y, wv[2] = hi.x, wv[3] = hi.y;
                } else if constexpr (sizeof(WT) == 2) {
                    const uint2 q = *(const uint2 *)src;
                    const WT *e = (const WT *)&q;
#pragma unroll
                    for (int c = 0; c < 4; c++) wv[c] = to_f32(e[c]);
                } else {
                    const float4 q = *(const float4 *)src;
                    wv[0] = q.x, wv[1] = q.y, wv[2] = q.z, wv[3] = q.w;
                }
            } else {
                wv[0] = to_f32(src[0]);
            }
            if (fp8) {
                const float sc = scol[((r0 + i) / a.w.block_rows) * ncb];
#pragma unroll
                for (int c = 0; c < CPL; c++) wv[c] *= sc;
            }
#pragma unroll
            for (int t = 0; t < HM_TOK; t++) {
                if (t < nt) {
                    const float xv = to_f32(X[t * a.ld_x_tok + i]);
#pragma unroll
                    for (int c = 0; c < CPL; c++) acc[t][c] = fmaf(xv, wv[c], acc[t][c]);
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < HM_TOK; t++)
#pragma unroll
        for (int c = 0; c < CPL; c++) part[wp][t][lane * CPL + c] = acc[t][c];
    __syncthreads();
    /* 32 * CPL columns of the block, summed over the warps in order by all threads */
    for (int idx = threadIdx.x; idx < nt * 32 * CPL; idx += blockDim.x) {
        const int t = idx / (32 * CPL), cc = idx % (32 * CPL);
        const int64_t jj = (int64_t)blockIdx.x * 32 * CPL + cc;
        if (jj >= a.out_dim) continue;
        float v = 0.f;
#pragma unroll
        for (int q = 0; q < HMF_WARPS; q++) v += part[q][t][cc];
        st_elem(a.y, a.y_dtype, (t0 + t) * a.ld_y_tok + h * a.ld_y_head + jj, v);
    }
}

/* 4 columns per lane when every row's columns [j, j + 4) are one aligned vector and, for fp8, in
 * one scale block. */
bool hm_vec4(const dg_head_matmul_args *a) {
    const int64_t es = dtype_size(a->w.dtype);
    return a->out_dim % 4 == 0 && a->w.ld % 4 == 0 && (uintptr_t)a->w.data % (4 * es) == 0 &&
           (a->w.dtype != DG_F8E4M3 || a->w.block_cols % 4 == 0);
}

template <typename WT>
void launch_hm_fast(const dg_head_matmul_args *a, cudaStream_t cs) {
    const bool v4 = hm_vec4(a);
    dim3 grid((unsigned)ceil_div(a->out_dim, v4 ? 128 : 32), (unsigned)a->n_heads, (unsigned)ceil_div(a->n_tok, HM_TOK));
    if (a->x_dtype == DG_F32) {
        if (v4) launch_pdl(head_matmul_n_fast_kernel<WT, float, 4>, grid, HMF_WARPS * 32, 0, cs, *a);
        else launch_pdl(head_matmul_n_fast_kernel<WT, float, 1>, grid, HMF_WARPS * 32, 0, cs, *a);
    } else {
        if (v4) launch_pdl(head_matmul_n_fast_kernel<WT, __nv_bfloat16, 4>, grid, HMF_WARPS * 32, 0, cs, *a);
        else launch_pdl(head_matmul_n_fast_kernel<WT, __nv_bfloat16, 1>, grid, HMF_WARPS * 32, 0, cs, *a);
    }
}

template <typename WT, typename XT>
__global__ void head_matmul_t_kernel(dg_head_matmul_args a) {
    /* trans 1: warp per output j, lanes along i (the W row r_h + j); typed, 4 loads in flight. */
    pdl_enter();
    int lane = threadIdx.x & 31;
    int64_t j = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int64_t h = blockIdx.y;
    int64_t t0 = (int64_t)blockIdx.z * HM_TOK;
    if (j >= a.out_dim) return;
    int64_t r = a.row0 + h * a.head_stride + j;
    int nt = (int)min((int64_t)HM_TOK, a.n_tok - t0);
    const WT *wr = (const WT *)a.w.data + r * a.w.ld;
    const XT *X = (const XT *)a.x + t0 * a.ld_x_tok + h * a.ld_x_head;
    const bool fp8 = sizeof(WT) == 1;
    const float *srow = fp8 ? a.w.scale + (r / a.w.block_rows) * ((a.w.cols + a.w.block_cols - 1) / a.w.block_cols)
                            : nullptr;
    float acc[HM_TOK];
#pragma unroll
    for (int t = 0; t < HM_TOK; t++) acc[t] = 0.f;
#pragma unroll 4
    for (int64_t i = lane; i < a.in_dim; i += 32) {
        float wv = to_f32(wr[i]);
        if (fp8) wv *= srow[i / a.w.block_cols];
#pragma unroll
        for (int t = 0; t < HM_TOK; t++)
            if (t < nt) acc[t] = fmaf(to_f32(X[t * a.ld_x_tok + i]), wv, acc[t]);
    }
#pragma unroll
    for (int t = 0; t < HM_TOK; t++) {
        if (t < nt) {
            float v = warp_sum(acc[t]);
            if (lane == 0) st_elem(a.y, a.y_dtype, (t0 + t) * a.ld_y_tok + h * a.ld_y_head + j, v);
        }
    }
}

template <typename WT>
void launch_hm_t(const dg_head_matmul_args *a, dim3 grid, cudaStream_t cs) {
    if (a->x_dtype == DG_F32)
        launch_pdl(head_matmul_t_kernel<WT, float>, grid, 256, 0, cs, *a);
    else
        launch_pdl(head_matmul_t_kernel<WT, __nv_bfloat16>, grid, 256, 0, cs, *a);
}

}  // namespace

extern "C" DG_API dg_status dg_head_matmul(const dg_head_matmul_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_head_matmul");
    dg_status st = check_weight(a->w, "dg_head_matmul", true);
    if (st) return st;
    DG_REQUIRE(is_act_dtype(a->x_dtype) && is_act_dtype(a->y_dtype), "dg_head_matmul: x %s, y %s (F32 or BF16)",
               dtype_name(a->x_dtype), dtype_name(a->y_dtype));
    DG_REQUIRE(a->n_tok >= 0 && a->n_heads >= 0 && a->in_dim >= 0 && a->out_dim >= 0,
               "dg_head_matmul: negative shape");
    if (a->trans == 0)
        DG_REQUIRE(a->out_dim == a->w.cols, "dg_head_matmul: trans 0 needs out_dim %lld == w.cols %lld",
                   (long long)a->out_dim, (long long)a->w.cols);
    else
        DG_REQUIRE(a->in_dim == a->w.cols, "dg_head_matmul: trans 1 needs in_dim %lld == w.cols %lld",
                   (long long)a->in_dim, (long long)a->w.cols);
    int64_t span = a->trans == 0 ? a->in_dim : a->out_dim;
    if (a->n_heads > 0 && span > 0)
        DG_REQUIRE(a->row0 >= 0 && a->row0 + (a->n_heads - 1) * a->head_stride + span <= a->w.rows,
                   "dg_head_matmul: head rows run past w.rows %lld", (long long)a->w.rows);
    if (a->n_tok == 0 || a->n_heads == 0 || a->out_dim == 0) return DG_OK;
    DG_REQUIRE(a->x && a->y, "dg_head_matmul: NULL x or y");
    DG_REQUIRE(a->n_heads <= 65535 && ceil_div(a->n_tok, HM_TOK) <= 65535, "dg_head_matmul: too many heads/tokens");
    cudaStream_t cs = stream_of(s);
    if (a->trans == 0) {
        switch (a->w.dtype) {
        case DG_BF16: launch_hm_fast<__nv_bfloat16>(a, cs); break;
        case DG_F16: launch_hm_fast<__half>(a, cs); break;
        case DG_F8E4M3: launch_hm_fast<fp8_t>(a, cs); break;
        default: launch_hm_fast<float>(a, cs); break;
        }
    } else {
        if (head_matmul_mma_ok(a)) return head_matmul_mma(a, cs);
        dim3 grid((unsigned)ceil_div(a->out_dim, 8), (unsigned)a->n_heads, (unsigned)ceil_div(a->n_tok, HM_TOK));
        switch (a->w.dtype) {
        case DG_BF16: launch_hm_t<__nv_bfloat16>(a, grid, cs); break;
        case DG_F16: launch_hm_t<__half>(a, grid, cs); break;
        case DG_F8E4M3: launch_hm_t<fp8_t>(a, grid, cs); break;
        default: launch_hm_t<float>(a, grid, cs); break;
        }
    }
    DG_LAUNCHED("head_matmul_kernel");
    return DG_OK;
}
