/*
 * gemv_w8a8.cu: dg_linear's W8A8 mode for decode (1..8 rows of x against e4m3 weights with 128-column
 * scale blocks) on the e4m3 tensor cores: w8a8_tile.cuh's tile. linear.cu dispatches here when
 * gemv_w8a8_ok(); the wgmma GEMM takes m > 32 and the f32 emulation the rest.
 *
 * Why: W8A8 decode ran the emulation (x quantised and dequantised to f32 in the workspace, then the
 * SIMT GEMV), and W8A16 decode spends its time converting weights (see w8a8_tile.cuh).
 *
 * Grid as gemv_mma.cu's: a row tile of 16 outputs per warp, S warps per tile (split-K within one
 * wave of 16 warps per SM), blocks of one tile's S warps (two tiles at S = 1). Each warp quantises
 * the x columns of its own iterations as it goes (w8a8_tile.cuh), so no workspace and no extra
 * launch; the weights' first iterations are prefetched into L2 before the wait on the previous
 * kernel. The S partial tiles meet in shared memory in warp order.
 * DEEPGO_W8A8_GEMV=emulate keeps the emulation (A/B). Iterations of 4 rounds of 64 columns: 8 (more
 * bytes in flight per warp, 120 registers) was slower on the H100 (bench/NOTES.md, W8A8 decode).
 * gemv_w8a8_ok leaves w.rows / 16 tiles within the grid's x (2^31 - 1 blocks).
 *
 * Test: go test ./tests/kernels -run 'TestLinear$|W8A8Gemv' -v
 */
#include "gemv_w8a8.cuh"

#include "w8a8_tile.cuh"
#include <stdlib.h>
#include <string.h>

using namespace dg;

namespace {

/* Warps per block at most (split-K up to this): 16 for one token (DeepSeek-V3's q_a/kv_a, 132
 * tiles of 28 iterations, get 16 warps a tile instead of 8), 8 for up to 8 tokens (their per-warp x
 * buffers would pass 48 KB of static shared memory at 16). */
template <int MT> constexpr int warps_max() { return MT == 1 ? 16 : 8; }

template <int MT, typename XT, typename YT>
__global__ void __launch_bounds__(warps_max<MT>() * 32) gemv_w8a8_kernel(const XT *__restrict__ x, YT *__restrict__ y, dg_weight w,
                                                               int m, int64_t ld_x, int64_t ld_y, int accumulate, int S) {
    constexpr int WARPS = warps_max<MT>();
    __shared__ __align__(16) uint8_t xbuf[WARPS][w8v_warp_smem<MT>()];
    __shared__ float part[WARPS][32][4];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int tpb = (int)(blockDim.x >> 5) / S;
    const int64_t r0 = ((int64_t)blockIdx.x * tpb + warp / S) * 16;
    const int ks = warp % S;
    const int64_t nrow = std::max<int64_t>(0, std::min<int64_t>(16, w.rows - r0));
    if (lane < nrow && ks * W8V_IC < w.cols) { /* as gemv_mma_kernel: the first two iterations into L2 */
        const int64_t c = ks * W8V_IC;
        prefetch_l2((const char *)w.data + (r0 + lane) * w.ld + c, std::min<int64_t>(2 * W8V_IC, w.cols - c));
    }
    pdl_enter();
    const XT *xr[MT];
#pragma unroll
    for (int q = 0; q < MT; q++) xr[q] = x + (q < m ? q : 0) * ld_x;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    if (nrow > 0) {
        const bool oka = g < nrow, okb = g + 8 < nrow;
        const char *wa = (const char *)w.data + (oka ? r0 + g : 0) * w.ld;
        const char *wb = (const char *)w.data + (okb ? r0 + g + 8 : 0) * w.ld;
        w8v_tile_dot<MT, XT>(wa, wb, oka, okb, gemv_tile_scale_row(w, r0), w.block_cols, w.cols, xr, m, xbuf[warp],
                             ks, S, acc);
    }
    if (S > 1) {
#pragma unroll
        for (int e = 0; e < 4; e++) part[warp][lane][e] = acc[e];
        __syncthreads();
        if (ks != 0) return;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float v = 0.f;
            for (int k = 0; k < S; k++) v += part[warp + k][lane][e];
            acc[e] = v;
        }
    }
    /* acc[0..1]: output r0 + g, tokens 2t, 2t + 1; acc[2..3]: output r0 + g + 8 */
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const int tok = 2 * t + (e & 1);
        const int jj = g + (e < 2 ? 0 : 8);
        if (tok < m && jj < nrow) {
            YT *p = y + tok * ld_y + r0 + jj;
            float v = acc[e];
            if (accumulate) v += to_f32(*p);
            *p = from_f32<YT>(v);
        }
    }
}

/* DEEPGO_W8A8_SPLIT=pow2 keeps split counts to powers of two, as the W8A16 tile's (A/B runs). */
bool pow2_split() {
    static const bool p = [] {
        const char *e = getenv("DEEPGO_W8A8_SPLIT");
        return e && strcmp(e, "pow2") == 0;
    }();
    return p;
}

template <int MT, typename XT, typename YT>
dg_status launch(const dg_linear_args *a, cudaStream_t st) {
    const dg_weight &w = a->w;
    const int64_t tiles = ceil_div(w.rows, 16);
    /* with one token ~93 registers hold 20 warps per SM, where the default assumes the W8A16
     * tile's 16: DeepSeek-V3's gate_proj at m=1 (1,152 tiles) then splits in two */
    const int S = gemv_tile_split(tiles, ceil_div(w.cols, (int64_t)W8V_IC), warps_max<MT>(),
                                  tile_warps_per_sm<gemv_w8a8_kernel<MT, XT, YT>>(), pow2_split());
    const int bw = gemv_tile_block_warps(S, warps_max<MT>());
    const unsigned grid = (unsigned)ceil_div(tiles, bw / S);
    launch_pdl(gemv_w8a8_kernel<MT, XT, YT>, grid, bw * 32, 0, st, (const XT *)a->x, (YT *)a->y, w, (int)a->m,
               a->ld_x, a->ld_y, (int)a->accumulate, S);
    DG_LAUNCHED("gemv_w8a8_kernel");
    return DG_OK;
}

/* One token (decode) keeps one x row in registers; 2..8 share the 8-token kernel. */
template <typename XT, typename YT>
dg_status launch_m(const dg_linear_args *a, cudaStream_t st) {
    return a->m == 1 ? launch<1, XT, YT>(a, st) : launch<8, XT, YT>(a, st);
}

dg_status launch_any(const dg_linear_args *a, cudaStream_t st) {
    if (a->x_dtype == DG_F32)
        return a->y_dtype == DG_F32 ? launch_m<float, float>(a, st) : launch_m<float, __nv_bfloat16>(a, st);
    return a->y_dtype == DG_F32 ? launch_m<__nv_bfloat16, float>(a, st) : launch_m<__nv_bfloat16, __nv_bfloat16>(a, st);
}

}  // namespace

namespace dg {

bool w8a8_gemv_device_ok() {
    static const bool ok = [] {
        const char *e = getenv("DEEPGO_W8A8_GEMV");
        if (e && strcmp(e, "emulate") == 0) return false;
        const int cc = device_attr(cudaDevAttrComputeCapabilityMajor, 0) * 10 +
                       device_attr(cudaDevAttrComputeCapabilityMinor, 0);
        return cc >= 89;
    }();
    return ok;
}

bool gemv_w8a8_ok(const dg_linear_args *a) {
    const dg_weight &w = a->w;
    if (a->mode != DG_LINEAR_W8A8 || a->m < 1 || a->m > 8 || !w8a8_gemv_device_ok()) return false;
    if (!w8v_weight_ok(w) || w.block_cols != W8V_XB || w.cols > (1 << 20) || w.rows > (int64_t)INT32_MAX * 16) return false;
    const int xa = a->x_dtype == DG_BF16 ? 8 : 4; /* elements per 16 bytes */
    return is_act_dtype(a->x_dtype) && is_act_dtype(a->y_dtype) && (uintptr_t)a->x % 16 == 0 && a->ld_x % xa == 0;
}

dg_status gemv_w8a8(const dg_linear_args *a, cudaStream_t st) {
    return launch_any(a, st);
}

}  // namespace dg
