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
#include <math.h>
#include <stdlib.h>
#include <string.h>

using namespace dg;

namespace {

typedef __nv_bfloat16 bf;
constexpr int GU_WARPS = 8;        /* warps per gate/up block */
constexpr int DOWN_MAX_WARPS = 16; /* top_k * S per down block */
constexpr int MOE_GROUPED_MAX_N = 32; /* tokens per call for the sorted path (4 groups of 8) */

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

/* acc += the warp's split of w's 16-row tile at r0 against NT groups of x rows (lane's rows
 * xr[q], present where xok[q]). */
template <int NT>
__device__ __forceinline__ void tile_dot_any(const dg_weight &w, int64_t r0, int64_t nrow, const bf *const (&xr)[NT],
                                             const bool (&xok)[NT], int64_t ks, int S, float (&acc)[NT][4]) {
    if (nrow <= 0) return;
    const TileRows r = tile_rows(w, r0, nrow);
    if (w.dtype == DG_F8E4M3)
        gemv_tile_dot<true, NT>(r.wa, r.wb, r.oka, r.okb, r.srow, w.block_cols, w.cols, xr, xok, ks, S, acc);
    else
        gemv_tile_dot<false, NT>(r.wa, r.wb, r.oka, r.okb, r.srow, w.block_cols, w.cols, xr, xok, ks, S, acc);
}

/* The same tile for an expert the mma tile cannot read: one warp dot product per (row, x row),
 * all in split 0, each sum placed where the mma would leave it (row q, x row n: lane
 * 4 (q % 8) + (n % 8) / 2, group n / 8, element (q < 8 ? 0 : 2) + n % 2). xrow(n) is x row n. */
template <int NT, typename XRow>
__device__ __forceinline__ void tile_dot_plain(const dg_weight &w, int64_t r0, int64_t nrow, XRow xrow, int nx,
                                               int64_t ks, float (&acc)[NT][4]) {
    const int lane = threadIdx.x & 31;
    if (ks != 0) return;
    for (int n = 0; n < nx; n++) {
        const bf *x = xrow(n);
        for (int q = 0; q < nrow; q++) {
            float v = 0.f;
            for (int64_t c = lane; c < w.cols; c += 32) v = fmaf(w_elem(w, r0 + q, c), __bfloat162float(x[c]), v);
            v = warp_sum(v);
            if (lane == 4 * (q & 7) + ((n & 7) >> 1)) acc[n >> 3][(q < 8 ? 0 : 2) + (n & 1)] += v;
        }
    }
}

/* Partial tiles of the warps [w0, w0 + S) added in warp order; the total lands in acc. */
template <int NW, int NT>
__device__ __forceinline__ void sum_splits(float (&part)[NW][32][NT][4], int w0, int S, float (&acc)[NT][4]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int q = 0; q < NT; q++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float v = 0.f;
            for (int k = 0; k < S; k++) v += part[w0 + k][lane][q][e];
            acc[q][e] = v;
        }
}

/* Each warp's acc into part[warp]; after the barrier the first warp of each split group holds the
 * sum of its group (the others return false). */
template <int NW, int NT>
__device__ __forceinline__ bool reduce_splits(float (&part)[NW][32][NT][4], int S, float (&acc)[NT][4]) {
    if (S == 1) return true;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int q = 0; q < NT; q++)
#pragma unroll
        for (int e = 0; e < 4; e++) part[warp][lane][q][e] = acc[q][e];
    __syncthreads();
    if (warp % S != 0) return false;
    sum_splits(part, warp, S, acc);
    return true;
}

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }

/* ---- one x row per assignment (a few tokens: no sort) ---- */

__global__ void __launch_bounds__(GU_WARPS * 32)
    moe_gateup_mma_kernel(const bf *__restrict__ x, int64_t ld_x, const int32_t *ids, int top_k, int E,
                          const dg_weight *G, const dg_weight *Up, bf *H, int64_t ldh, int64_t inter, int S) {
    __shared__ float pg[GU_WARPS][32][1][4], pu[GU_WARPS][32][1][4];
    pdl_enter();
    const int64_t as = blockIdx.y;
    const int e = ids[as];
    if (e < 0 || e >= E) return; /* uniform over the block */
    const dg_weight g = G[e], u = Up[e];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t i0 = ((int64_t)blockIdx.x * ((int)(blockDim.x >> 5) / S) + warp / S) * 16;
    const int ks = warp % S;
    const int64_t nrow = std::max<int64_t>(0, std::min<int64_t>(16, inter - i0));
    const bf *xr[1] = {x + (as / top_k) * ld_x};
    const bool xok[1] = {(lane >> 2) == 0};
    float ag[1][4] = {}, au[1][4] = {};
    if (gemv_tile_layout_ok(g) && gemv_tile_layout_ok(u)) {
        tile_dot_any<1>(g, i0, nrow, xr, xok, ks, S, ag);
        tile_dot_any<1>(u, i0, nrow, xr, xok, ks, S, au);
    } else {
        auto row = [&](int) { return xr[0]; };
        tile_dot_plain<1>(g, i0, nrow, row, 1, ks, ag);
        tile_dot_plain<1>(u, i0, nrow, row, 1, ks, au);
    }
    const bool lead = reduce_splits(pg, S, ag);
    if (!reduce_splits(pu, S, au) || !lead) return;
    /* x row 0 (the token) sits in lanes t == 0: acc[0] row g, acc[2] row g + 8 */
    if ((lane & 3) != 0) return;
#pragma unroll
    for (int q = 0; q < 4; q += 2) {
        const int64_t r = (lane >> 2) + (q ? 8 : 0);
        if (r < nrow) H[as * ldh + i0 + r] = __float2bfloat16_rn(silu_mul(ag[0][q], au[0][q]));
    }
}

template <typename YT>
__global__ void __launch_bounds__(DOWN_MAX_WARPS * 32)
    moe_down_mma_kernel(const bf *__restrict__ H, int64_t ldh, const int32_t *ids, const float *wts, int top_k, int E,
                        const dg_weight *D, YT *y, int64_t ld_y, int accumulate, int64_t hidden, int S) {
    __shared__ float part[DOWN_MAX_WARPS][32][1][4];
    pdl_enter();
    const int64_t t = blockIdx.y, j0 = (int64_t)blockIdx.x * 16;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int k = warp % top_k, ks = warp / top_k;
    const int64_t a = t * top_k + k;
    const int e = ids[a];
    const int64_t nrow = std::min<int64_t>(16, hidden - j0);
    float acc[1][4] = {};
    if (e >= 0 && e < E) {
        const dg_weight d = D[e];
        const bf *xr[1] = {H + a * ldh};
        const bool xok[1] = {(lane >> 2) == 0};
        if (gemv_tile_layout_ok(d))
            tile_dot_any<1>(d, j0, nrow, xr, xok, ks, S, acc);
        else
            tile_dot_plain<1>(d, j0, nrow, [&](int) { return xr[0]; }, 1, ks, acc);
        const float wk = wts[a];
#pragma unroll
        for (int q = 0; q < 4; q++) acc[0][q] *= wk;
    }
#pragma unroll
    for (int q = 0; q < 4; q++) part[warp][lane][0][q] = acc[0][q];
    __syncthreads();
    if (warp != 0) return;
    sum_splits(part, 0, top_k * S, acc);
    if ((lane & 3) != 0) return;
#pragma unroll
    for (int q = 0; q < 4; q += 2) {
        const int64_t r = (lane >> 2) + (q ? 8 : 0);
        if (r < nrow) {
            YT *p = y + t * ld_y + j0 + r;
            *p = from_f32<YT>(accumulate ? to_f32(*p) + acc[0][q] : acc[0][q]);
        }
    }
}

/* ---- assignments sorted by expert (moe.cu's count/plan/scatter): each expert's weights once ---- */

/* The lane's x rows for chunk [c0, c0 + 8 NT) of an expert's segment [p0, p0 + cnt): sorted row
 * p0 + c0 + g + 8q, source row src(p). */
template <int NT, typename Src>
__device__ __forceinline__ void chunk_rows(int64_t p0, int cnt, int c0, Src src, const bf *(&xr)[NT], bool (&xok)[NT]) {
    const int g = (threadIdx.x & 31) >> 2;
#pragma unroll
    for (int q = 0; q < NT; q++) {
        const int n = c0 + g + 8 * q;
        xok[q] = n < cnt;
        xr[q] = src(p0 + (xok[q] ? n : 0));
    }
}

/* Writes out(p, r, v) for the chunk's results: lane (g, t) holds rows g, g + 8 of x rows
 * c0 + 8q + 2t (+1). */
template <int NT, typename Out>
__device__ __forceinline__ void chunk_store(int64_t p0, int cnt, int c0, int64_t nrow, const float (&acc)[NT][4],
                                            Out out) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int q = 0; q < NT; q++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int n = c0 + 8 * q + 2 * t + (e & 1);
            const int r = g + (e < 2 ? 0 : 8);
            if (n < cnt && r < nrow) out(p0 + n, r, acc[q][e]);
        }
}

/* H[p, i] = silu(gate_e[i] . x[rows[p]]) * (up_e[i] . x[rows[p]]) for the sorted rows p of expert
 * e = blockIdx.y; grid.x: row tiles of inter, GU_WARPS / S per block. */
template <int NT>
__global__ void __launch_bounds__(GU_WARPS * 32, 2)
    moe_gateup_grouped_kernel(const bf *__restrict__ x, int64_t ld_x, const int32_t *offsets, const int32_t *rows,
                              const dg_weight *G, const dg_weight *Up, bf *H, int64_t ldh, int64_t inter, int S) {
    __shared__ float pg[GU_WARPS][32][NT][4], pu[GU_WARPS][32][NT][4];
    pdl_enter();
    const int e = blockIdx.y;
    const int64_t p0 = offsets[e];
    const int cnt = offsets[e + 1] - (int)p0;
    if (cnt <= 0) return; /* uniform over the block */
    const dg_weight g = G[e], u = Up[e];
    const int warp = threadIdx.x >> 5;
    const int64_t i0 = ((int64_t)blockIdx.x * (GU_WARPS / S) + warp / S) * 16;
    const int ks = warp % S;
    const int64_t nrow = std::max<int64_t>(0, std::min<int64_t>(16, inter - i0));
    const bool fast = gemv_tile_layout_ok(g) && gemv_tile_layout_ok(u);
    auto src = [&](int64_t p) { return x + (int64_t)rows[p] * ld_x; };
    for (int c0 = 0; c0 < cnt; c0 += 8 * NT) {
        const bf *xr[NT];
        bool xok[NT];
        chunk_rows<NT>(p0, cnt, c0, src, xr, xok);
        float ag[NT][4] = {}, au[NT][4] = {};
        if (fast) {
            tile_dot_any<NT>(g, i0, nrow, xr, xok, ks, S, ag);
            tile_dot_any<NT>(u, i0, nrow, xr, xok, ks, S, au);
        } else {
            auto row = [&](int n) { return src(p0 + c0 + n); };
            const int nx = std::min(cnt - c0, 8 * NT);
            tile_dot_plain<NT>(g, i0, nrow, row, nx, ks, ag);
            tile_dot_plain<NT>(u, i0, nrow, row, nx, ks, au);
        }
        const bool lead = reduce_splits(pg, S, ag);
        const bool lead2 = reduce_splits(pu, S, au);
        if (lead && lead2) {
            float sv[NT][4];
#pragma unroll
            for (int q = 0; q < NT; q++)
#pragma unroll
                for (int k = 0; k < 4; k++) sv[q][k] = silu_mul(ag[q][k], au[q][k]);
            chunk_store<NT>(p0, cnt, c0, nrow, sv,
                            [&](int64_t p, int r, float v) { H[p * ldh + i0 + r] = __float2bfloat16_rn(v); });
        }
        if (S > 1) __syncthreads(); /* part[] is reused by the next chunk */
    }
}

/* O[p, j] = down_e[j] . H[p] for the sorted rows p of expert e = blockIdx.y (f32; moe.cu's combine
 * adds them per token with the routing weights); grid.x: row tiles of hidden. */
template <int NT>
__global__ void __launch_bounds__(GU_WARPS * 32, 2)
    moe_down_grouped_kernel(const bf *__restrict__ H, int64_t ldh, const int32_t *offsets, const dg_weight *D,
                            float *O, int64_t hidden, int S) {
    __shared__ float part[GU_WARPS][32][NT][4];
    pdl_enter();
    const int e = blockIdx.y;
    const int64_t p0 = offsets[e];
    const int cnt = offsets[e + 1] - (int)p0;
    if (cnt <= 0) return;
    const dg_weight d = D[e];
    const int warp = threadIdx.x >> 5;
    const int64_t j0 = ((int64_t)blockIdx.x * (GU_WARPS / S) + warp / S) * 16;
    const int ks = warp % S;
    const int64_t nrow = std::max<int64_t>(0, std::min<int64_t>(16, hidden - j0));
    const bool fast = gemv_tile_layout_ok(d);
    auto src = [&](int64_t p) { return H + p * ldh; };
    for (int c0 = 0; c0 < cnt; c0 += 8 * NT) {
        const bf *xr[NT];
        bool xok[NT];
        chunk_rows<NT>(p0, cnt, c0, src, xr, xok);
        float acc[NT][4] = {};
        if (fast)
            tile_dot_any<NT>(d, j0, nrow, xr, xok, ks, S, acc);
        else
            tile_dot_plain<NT>(d, j0, nrow, [&](int n) { return src(p0 + c0 + n); }, std::min(cnt - c0, 8 * NT), ks,
                               acc);
        if (reduce_splits(part, S, acc))
            chunk_store<NT>(p0, cnt, c0, nrow, acc, [&](int64_t p, int r, float v) { O[p * hidden + j0 + r] = v; });
        if (S > 1) __syncthreads();
    }
}

/* Elements between H rows: 16-byte aligned bf16 rows for the tile's x loads. */
int64_t h_stride(int64_t inter) { return (inter + 7) / 8 * 8; }

bool disabled() {
    static const bool off = [] {
        const char *e = getenv("DEEPGO_MOE_GEMV");
        return e && strcmp(e, "simt") == 0;
    }();
    return off;
}

/* One group of 8 rows per pass: under uniform routing an expert rarely gets more than 8 of 32
 * tokens (peer-7b: 3 on average), and a second pass finds its 16 rows in L2; 4 groups would cost
 * registers (1 block per SM) on every expert for the rare crowded one. */
constexpr int GROUPED_NT = 1;

void launch_grouped(const dg_moe_ffn_args *a, const int32_t *offsets, const int32_t *rows, __nv_bfloat16 *H,
                    float *O, cudaStream_t cs) {
    constexpr int NT = GROUPED_NT;
    const int64_t ldh = h_stride(a->inter);
    const int E = a->n_experts;
    /* about n * top_k experts are hit: size the splits for them (bf16 iterations) */
    const int64_t hit = std::min<int64_t>(E, a->n * a->top_k);
    const int64_t gu_tiles = ceil_div(a->inter, (int64_t)16), d_tiles = ceil_div(a->hidden, (int64_t)16);
    const int Sg = gemv_tile_split(gu_tiles * hit, ceil_div(a->hidden, (int64_t)gemv_tile_cols<false, NT>()), GU_WARPS);
    const int Sd = gemv_tile_split(d_tiles * hit, ceil_div(a->inter, (int64_t)gemv_tile_cols<false, NT>()), GU_WARPS);
    dim3 g1((unsigned)ceil_div(gu_tiles, (int64_t)(GU_WARPS / Sg)), (unsigned)E);
    launch_pdl(moe_gateup_grouped_kernel<NT>, g1, GU_WARPS * 32, 0, cs, (const bf *)a->x, a->ld_x, offsets, rows,
               a->gate, a->up, H, ldh, a->inter, Sg);
    dim3 g2((unsigned)ceil_div(d_tiles, (int64_t)(GU_WARPS / Sd)), (unsigned)E);
    launch_pdl(moe_down_grouped_kernel<NT>, g2, GU_WARPS * 32, 0, cs, (const bf *)H, ldh, offsets, a->down, O,
               a->hidden, Sd);
}

}  // namespace

namespace dg {

bool moe_gemv_mma_ok(const dg_moe_ffn_args *a) {
    if (disabled() || a->x_dtype != DG_BF16 || a->top_k > DOWN_MAX_WARPS) return false;
    static const int major = device_attr(cudaDevAttrComputeCapabilityMajor, 0);
    return major >= 8 && (uintptr_t)a->x % 16 == 0 && a->ld_x % 8 == 0;
}

dg_status moe_gemv_mma(const dg_moe_ffn_args *a, __nv_bfloat16 *H, cudaStream_t cs) {
    const int64_t ldh = h_stride(a->inter), A = a->n * a->top_k;
    /* the expert's dtype is only known on the device: size the splits for bf16 (more iterations) */
    const int64_t gu_tiles = ceil_div(a->inter, (int64_t)16);
    const int Sg = gemv_tile_split(gu_tiles * A, ceil_div(a->hidden, (int64_t)gemv_tile_cols<false>()), GU_WARPS);
    const int bw = gemv_tile_block_warps(Sg, GU_WARPS);
    dim3 g1((unsigned)ceil_div(gu_tiles, (int64_t)(bw / Sg)), (unsigned)A);
    launch_pdl(moe_gateup_mma_kernel, g1, bw * 32, 0, cs, (const bf *)a->x, a->ld_x, a->ids, a->top_k,
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

bool moe_gemv_mma_grouped_ok(const dg_moe_ffn_args *a) {
    if (a->n > MOE_GROUPED_MAX_N || a->mode != DG_LINEAR_DEFAULT || !moe_gemv_mma_ok(a)) return false;
    /* Sorting costs four small launches and the combine; it pays once more than ~10% of the
     * assignments would re-read an expert another assignment reads (uniform routing). */
    const double E = a->n_experts, k = a->top_k, A = (double)a->n * k;
    const double distinct = E * (1.0 - std::pow(1.0 - k / E, (double)a->n));
    return A - distinct > 0.1 * A;
}

dg_status moe_gemv_mma_grouped(const dg_moe_ffn_args *a, const int32_t *offsets, const int32_t *rows,
                               __nv_bfloat16 *H, float *O, cudaStream_t cs) {
    launch_grouped(a, offsets, rows, H, O, cs);
    DG_LAUNCHED("moe_gateup_grouped_kernel / moe_down_grouped_kernel");
    return DG_OK;
}

}  // namespace dg
