/*
 * moe_gemv_mma.cu: dg_moe_ffn for a few tokens (decode) on tensor cores, bf16 x against bf16 or
 * block-scaled fp8 experts. moe.cu calls it in place of its SIMT GEMVs when moe_gemv_mma_ok().
 *
 * Why: the SIMT pair converts every weight to f32 and runs dependent FMA chains; on the H100 at
 * peer-7b decode (6 of 64 experts, 2048 x 1408) it took 31.6 us for gate/up and 24.1 us for down
 * per layer against ~23 + ~12 us of weight bytes at copy bandwidth. Here a warp reads 16 rows of
 * an expert with the tile of the tensor-core GEMV (gemv_tile.cuh): one mma.sync per 16 x 16
 * weights, the token's row of x (or of H) as B, so the bytes in flight decide the speed.
 *
 * gate/up: grid (row tiles / (8 / S), n * top_k assignments), 8 warps; a warp owns 16 rows of
 * gate_e and the same 16 rows of up_e for one assignment (t, k), split-K over S warps. The S
 * partial tiles meet in shared memory in warp order, then H[a, i] = silu(g) * u, rounded to bf16
 * (the down GEMV's B operand; the grouped GEMM path rounds it the same way).
 * down: grid (hidden / 16, n), top_k * S warps per block; warp (k, ks) reads 16 rows of down_e
 * against H[t*top_k + k], scales its sum by the routing weight, and the block adds the warps'
 * tiles in warp order (deterministic), then y (+)= the result.
 *
 * The experts' descriptors live on the device, so the layout is checked there (the same for all
 * warps of a block: one expert); an expert the tile cannot read (f32/f16 weights, odd strides)
 * takes a plain per-row dot product in the same kernel. DEEPGO_MOE_GEMV=simt keeps moe.cu's SIMT
 * GEMVs.
 *
 * Test: go test ./tests/kernels -run 'MoEFFN' -v (the aligned shapes take this path).
 */
#include "moe_gemv_mma.cuh"

#include "gemv_tile.cuh"
#include <stdlib.h>
#include <string.h>

using namespace dg;

namespace {

typedef __nv_bfloat16 bf;
constexpr int GU_WARPS = 8;        /* warps per gate/up block */
constexpr int DOWN_MAX_WARPS = 16; /* top_k * S per down block */

/* The tile's rows as lane (g, t) reads them: rows r0 + g and r0 + g + 8 of w (of nrow rows). */
struct TileRows {
    const char *wa, *wb;
    bool oka, okb;
    const float *srow;
};

__device__ __forceinline__ TileRows tile_rows(const dg_weight &w, int64_t r0, int64_t nrow) {
    const int g = (threadIdx.x & 31) >> 2;
    const int es = w.dtype == DG_F8E4M3 ? 1 : 2;
    TileRows r;
    r.oka = g < nrow;
    r.okb = g + 8 < nrow;
    r.wa = (const char *)w.data + (r.oka ? r0 + g : 0) * w.ld * es;
    r.wb = (const char *)w.data + (r.okb ? r0 + g + 8 : 0) * w.ld * es;
    r.srow = nrow > 0 ? gemv_tile_scale_row(w, r0) : nullptr;
    return r;
}

/* acc += the warp's split of w's 16-row tile at r0 against the one bf16 row x (B column 0). */
__device__ __forceinline__ void tile_dot_any(const dg_weight &w, int64_t r0, int64_t nrow, const bf *x, int64_t ks,
                                             int S, float (&acc)[4]) {
    if (nrow <= 0) return;
    const TileRows r = tile_rows(w, r0, nrow);
    float(&a1)[1][4] = reinterpret_cast<float(&)[1][4]>(acc); /* one token: one group of x rows */
    if (w.dtype == DG_F8E4M3)
        gemv_tile_dot<true, 1>(r.wa, r.wb, r.oka, r.okb, r.srow, w.block_cols, w.cols, x, 0, 1, ks, S, a1);
    else
        gemv_tile_dot<false, 1>(r.wa, r.wb, r.oka, r.okb, r.srow, w.block_cols, w.cols, x, 0, 1, ks, S, a1);
}

/* The same tile for an expert the mma tile cannot read: row by row, the whole row in split 0,
 * the sums placed where the mma would leave them (row q < 8: lane 4q, acc[0]; else acc[2]). */
__device__ __forceinline__ void tile_dot_plain(const dg_weight &w, int64_t r0, int64_t nrow, const bf *x, int64_t ks,
                                               float (&acc)[4]) {
    const int lane = threadIdx.x & 31;
    if (ks != 0) return;
    for (int q = 0; q < nrow; q++) {
        float v = 0.f;
        for (int64_t c = lane; c < w.cols; c += 32) v = fmaf(w_elem(w, r0 + q, c), __bfloat162float(x[c]), v);
        v = warp_sum(v);
        if (lane == 4 * (q & 7)) acc[q < 8 ? 0 : 2] += v;
    }
}

/* Partial tiles of the warps [w0, w0 + S) added in warp order; the total lands in acc of warp w0. */
template <int NW>
__device__ __forceinline__ void sum_splits(float (&part)[NW][32][4], int w0, int S, float (&acc)[4]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float v = 0.f;
        for (int q = 0; q < S; q++) v += part[w0 + q][lane][e];
        acc[e] = v;
    }
}

__global__ void __launch_bounds__(GU_WARPS * 32)
    moe_gateup_mma_kernel(const bf *__restrict__ x, int64_t ld_x, const int32_t *ids, int top_k, int E,
                          const dg_weight *G, const dg_weight *Up, bf *H, int64_t ldh, int64_t inter, int S) {
    __shared__ float pg[GU_WARPS][32][4], pu[GU_WARPS][32][4];
    pdl_enter();
    const int64_t as = blockIdx.y;
    const int e = ids[as];
    if (e < 0 || e >= E) return; /* uniform over the block */
    const dg_weight g = G[e], u = Up[e];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t i0 = ((int64_t)blockIdx.x * (GU_WARPS / S) + warp / S) * 16;
    const int ks = warp % S;
    const int64_t nrow = std::max<int64_t>(0, std::min<int64_t>(16, inter - i0));
    const bf *xr = x + (as / top_k) * ld_x;
    float ag[4] = {0.f, 0.f, 0.f, 0.f}, au[4] = {0.f, 0.f, 0.f, 0.f};
    if (gemv_tile_layout_ok(g) && gemv_tile_layout_ok(u)) {
        tile_dot_any(g, i0, nrow, xr, ks, S, ag);
        tile_dot_any(u, i0, nrow, xr, ks, S, au);
    } else {
        tile_dot_plain(g, i0, nrow, xr, ks, ag);
        tile_dot_plain(u, i0, nrow, xr, ks, au);
    }
    if (S > 1) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            pg[warp][lane][q] = ag[q];
            pu[warp][lane][q] = au[q];
        }
        __syncthreads();
        if (ks != 0) return;
        sum_splits(pg, warp, S, ag);
        sum_splits(pu, warp, S, au);
    }
    /* B column 0 (the token) sits in lanes t == 0: acc[0] row g, acc[2] row g + 8 */
    if ((lane & 3) != 0) return;
#pragma unroll
    for (int q = 0; q < 4; q += 2) {
        const int64_t r = (lane >> 2) + (q ? 8 : 0);
        if (r < nrow) H[as * ldh + i0 + r] = __float2bfloat16_rn(ag[q] / (1.f + expf(-ag[q])) * au[q]);
    }
}

template <typename YT>
__global__ void __launch_bounds__(DOWN_MAX_WARPS * 32)
    moe_down_mma_kernel(const bf *__restrict__ H, int64_t ldh, const int32_t *ids, const float *wts, int top_k, int E,
                        const dg_weight *D, YT *y, int64_t ld_y, int accumulate, int64_t hidden, int S) {
    __shared__ float part[DOWN_MAX_WARPS][32][4];
    pdl_enter();
    const int64_t t = blockIdx.y, j0 = (int64_t)blockIdx.x * 16;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int k = warp % top_k, ks = warp / top_k;
    const int64_t a = t * top_k + k;
    const int e = ids[a];
    const int64_t nrow = std::min<int64_t>(16, hidden - j0);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    if (e >= 0 && e < E) {
        const dg_weight d = D[e];
        if (gemv_tile_layout_ok(d))
            tile_dot_any(d, j0, nrow, H + a * ldh, ks, S, acc);
        else
            tile_dot_plain(d, j0, nrow, H + a * ldh, ks, acc);
        const float wk = wts[a];
#pragma unroll
        for (int q = 0; q < 4; q++) acc[q] *= wk;
    }
#pragma unroll
    for (int q = 0; q < 4; q++) part[warp][lane][q] = acc[q];
    __syncthreads();
    if (warp != 0) return;
    sum_splits(part, 0, top_k * S, acc);
    if ((lane & 3) != 0) return;
#pragma unroll
    for (int q = 0; q < 4; q += 2) {
        const int64_t r = (lane >> 2) + (q ? 8 : 0);
        if (r < nrow) {
            YT *p = y + t * ld_y + j0 + r;
            *p = from_f32<YT>(accumulate ? to_f32(*p) + acc[q] : acc[q]);
        }
    }
}

bool disabled() {
    static const bool off = [] {
        const char *e = getenv("DEEPGO_MOE_GEMV");
        return e && strcmp(e, "simt") == 0;
    }();
    return off;
}

}  // namespace

namespace dg {

bool moe_gemv_mma_ok(const dg_moe_ffn_args *a) {
    if (disabled() || a->x_dtype != DG_BF16 || a->top_k > DOWN_MAX_WARPS) return false;
    static const int major = device_attr(cudaDevAttrComputeCapabilityMajor, 0);
    return major >= 8 && (uintptr_t)a->x % 16 == 0 && a->ld_x % 8 == 0;
}

int64_t moe_gemv_mma_ldh(int64_t inter) { return (inter + 7) / 8 * 8; }

dg_status moe_gemv_mma(const dg_moe_ffn_args *a, __nv_bfloat16 *H, cudaStream_t cs) {
    const int64_t ldh = moe_gemv_mma_ldh(a->inter), A = a->n * a->top_k;
    /* the expert's dtype is only known on the device: size the splits for bf16 (more iterations) */
    const int64_t gu_tiles = ceil_div(a->inter, (int64_t)16);
    const int Sg = gemv_tile_split(gu_tiles * A, ceil_div(a->hidden, (int64_t)gemv_tile_cols<false>()), GU_WARPS);
    dim3 g1((unsigned)ceil_div(gu_tiles, (int64_t)(GU_WARPS / Sg)), (unsigned)A);
    launch_pdl(moe_gateup_mma_kernel, g1, GU_WARPS * 32, 0, cs, (const bf *)a->x, a->ld_x, a->ids, a->top_k,
               a->n_experts, a->gate, a->up, H, ldh, a->inter, Sg);
    DG_LAUNCHED("moe_gateup_mma_kernel");

    const int64_t d_tiles = ceil_div(a->hidden, (int64_t)16);
    const int Sd = gemv_tile_split(d_tiles * a->top_k * a->n, ceil_div(a->inter, (int64_t)gemv_tile_cols<false>()),
                                   DOWN_MAX_WARPS / a->top_k);
    dim3 g2((unsigned)d_tiles, (unsigned)a->n);
    const unsigned threads = (unsigned)(a->top_k * Sd * 32);
    if (a->y_dtype == DG_F32)
        launch_pdl(moe_down_mma_kernel<float>, g2, threads, 0, cs, (const bf *)H, ldh, a->ids, a->weights, a->top_k,
                   a->n_experts, a->down, (float *)a->y, a->ld_y, a->accumulate, a->hidden, Sd);
    else
        launch_pdl(moe_down_mma_kernel<bf>, g2, threads, 0, cs, (const bf *)H, ldh, a->ids, a->weights, a->top_k,
                   a->n_experts, a->down, (bf *)a->y, a->ld_y, a->accumulate, a->hidden, Sd);
    DG_LAUNCHED("moe_down_mma_kernel");
    return DG_OK;
}

}  // namespace dg
