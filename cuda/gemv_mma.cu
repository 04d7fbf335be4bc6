/*
 * gemv_mma.cu: dg_linear for m <= 32 rows of bf16 x against bf16 or fp8 (block-scaled) weights, on
 * tensor cores. linear.cu dispatches here when the layout suits (gemv_mma_ok); its SIMT GEMV
 * takes the rest (f32/f16 weights, f32 x, odd strides) and DEEPGO_GEMV=simt forces it.
 *
 * Why: the SIMT GEMV converts every weight to f32 and runs a dependent FMA chain per chunk and
 * token; on the H100 Nsight Compute showed peer-7b's o_proj (2048 x 2048, m=1) at 650 GB/s,
 * 0.22 eligible warps per scheduler, ~29 cycles per issued instruction (scoreboard waits on the
 * chains), and fp8 no faster than bf16. Here one mma.sync m16n8k16 takes 16 weight rows x 16
 * columns against the 8 x rows (tokens) as B, so the only per-element work left is fp8 -> bf16
 * (exact, gemm.cuh's e4m3x4_to_bf16x2) and the bytes in flight decide the speed.
 *
 * Mapping. A warp owns 16 weight rows (i0 + g and i0 + g + 8 for lane g = lane / 4) and, with
 * S warps per row tile (split-K, 1..8 chosen so the grid has ~16 warps per SM), every S-th
 * column block. Lane t = lane % 4 loads one 16-byte chunk of each of its two rows per round:
 * bf16 8 columns (2 k-steps), fp8 16 columns (4 k-steps), at column round + t * chunk. The sum
 * over k does not care which column sits in which k slot, only that A and B agree: lane (g, t)
 * gives A the 32-bit words of its chunks in order and gives B the same columns of x row g, so
 * D[row][n] = sum_col W[row][col] * x[n][col] exactly as the SIMT kernel (f32 sums of exact
 * products; x rows n >= m are zero). fp8: a round of 64 columns lies in one 128-column scale
 * block and a row tile in one 128-row block, so each round's mma sum is scaled once in f32.
 * U = 4 rounds of loads are issued before the first mma. 9..32 x rows (batched decode) are 2 or
 * 4 groups of 8, each its own mma against the same weight fragments (U = 2 for 4 groups, for
 * registers), so the weights are still read once. The S partial tiles meet in shared memory and
 * are added in warp order (deterministic). The tile itself is gemv_tile.cuh's, shared with the
 * MoE decode GEMVs.
 */
#include "gemv_mma.cuh"

#include "gemv_tile.cuh"
#include <stdlib.h>
#include <string.h>

using namespace dg;

namespace {

typedef __nv_bfloat16 bf;
constexpr int WARPS = 8;

/* Output rows in heads (dg_head_matmul trans 1): head h owns weight rows row0 + h*hs + j for
 * j < out, its own x row (x + h*ld_x_head) and y (y + h*ld_y_head + j). A plain linear is one
 * head of w.rows rows. */
struct Heads {
    int64_t out, n, row0, hs, ld_x_head, ld_y_head;
};

template <bool FP8, int NT, typename YT>
__global__ void __launch_bounds__(WARPS * 32) gemv_mma_kernel(const bf *__restrict__ x, YT *__restrict__ y, dg_weight w,
                                                            int m, int64_t ld_x, int64_t ld_y, int accumulate, int S,
                                                            Heads hd) {
    constexpr int IC = gemv_tile_cols<FP8, NT>(); /* columns per iteration */
    constexpr int ES = FP8 ? 1 : 2;           /* weight element bytes */
    __shared__ float part[WARPS][32][NT][4];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int tpb = (int)(blockDim.x >> 5) / S; /* row tiles per block */
    const int64_t tph = (hd.out + 15) / 16; /* row tiles per head */
    const int64_t tile = (int64_t)blockIdx.x * tpb + warp / S;
    const int ks = warp % S;
    const int64_t h = tile / tph, j0 = (tile - h * tph) * 16; /* the tile's head and first output */
    const bool live = h < hd.n;
    const int64_t wr0 = hd.row0 + h * hd.hs + j0;           /* its first weight row */
    const int64_t nrow = live ? std::min<int64_t>(16, hd.out - j0) : 0;
    /* While the previous kernel finishes: the first two iterations of each of the tile's rows into
     * L2 (lane r, row r). Whole rows would ask for more than L2 holds on the big matrices (every
     * resident warp of lm_head at once: ~480 MB) and evict one another before use. */
    if (lane < nrow && ks * IC < w.cols) {
        const int64_t c = ks * IC;
        prefetch_l2((const char *)w.data + ((wr0 + lane) * w.ld + c) * ES, std::min<int64_t>(2 * IC, w.cols - c) * ES);
    }
    pdl_enter();
    const bool oka = g < nrow, okb = g + 8 < nrow;
    const char *wa = (const char *)w.data + (oka ? wr0 + g : 0) * w.ld * ES;
    const char *wb = (const char *)w.data + (okb ? wr0 + g + 8 : 0) * w.ld * ES;
    const bf *xr[NT];
    bool xok[NT];
#pragma unroll
    for (int q = 0; q < NT; q++) {
        xok[q] = g + 8 * q < m;
        xr[q] = x + (xok[q] ? g + 8 * q : 0) * ld_x + (live ? h : 0) * hd.ld_x_head;
    }
    const float *srow = FP8 && nrow > 0 ? gemv_tile_scale_row(w, wr0) : nullptr;

    float acc[NT][4] = {};
    if (nrow > 0) gemv_tile_dot<FP8, NT>(wa, wb, oka, okb, srow, w.block_cols, w.cols, xr, xok, ks, S, acc);

    if (S > 1) {
#pragma unroll
        for (int q = 0; q < NT; q++)
#pragma unroll
            for (int e = 0; e < 4; e++) part[warp][lane][q][e] = acc[q][e];
        __syncthreads();
        if (ks != 0) return;
#pragma unroll
        for (int q = 0; q < NT; q++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float v = 0.f;
                for (int w2 = 0; w2 < S; w2++) v += part[warp + w2][lane][q][e];
                acc[q][e] = v;
            }
    }
    /* group q: c0, c1: output j0+g, tokens 8q + 2t, 8q + 2t + 1; c2, c3: output j0+g+8 */
#pragma unroll
    for (int q = 0; q < NT; q++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int tok = 8 * q + 2 * t + (e & 1);
            const int jj = g + (e < 2 ? 0 : 8);
            if (tok < m && jj < nrow) {
                YT *p = y + tok * ld_y + h * hd.ld_y_head + j0 + jj;
                float v = acc[q][e];
                if (accumulate) v += to_f32(*p);
                *p = from_f32<YT>(v);
            }
        }
}

bool disabled() {
    static const bool off = [] {
        const char *e = getenv("DEEPGO_GEMV");
        return e && strcmp(e, "simt") == 0;
    }();
    return off;
}

template <int NT, typename YT>
dg_status launch_nt(const __nv_bfloat16 *x, YT *y, const dg_weight &w, int64_t m, int64_t ld_x, int64_t ld_y,
                    int accumulate, const Heads &hd, cudaStream_t st) {
    const bool fp8 = w.dtype == DG_F8E4M3;
    const int64_t tiles = ceil_div(hd.out, 16) * hd.n;
    const int64_t iters = ceil_div(w.cols, (int64_t)(fp8 ? gemv_tile_cols<true, NT>() : gemv_tile_cols<false, NT>()));
    const int S = gemv_tile_split(tiles, iters, WARPS);
    const int bw = gemv_tile_block_warps(S, WARPS);
    const unsigned grid = (unsigned)ceil_div(tiles, bw / S);
    if (fp8)
        launch_pdl(gemv_mma_kernel<true, NT, YT>, grid, bw * 32, 0, st, x, y, w, (int)m, ld_x, ld_y, accumulate, S, hd);
    else
        launch_pdl(gemv_mma_kernel<false, NT, YT>, grid, bw * 32, 0, st, x, y, w, (int)m, ld_x, ld_y, accumulate, S, hd);
    DG_LAUNCHED("gemv_mma_kernel");
    return DG_OK;
}

template <typename YT>
dg_status launch(const __nv_bfloat16 *x, YT *y, const dg_weight &w, int64_t m, int64_t ld_x, int64_t ld_y,
                 int accumulate, const Heads &hd, cudaStream_t st) {
    switch (gemv_tile_groups(m)) {
    case 1: return launch_nt<1, YT>(x, y, w, m, ld_x, ld_y, accumulate, hd, st);
    case 2: return launch_nt<2, YT>(x, y, w, m, ld_x, ld_y, accumulate, hd, st);
    default: return launch_nt<4, YT>(x, y, w, m, ld_x, ld_y, accumulate, hd, st);
    }
}

}  // namespace

namespace dg {

bool gemv_mma_ok(const void *x, int64_t ld_x, const dg_weight &w, int64_t m) {
    if (disabled() || m < 1 || m > 32) return false;
    static const int major = device_attr(cudaDevAttrComputeCapabilityMajor, 0);
    if (major < 8) return false;
    return (uintptr_t)x % 16 == 0 && ld_x % 8 == 0 && gemv_tile_layout_ok(w);
}

template <typename YT>
dg_status gemv_mma(const __nv_bfloat16 *x, YT *y, const dg_weight &w, int64_t m, int64_t ld_x, int64_t ld_y,
                   int accumulate, cudaStream_t st) {
    return launch<YT>(x, y, w, m, ld_x, ld_y, accumulate, Heads{w.rows, 1, 0, 0, 0, 0}, st);
}

bool head_matmul_mma_ok(const dg_head_matmul_args *a) {
    if (a->trans != 1 || a->x_dtype != DG_BF16) return false;
    if (!gemv_mma_ok(a->x, a->ld_x_tok, a->w, a->n_tok) || a->ld_x_head % 8 != 0) return false;
    /* fp8: each 16-row tile inside one scale block */
    return a->w.dtype != DG_F8E4M3 || (a->row0 % 16 == 0 && a->head_stride % 16 == 0);
}

dg_status head_matmul_mma(const dg_head_matmul_args *a, cudaStream_t st) {
    const Heads hd{a->out_dim, a->n_heads, a->row0, a->head_stride, a->ld_x_head, a->ld_y_head};
    const __nv_bfloat16 *x = (const __nv_bfloat16 *)a->x;
    if (a->y_dtype == DG_F32)
        return launch<float>(x, (float *)a->y, a->w, a->n_tok, a->ld_x_tok, a->ld_y_tok, 0, hd, st);
    return launch<__nv_bfloat16>(x, (__nv_bfloat16 *)a->y, a->w, a->n_tok, a->ld_x_tok, a->ld_y_tok, 0, hd, st);
}

template dg_status gemv_mma<float>(const __nv_bfloat16 *, float *, const dg_weight &, int64_t, int64_t, int64_t, int,
                                   cudaStream_t);
template dg_status gemv_mma<__nv_bfloat16>(const __nv_bfloat16 *, __nv_bfloat16 *, const dg_weight &, int64_t, int64_t,
                                           int64_t, int, cudaStream_t);

}  // namespace dg
