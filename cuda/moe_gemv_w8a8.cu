/*
 * moe_gemv_w8a8.cu: dg_moe_ffn's W8A8 mode for a few tokens (decode) on the e4m3 tensor cores, with
 * w8a8_tile.cuh's tile. moe.cu calls it in place of the f32 emulation when moe_gemv_w8a8_ok().
 *
 * The grids are moe_gemv_mma.cu's. gate/up: grid (row tiles / (warps / S), n * top_k assignments);
 * a warp owns 16 rows of gate_e and of up_e against its token's x (quantised by the tile as it
 * goes), and after the split-K sum H[a, i] = silu(g) * u stays f32 (the emulation quantises the f32
 * product; a bf16 copy moved a few percent of its e4m3 roundings, 4-5% of some outputs). down: grid (hidden / 16, n), top_k * S warps; the block
 * reads its token's top_k rows of H: warp (k, ks) reads 16 rows of down_e against H row k
 * (quantised likewise), scales by the routing weight, and the block adds the warps' tiles in warp order.
 *
 * The x quantisation block is expert 0's block_cols (as moe.cu's emulation takes it). Where it is
 * 128 and an expert's layout suits the tile, the tile runs; otherwise (another block size, f32 or
 * bf16 experts, odd strides) that expert takes a per-row dot product that quantises x on the fly
 * with the same arithmetic: slow, exact, for checkpoints no one ships (kept out of line so that its
 * registers do not weigh on the tile's 16 warps per SM).
 *
 * Test: go test ./tests/kernels -run 'MoEFFN' -v (the W8A8 cases with n <= 8)
 */
#include "gemv_w8a8.cuh"

#include "w8a8_tile.cuh"
#include <math.h>

using namespace dg;

namespace {

typedef __nv_bfloat16 bf;
constexpr int GU_WARPS = 8;
constexpr int DOWN_MAX_WARPS = 16;


/* acc += rows [r0, r0 + nrow) of w . x, with x quantised per bc columns (act_quant's arithmetic:
 * s = amax / 448, x_q = e4m3(x / s) * s) on the fly; warp ks == 0 does it all, each row's sum
 * placed where the tile leaves token 0 (lane 4 (q % 8), element q < 8 ? 0 : 2). */
template <typename XT>
__device__ __noinline__ void plain_dot(const dg_weight &w, int64_t r0, int64_t nrow, const XT *x, int64_t cols,
                                          int64_t bc, int ks, float (&acc)[4]) {
    if (ks != 0 || nrow <= 0) return;
    const int lane = threadIdx.x & 31;
    if (bc <= 0) bc = cols;
    float rs[16];
#pragma unroll
    for (int q = 0; q < 16; q++) rs[q] = 0.f;
    for (int64_t b0 = 0; b0 < cols; b0 += bc) {
        const int64_t b1 = std::min(cols, b0 + bc);
        float amax = 0.f;
        for (int64_t c = b0 + lane; c < b1; c += 32) amax = fmaxf(amax, fabsf(to_f32(x[c])));
        amax = warp_max(amax);
        if (amax == 0.f) continue;
        const float s = amax / 448.f;
        for (int64_t c = b0 + lane; c < b1; c += 32) {
            const float xv = e4m3_to_f32(f32_to_e4m3(to_f32(x[c]) / s)) * s;
#pragma unroll
            for (int q = 0; q < 16; q++)
                if (q < nrow) rs[q] = fmaf(w_elem(w, r0 + q, c), xv, rs[q]);
        }
    }
#pragma unroll
    for (int q = 0; q < 16; q++) {
        const float v = warp_sum(rs[q]);
        if (q < nrow && lane == 4 * (q & 7)) acc[q < 8 ? 0 : 2] += v;
    }
}

/* The warps' tiles of part[w0 .. w0 + n) added in warp order into acc. */
template <int NW>
__device__ __forceinline__ void add_parts(const float (&part)[NW][32][4], int w0, int n, float (&acc)[4]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float v = 0.f;
        for (int k = 0; k < n; k++) v += part[w0 + k][lane][e];
        acc[e] = v;
    }
}

/* 96 registers (the compiler took 120) let blocks of two warps hold 20 warps per SM: DeepSeek-V3's
 * 1,152 gate/up tiles then split in two, 2,304 warps in one wave (H100: 122 -> 107 us). */
template <typename XT>
__global__ void __maxnreg__(96)
    moe_gateup_w8a8_kernel(const XT *__restrict__ x, int64_t ld_x, const int32_t *ids, int top_k, int E,
                           const dg_weight *G, const dg_weight *Up, float *H, int64_t ldh, int64_t hidden, int64_t inter,
                           int S) {
    __shared__ __align__(16) uint8_t xbuf[GU_WARPS][w8v_warp_smem<1>()];
    __shared__ float pg[GU_WARPS][32][4], pu[GU_WARPS][32][4];
    pdl_enter();
    const int64_t as = blockIdx.y;
    const int e = ids[as];
    if (e < 0 || e >= E) return; /* uniform over the block */
    const dg_weight g = G[e], u = Up[e];
    const int64_t bcx = G[0].block_cols;
    const XT *xr[1] = {x + (as / top_k) * ld_x};

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gl = lane >> 2, t = lane & 3;
    const int64_t i0 = ((int64_t)blockIdx.x * ((int)(blockDim.x >> 5) / S) + warp / S) * 16;
    const int ks = warp % S;
    const int64_t nrow = std::max<int64_t>(0, std::min<int64_t>(16, inter - i0));
    float ag[4] = {0.f, 0.f, 0.f, 0.f}, au[4] = {0.f, 0.f, 0.f, 0.f};
    if (bcx == W8V_XB && w8v_weight_ok(g) && w8v_weight_ok(u) && g.cols <= hidden && u.cols <= hidden) {
        auto dot = [&](const dg_weight &w, float(&acc)[4]) {
            const bool oka = gl < nrow, okb = gl + 8 < nrow;
            const char *wa = (const char *)w.data + (oka ? i0 + gl : 0) * w.ld;
            const char *wb = (const char *)w.data + (okb ? i0 + gl + 8 : 0) * w.ld;
            w8v_tile_dot<1, XT>(wa, wb, oka, okb, gemv_tile_scale_row(w, i0), w.block_cols, w.cols, xr, 1, xbuf[warp],
                                ks, S, acc);
        };
        if (nrow > 0) {
            dot(g, ag);
            dot(u, au);
        }
    } else {
        plain_dot(g, i0, nrow, xr[0], hidden, bcx, ks, ag);
        plain_dot(u, i0, nrow, xr[0], hidden, bcx, ks, au);
    }
    if (S > 1) {
#pragma unroll
        for (int q = 0; q < 4; q++) pg[warp][lane][q] = ag[q], pu[warp][lane][q] = au[q];
        __syncthreads();
        if (ks != 0) return;
        add_parts(pg, warp, S, ag);
        add_parts(pu, warp, S, au);
    }
    /* token 0 sits in lanes t == 0: element 0 row g, element 2 row g + 8 */
    if (t != 0) return;
#pragma unroll
    for (int q = 0; q < 4; q += 2) {
        const int64_t r = gl + (q ? 8 : 0);
        if (r < nrow) {
            const float gv = ag[q];
            H[as * ldh + i0 + r] = gv / (1.f + expf(-gv)) * au[q];
        }
    }
}

template <typename YT>
__global__ void __launch_bounds__(DOWN_MAX_WARPS * 32)
    moe_down_w8a8_kernel(const float *__restrict__ H, int64_t ldh, const int32_t *ids, const float *wts, int top_k, int E,
                         const dg_weight *D, YT *y, int64_t ld_y, int accumulate, int64_t hidden, int64_t inter,
                         int S) {
    __shared__ __align__(16) uint8_t xbuf[DOWN_MAX_WARPS][w8v_warp_smem<1>()];
    __shared__ float part[DOWN_MAX_WARPS][32][4];
    pdl_enter();
    const int64_t tok = blockIdx.y, j0 = (int64_t)blockIdx.x * 16;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gl = lane >> 2, t = lane & 3;
    const int k = warp % top_k, ks = warp / top_k;
    const int64_t a = tok * top_k + k;
    const int e = ids[a];
    const int64_t nrow = std::min<int64_t>(16, hidden - j0);
    const int64_t bcx = D[0].block_cols;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    if (e >= 0 && e < E) {
        const dg_weight d = D[e];
        if (bcx == W8V_XB && w8v_weight_ok(d) && d.cols <= inter) {
            const bool oka = gl < nrow, okb = gl + 8 < nrow;
            const char *wa = (const char *)d.data + (oka ? j0 + gl : 0) * d.ld;
            const char *wb = (const char *)d.data + (okb ? j0 + gl + 8 : 0) * d.ld;
            const float *xr[1] = {H + a * ldh};
            w8v_tile_dot<1, float>(wa, wb, oka, okb, gemv_tile_scale_row(d, j0), d.block_cols, d.cols, xr, 1,
                                   xbuf[warp], ks, S, acc);
        } else {
            plain_dot(d, j0, nrow, H + a * ldh, inter, bcx, ks, acc);
        }
        const float wk = wts[a];
#pragma unroll
        for (int q = 0; q < 4; q++) acc[q] *= wk;
    }
#pragma unroll
    for (int q = 0; q < 4; q++) part[warp][lane][q] = acc[q];
    __syncthreads();
    if (warp != 0) return;
    add_parts(part, 0, top_k * S, acc);
    if (t != 0) return;
#pragma unroll
    for (int q = 0; q < 4; q += 2) {
        const int64_t r = gl + (q ? 8 : 0);
        if (r < nrow) {
            YT *p = y + tok * ld_y + j0 + r;
            *p = from_f32<YT>(accumulate ? to_f32(*p) + acc[q] : acc[q]);
        }
    }
}

template <typename XT>
dg_status run(const dg_moe_ffn_args *a, float *H, cudaStream_t cs) {
    const int64_t ldh = (a->inter + 3) / 4 * 4, A = a->n * a->top_k;
    const int64_t gu_tiles = ceil_div(a->inter, (int64_t)16);
    /* powers of two: S = 3 for peer-7b's 704 tiles lost 5% against 2 (H100) */
    const int Sg = gemv_tile_split(gu_tiles * A, ceil_div(a->hidden, (int64_t)W8V_IC), GU_WARPS,
                                   tile_warps_per_sm<moe_gateup_w8a8_kernel<XT>>());
    const int bw = gemv_tile_block_warps(Sg, GU_WARPS);
    dim3 g1((unsigned)ceil_div(gu_tiles, (int64_t)(bw / Sg)), (unsigned)A);
    launch_pdl(moe_gateup_w8a8_kernel<XT>, g1, bw * 32, 0, cs, (const XT *)a->x, a->ld_x, a->ids, a->top_k,
               a->n_experts, a->gate, a->up, H, ldh, a->hidden, a->inter, Sg);
    DG_LAUNCHED("moe_gateup_w8a8_kernel");

    const int64_t d_tiles = ceil_div(a->hidden, (int64_t)16);
    const int Sd = gemv_tile_split(d_tiles * a->top_k * a->n, ceil_div(a->inter, (int64_t)W8V_IC),
                                   DOWN_MAX_WARPS / a->top_k);
    dim3 g2((unsigned)d_tiles, (unsigned)a->n);
    const unsigned threads = (unsigned)(a->top_k * Sd * 32);
    if (a->y_dtype == DG_F32) {
        launch_pdl(moe_down_w8a8_kernel<float>, g2, threads, 0, cs, (const float *)H, ldh, a->ids, a->weights,
                   a->top_k, a->n_experts, a->down, (float *)a->y, a->ld_y, a->accumulate, a->hidden, a->inter, Sd);
    } else {
        launch_pdl(moe_down_w8a8_kernel<bf>, g2, threads, 0, cs, (const float *)H, ldh, a->ids, a->weights,
                   a->top_k, a->n_experts, a->down, (bf *)a->y, a->ld_y, a->accumulate, a->hidden, a->inter, Sd);
    }
    DG_LAUNCHED("moe_down_w8a8_kernel");
    return DG_OK;
}

}  // namespace

namespace dg {

bool moe_gemv_w8a8_ok(const dg_moe_ffn_args *a) {
    if (a->mode != DG_LINEAR_W8A8 || a->n < 1 || a->n > 8 || a->top_k < 1 || a->top_k > DOWN_MAX_WARPS) return false;
    if (!w8a8_gemv_device_ok() || !is_act_dtype(a->x_dtype) || !is_act_dtype(a->y_dtype)) return false;
    const int xa = a->x_dtype == DG_BF16 ? 8 : 4;
    if ((uintptr_t)a->x % 16 != 0 || a->ld_x % xa != 0 || a->hidden % 16 != 0 || a->inter % 16 != 0) return false;
    return true;
}

dg_status moe_gemv_w8a8(const dg_moe_ffn_args *a, float *H, cudaStream_t cs) {
    return a->x_dtype == DG_F32 ? run<float>(a, H, cs) : run<bf>(a, H, cs);
}

}  // namespace dg
