/*
 * moe.cu: the DeepSeek-V3 router and the routed experts.
 *
 * moe_gate, one warp per token, one kernel:
 *   s = sigmoid(logits) (or softmax over experts); b = s + bias (bias NULL: b = s)
 *   NOAUX_TC: group score = sum of the top-2 b of each group; GROUP_LIMITED_GREEDY: max s;
 *   keep the topk_group best groups (ties: lower group), the rest -inf; top_k experts by b
 *   (GREEDY: by s, no groups), ties to the lower index, written in descending order;
 *   w = s[chosen]; norm_topk_prob: w /= sum(w) + 1e-20; w *= scaling.
 *   Scores live in shared memory (8 bytes per expert); top-k is k rounds of a warp arg-max.
 *   n_shared: lanes top_k.. write the fixed shared-expert entries (id n_experts + j, weight 1).
 *
 * moe_ffn: y[t] (+)= sum_k w[t,k] * down_e(silu(gate_e(x[t])) * up_e(x[t])), e = ids[t,k].
 *   1. count   assignments per expert (atomics into the workspace; ids < 0 or >= n_experts skipped)
 *   2. plan    one block: expert offsets (exclusive scan), the list of 64-row tiles
 *              (expert, first row, end row) and the number of tiles, all on the device
 *   3. scatter assignment (t,k) -> a row p of its expert's segment: rows[p] = t, pos[t,k] = p
 *   4. gate/up grouped GEMMs (gemm.cuh tiles; grid.y = an upper bound of the tile count, extra
 *      blocks exit) into G and U [A, inter] f32, A = n*top_k
 *   5. G = silu(G) * U
 *   6. down grouped GEMM: O [A, hidden] f32
 *   7. combine y[t] = (accumulate ? y[t] : 0) + sum_k w[t,k] * O[pos[t,k]]  (fixed k order)
 *   Only the chosen experts' weights are read; the weight descriptors are read on the device.
 *   Small n (n <= 8, DEFAULT mode; decode): no sort, two GEMV launches instead. gateup: grid
 *   (inter/8, n*top_k), x[t] staged in shared memory as f32, one warp per row i reads the gate
 *   and up rows together in 16-byte streaming loads (4 chunks each in flight), H[a, i] =
 *   silu(g) * u (f32, rows padded to 4). down: grid (hidden/4, n), the 8 warps share the
 *   (row, k) dot products with H, then one thread per row combines them in k order with the
 *   routing weights and the accumulate. fp8 weights: block scale per 16-byte chunk. BF16 x
 *   with aligned rows takes the tensor-core GEMVs of moe_gemv_mma.cu instead; from the n where
 *   tokens share experts often (uniform routing: > 10% of the reads repeated) up to 32 tokens,
 *   after steps 1-3, its sorted GEMVs (each chosen expert read once for all its rows) write H
 *   and O, and step 7 combines.
 *   Nothing is copied to the host, so the whole call can be graph-captured.
 *   BF16 x: gemm.cuh's fast tiles (BN=128, cp.async + ldmatrix) for BF16 experts with aligned rows,
 *   its fast fp8 tile (e4m3 staged as bytes, converted exactly to bf16 in registers, block scales
 *   applied in f32 per K-block) for F8E4M3 experts with aligned rows and block_cols % 32 == 0,
 *   else mma.sync tiles; the SiLU product goes to the down GEMM as bf16 (what the mma tiles
 *   rounded it to anyway). F32 x: SIMT f32 tiles. W8A8: x and the SiLU product are quantised
 *   per token per block_cols (read from the first expert's descriptor) before their GEMMs, which
 *   then run in f32 (an exact emulation); for n <= 8 on sm_89+ moe_gemv_w8a8.cu's e4m3 tensor-core
 *   GEMVs instead (the same quantisation, in shared memory).
 *   Workspace: see moe_layout() (about A * (2*inter + hidden) * 4 bytes plus small tables).
 *
 * Test: go test ./tests/kernels -run 'MoE' -v
 */
#include "gemm.cuh"
#include "gemv_w8a8.cuh"
#include "moe_gemv_mma.cuh"

using namespace dg;

namespace {

/* ------------------------------------------------------------------------------------------ */
/* moe_gate                                                                                    */
/* ------------------------------------------------------------------------------------------ */

__global__ void moe_gate_kernel(dg_moe_gate_args a) {
    extern __shared__ float sm[];
    pdl_enter();
    const int E = a.n_experts;
    float *s = sm;      /* [E] */
    float *b = sm + E;  /* [E] choosing score, -inf when masked or taken */
    __shared__ float gscore[64];
    __shared__ int gkeep[64];
    const int lane = threadIdx.x;
    const int64_t t = blockIdx.x;
    const float *lg = a.logits + t * a.ld_logits;

    if (a.scoring == DG_SCORE_SOFTMAX) {
        float mx = -INFINITY;
        for (int e = lane; e < E; e += 32) mx = fmaxf(mx, lg[e]);
        mx = warp_max(mx);
        float sum = 0.f;
        for (int e = lane; e < E; e += 32) {
            float v = expf(lg[e] - mx);
            s[e] = v;
            sum += v;
        }
        sum = warp_sum(sum);
        for (int e = lane; e < E; e += 32) s[e] /= sum;
    } else {
        for (int e = lane; e < E; e += 32) s[e] = 1.f / (1.f + expf(-lg[e]));
    }
    __syncwarp();
    const bool greedy = a.method == DG_TOPK_GREEDY;
    for (int e = lane; e < E; e += 32) b[e] = greedy ? s[e] : (a.bias ? s[e] + a.bias[e] : s[e]);
    __syncwarp();

    const int G = a.n_group;
    if (!greedy && G > 1) {
        const int gs = E / G;
        for (int g = lane; g < G; g += 32) {
            float sc;
            if (a.method == DG_TOPK_NOAUX_TC) {
                float m1 = -INFINITY, m2 = -INFINITY;
                for (int e = g * gs; e < (g + 1) * gs; e++) {
                    float v = b[e];
                    if (v > m1) {
                        m2 = m1;
                        m1 = v;
                    } else if (v > m2) {
                        m2 = v;
                    }
                }
                sc = gs >= 2 ? m1 + m2 : m1;
            } else {
                float m1 = -INFINITY;
                for (int e = g * gs; e < (g + 1) * gs; e++) m1 = fmaxf(m1, s[e]);
                sc = m1;
            }
            gscore[g] = sc;
            gkeep[g] = 0;
        }
        __syncwarp();
        if (lane == 0) {
            for (int k = 0; k < a.topk_group && k < G; k++) {
                int best = -1;
                float bv = -INFINITY;
                for (int g = 0; g < G; g++)
                    if (!gkeep[g] && (best < 0 || gscore[g] > bv)) {
                        best = g;
                        bv = gscore[g];
                    }
                gkeep[best] = 1;
            }
        }
        __syncwarp();
        for (int e = lane; e < E; e += 32)
            if (!gkeep[e / gs]) b[e] = -INFINITY;
        __syncwarp();
    }

    /* top_k rounds of a warp arg-max over the choosing score; taken entries become NaN. */
    int chosen_id = -1; /* lane k holds the k-th choice */
    float chosen_w = 0.f;
    for (int k = 0; k < a.top_k; k++) {
        float bv = -INFINITY;
        int bi = 0x7fffffff;
        for (int e = lane; e < E; e += 32) {
            float v = b[e];
            if (v != v) continue;
            argmax_merge(bv, bi, v, e);
        }
        warp_argmax(bv, bi);
        if (bi == 0x7fffffff) bi = -1;
        if (lane == k) {
            chosen_id = bi;
            chosen_w = bi >= 0 ? s[bi] : 0.f;
        }
        __syncwarp();
        if (lane == 0 && bi >= 0) b[bi] = NAN;
        __syncwarp();
    }
    float sum = warp_sum(lane < a.top_k ? chosen_w : 0.f);
    const int64_t row = t * (a.top_k + a.n_shared);
    if (lane < a.top_k) {
        float w = chosen_w;
        if (a.norm_topk_prob) w /= (sum + 1e-20f);
        a.ids[row + lane] = chosen_id;
        a.weights[row + lane] = w * a.scaling;
    } else if (lane < a.top_k + a.n_shared) { /* the shared experts, as extra experts */
        a.ids[row + lane] = E + lane - a.top_k;
        a.weights[row + lane] = 1.f;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* moe_ffn                                                                                     */
/* ------------------------------------------------------------------------------------------ */

struct MoeLayout {
    int64_t counts, cursor, offsets, tiles, ntiles, rows, pos; /* byte offsets */
    int64_t g, u, o, xq, hb;
    int64_t total;
    int64_t A, max_tiles;
};

int64_t al(int64_t b) { return (b + 255) / 256 * 256; }

MoeLayout moe_layout(const dg_moe_ffn_args *a) {
    MoeLayout L;
    int64_t A = a->n * a->top_k;
    int64_t E = a->n_experts;
    L.A = A;
    L.max_tiles = std::min(ceil_div(A, GEMM_BM) + E, std::max<int64_t>(A, 1)); /* a tile holds >= 1 row */
    int64_t off = 0;
    L.counts = off; off += al(4 * E);
    L.cursor = off; off += al(4 * E);
    L.offsets = off; off += al(4 * (E + 1));
    L.tiles = off; off += al(12 * L.max_tiles);
    L.ntiles = off; off += al(4);
    L.rows = off; off += al(4 * A);
    L.pos = off; off += al(4 * A);
    L.g = off; off += al(4 * A * ((a->inter + 3) / 4 * 4)); /* GEMV paths: H [A, round4(inter)] f32, or bf16 rows of round8 */
    L.u = off; off += al(4 * A * a->inter);
    L.o = off; off += al(4 * A * a->hidden);
    L.hb = off; off += al(2 * A * a->inter); /* bf16 silu(G)*U, the down GEMM's A (mma path) */
    L.xq = off;
    if (a->mode == DG_LINEAR_W8A8) off += al(4 * (a->n * a->hidden > A * a->inter ? a->n * a->hidden : A * a->inter));
    L.total = off;
    return L;
}

__global__ void moe_zero_kernel(int32_t *counts, int E) {
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < E; e += gridDim.x * blockDim.x) counts[e] = 0;
}

__global__ void moe_count_kernel(const int32_t *ids, int64_t A, int E, int32_t *counts) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < A; i += (int64_t)gridDim.x * blockDim.x) {
        int e = ids[i];
        if (e >= 0 && e < E) atomicAdd(&counts[e], 1);
    }
}

/* One block of 1024 threads: offsets, cursors and the tile list. */
__global__ void moe_plan_kernel(const int32_t *counts, int E, int32_t *offsets, int32_t *cursor, int32_t *tiles,
                                int32_t *ntiles) {
    __shared__ int32_t tile_off[1025];
    __shared__ int32_t row_off[1025];
    __shared__ int32_t carry_rows, carry_tiles;
    if (threadIdx.x == 0) {
        carry_rows = 0;
        carry_tiles = 0;
    }
    __syncthreads();
    for (int base = 0; base < E; base += 1024) {
        int e = base + threadIdx.x;
        int c = e < E ? counts[e] : 0;
        int nt = (c + GEMM_BM - 1) / GEMM_BM;
        /* inclusive scans, Hillis-Steele (E is small) */
        row_off[threadIdx.x + 1] = c;
        tile_off[threadIdx.x + 1] = nt;
        if (threadIdx.x == 0) {
            row_off[0] = 0;
            tile_off[0] = 0;
        }
        __syncthreads();
        for (int d = 1; d < 1024; d <<= 1) {
            int rv = 0, tv = 0;
            int idx = threadIdx.x + 1;
            if (idx - d >= 1) {
                rv = row_off[idx - d];
                tv = tile_off[idx - d];
            }
            __syncthreads();
            row_off[idx] += rv;
            tile_off[idx] += tv;
            __syncthreads();
        }
        if (e < E) {
            int ro = carry_rows + row_off[threadIdx.x];
            int to = carry_tiles + tile_off[threadIdx.x];
            offsets[e] = ro;
            cursor[e] = ro;
            for (int j = 0; j < nt; j++) {
                tiles[3 * (to + j) + 0] = e;
                tiles[3 * (to + j) + 1] = ro + j * GEMM_BM;
                tiles[3 * (to + j) + 2] = ro + c;
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            carry_rows += row_off[1024];
            carry_tiles += tile_off[1024];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        offsets[E] = carry_rows;
        *ntiles = carry_tiles;
    }
}

__global__ void moe_scatter_kernel(const int32_t *ids, int64_t A, int top_k, int E, int32_t *cursor, int32_t *rows,
                                   int32_t *pos) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < A; i += (int64_t)gridDim.x * blockDim.x) {
        int e = ids[i];
        if (e >= 0 && e < E) {
            int p = atomicAdd(&cursor[e], 1);
            rows[p] = (int32_t)(i / top_k);
            pos[i] = p;
        } else {
            pos[i] = -1;
        }
    }
}

struct F32Epi {
    float *c;
    int64_t ldc;
    __device__ __forceinline__ void operator()(int64_t r, int64_t n, float v) const { c[r * ldc + n] = v; }
};

/* Grouped GEMM: tile list entry (expert, r0, r_end); C[r, :] = A[map(r)] . W_e^T. */
template <typename AT, bool MMA>
__global__ void __launch_bounds__(MMA ? GEMM_MMA_THREADS : GEMM_SIMT_THREADS)
    moe_gemm_kernel(const AT *__restrict__ A, int64_t lda, const int32_t *amap, const dg_weight *W,
                    const int32_t *tiles, const int32_t *ntiles, float *C, int64_t ldc) {
    int tile = blockIdx.y;
    if (tile >= *ntiles) return;
    int e = tiles[3 * tile], r0 = tiles[3 * tile + 1], r1 = tiles[3 * tile + 2];
    dg_weight w = W[e];
    int64_t n0 = (int64_t)blockIdx.x * GEMM_BN;
    if (n0 >= w.rows) return;
    F32Epi epi{C, ldc};
    if (MMA)
        gemm_tile_mma<AT>(A, lda, amap, r0, r1, w, n0, epi);
    else
        gemm_tile_simt<AT>(A, lda, amap, r0, r1, w, n0, epi);
}

__global__ void moe_silu_kernel(float *g, const float *u, int64_t inter, const int32_t *offsets, int E) {
    int64_t total = offsets[E] * inter;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        float x = g[i];
        g[i] = x / (1.f + expf(-x)) * u[i];
    }
}

/* The fast grouped GEMM: BN=128 tiles of gemm.cuh's fast tile when the expert's weight is BF16
 * with aligned rows and a_fast (A bf16 with aligned rows, checked by the host); two 64-wide fast
 * fp8 tiles (gemm_tile_fast_fp8_n64) when the weight is F8E4M3 and gemm_fast_fp8_ok (aligned
 * rows, cols % 16, block_cols % 32; the scales come with the descriptor); else two 64-wide generic
 * mma tiles. The dtype is read per tile on the device, so one kernel holds all three and its
 * register count is the largest's: the 64x128 fp8 tile (~190) would cut the bf16 experts'
 * occupancy from 4 blocks per SM to 2, the 64-wide one keeps the kernel near the bf16 tile's
 * (ptxas, left alone, gives the three-path kernel ~160; the launch bound holds it at 128, no
 * spills on sm_80/89/90a with CUDA 13.0). */
__global__ void __launch_bounds__(GF_THREADS, 4) /* <= 128 registers */
    moe_gemm_fast_kernel(const __nv_bfloat16 *__restrict__ A, int64_t lda, const int32_t *amap, const dg_weight *W,
                         const int32_t *tiles, const int32_t *ntiles, float *C, int64_t ldc, int a_fast) {
    extern __shared__ __align__(16) char gsm[];
    int tile = blockIdx.y;
    if (tile >= *ntiles) return;
    int e = tiles[3 * tile], r0 = tiles[3 * tile + 1], r1 = tiles[3 * tile + 2];
    dg_weight w = W[e];
    int64_t n0 = (int64_t)blockIdx.x * GF_BN;
    if (n0 >= w.rows) return;
    F32Epi epi{C, ldc};
    if (a_fast && w.dtype == DG_BF16 && gemm_fast_ok(w.data, w.ld, w.cols)) {
        gemm_tile_fast(A, lda, amap, r0, r1, (const __nv_bfloat16 *)w.data, w.ld, w.rows, w.cols, n0, epi, gsm);
    } else if (a_fast && w.dtype == DG_F8E4M3 && gemm_fast_fp8_ok(w.data, w.ld, w.cols, w.block_rows, w.block_cols)) {
        const int64_t lds = (w.cols + w.block_cols - 1) / w.block_cols;
        const int64_t n1 = min(n0 + GF_BN, w.rows);
        /* a loop, not two inlined calls: those would keep both live (~160 registers, not ~120) */
#pragma unroll 1
        for (int64_t n = n0; n < n1; n += 64) /* GEMM_FAST_FP8_SMEM <= GEMM_FAST_SMEM */
            gemm_tile_fast_fp8_n64(A, lda, amap, r0, r1, (const uint8_t *)w.data, w.ld, w.rows, w.cols, w.scale,
                                   w.block_rows, w.block_cols, lds, n, epi, gsm);
    } else {
        gemm_tile_mma<__nv_bfloat16>(A, lda, amap, r0, r1, w, n0, epi);
        if (n0 + GEMM_BN < w.rows) gemm_tile_mma<__nv_bfloat16>(A, lda, amap, r0, r1, w, n0 + GEMM_BN, epi);
    }
}

__global__ void moe_silu_bf16_kernel(const float *g, const float *u, __nv_bfloat16 *h, int64_t inter,
                                     const int32_t *offsets, int E) {
    int64_t total = offsets[E] * inter;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        float x = g[i];
        h[i] = __float2bfloat16_rn(x / (1.f + expf(-x)) * u[i]);
    }
}

template <typename YT>
__global__ void moe_combine_kernel(const float *O, int64_t hidden, const int32_t *pos, const float *weights, int top_k,
                                   YT *y, int64_t ld_y, int accumulate) {
    int64_t t = blockIdx.y;
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= hidden) return;
    float acc = accumulate ? to_f32(y[t * ld_y + j]) : 0.f;
    float sum = 0.f;
    for (int k = 0; k < top_k; k++) {
        int p = pos[t * top_k + k];
        if (p >= 0) sum = fmaf(weights[t * top_k + k], O[(int64_t)p * hidden + j], sum);
    }
    y[t * ld_y + j] = from_f32<YT>(acc + sum);
}

/* ------------------------------------------------------------------------------------------ */
/* moe_ffn, small n (decode): GEMV over the chosen experts, no sort                            */
/* ------------------------------------------------------------------------------------------ */

constexpr int MOE_GEMV_MAX_N = 8;      /* tokens per call that take the GEMV path */
constexpr int MV_WARPS = 8;            /* warps per block */
constexpr int MV_DOWN_ROWS = 4;        /* hidden rows per down block */
constexpr int MV_MAX_HIDDEN = 12288;   /* x staged in shared memory as f32 (48 KB) */


/* sum_e W_chunk[e] * x[e] for one 16-byte chunk of weights; x is 16-byte aligned f32. */
template <typename WT>
__device__ __forceinline__ float chunk_dot(const uint4 &raw, const float *x) {
    constexpr int N = 16 / sizeof(WT);
    const WT *wv = (const WT *)&raw;
    const float4 *x4 = (const float4 *)x;
    float s = 0.f;
    if constexpr (sizeof(WT) == 1) { /* e4m3: two per conversion */
        float wf[16];
        e4m3x16_to_f32(raw, wf);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float4 xv = x4[q];
            s = fmaf(wf[4 * q + 0], xv.x, s);
            s = fmaf(wf[4 * q + 1], xv.y, s);
            s = fmaf(wf[4 * q + 2], xv.z, s);
            s = fmaf(wf[4 * q + 3], xv.w, s);
        }
    } else {
#pragma unroll
        for (int q = 0; q < N / 4; q++) {
            float4 xv = x4[q];
            s = fmaf(to_f32(wv[4 * q + 0]), xv.x, s);
            s = fmaf(to_f32(wv[4 * q + 1]), xv.y, s);
            s = fmaf(to_f32(wv[4 * q + 2]), xv.z, s);
            s = fmaf(to_f32(wv[4 * q + 3]), xv.w, s);
        }
    }
    return s;
}

template <typename WT>
__device__ __forceinline__ float chunk_dot_scaled(const uint4 &raw, const float *x, const float *srow, int64_t j,
                                                  int bc) {
    constexpr int N = 16 / sizeof(WT);
    const WT *wv = (const WT *)&raw;
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < N; e++) s = fmaf(to_f32(wv[e]) * srow[(j + e) / bc], x[e], s);
    return s;
}

/* Lane partial sums of NR weight rows (same dtype, same cols) against one f32 vector x (16-byte
 * aligned, shared or global memory). fp8: srow[r] is the row's block-scale row, bc[r] its
 * block_cols. Rows that are not 16-byte aligned take the scalar path (all NR of them). U chunks
 * per row are loaded before their first use. */
template <typename WT, int NR, int U>
__device__ __forceinline__ void rows_dot_lane(const WT *(&row)[NR], const float *(&srow)[NR],
                                              const int (&bc)[NR], int64_t cols, const float *x, int lane,
                                              float (&acc)[NR]) {
    constexpr int N = 16 / sizeof(WT);
    constexpr bool FP8 = sizeof(WT) == 1;
    bool aligned = true;
#pragma unroll
    for (int r = 0; r < NR; r++) aligned = aligned && (((uintptr_t)row[r] & 15) == 0);
    int64_t jv = 0;
    if (aligned) {
        const int64_t nch = cols / N;
        jv = nch * N;
        bool cs = true;
        if (FP8) {
#pragma unroll
            for (int r = 0; r < NR; r++) cs = cs && (bc[r] % N == 0);
        }
        for (int64_t c0 = lane; c0 < nch; c0 += 32 * U) {
            uint4 raw[NR][U];
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int r = 0; r < NR; r++)
                    if (c0 + 32 * u < nch) raw[r][u] = ld_stream16(row[r] + (c0 + 32 * u) * N);
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int64_t c = c0 + 32 * u;
                if (c < nch) {
                    const int64_t j = c * N;
#pragma unroll
                    for (int r = 0; r < NR; r++) {
                        if (!FP8)
                            acc[r] += chunk_dot<WT>(raw[r][u], x + j);
                        else if (cs)
                            acc[r] = fmaf(chunk_dot<WT>(raw[r][u], x + j), srow[r][j / bc[r]], acc[r]);
                        else
                            acc[r] += chunk_dot_scaled<WT>(raw[r][u], x + j, srow[r], j, bc[r]);
                    }
                }
            }
        }
    }
    for (int64_t j = jv + lane; j < cols; j += 32) {
#pragma unroll
        for (int r = 0; r < NR; r++) {
            float wf = to_f32(row[r][j]);
            if (FP8) wf *= srow[r][j / bc[r]];
            acc[r] = fmaf(wf, x[j], acc[r]);
        }
    }
}

template <typename WT, int NR, int U>
__device__ __forceinline__ void weights_dot_lane(const dg_weight *(&w)[NR], int64_t i, const float *x, int lane,
                                                 float (&acc)[NR]) {
    const WT *row[NR];
    const float *srow[NR];
    int bc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        row[r] = (const WT *)w[r]->data + i * w[r]->ld;
        srow[r] = nullptr;
        bc[r] = 1;
        if (sizeof(WT) == 1) {
            bc[r] = w[r]->block_cols;
            srow[r] = w[r]->scale + (i / w[r]->block_rows) * ((w[r]->cols + bc[r] - 1) / bc[r]);
        }
    }
    rows_dot_lane<WT, NR, U>(row, srow, bc, w[0]->cols, x, lane, acc);
}

/* Dispatch on the (warp-uniform) weight dtype. */
template <int NR, int U>
__device__ __forceinline__ void weights_dot_any(const dg_weight *(&w)[NR], int64_t i, const float *x, int lane,
                                                float (&acc)[NR]) {
    switch (w[0]->dtype) {
    case DG_BF16: weights_dot_lane<__nv_bfloat16, NR, U>(w, i, x, lane, acc); break;
    case DG_F8E4M3: weights_dot_lane<fp8_t, NR, U>(w, i, x, lane, acc); break;
    case DG_F16: weights_dot_lane<__half, NR, U>(w, i, x, lane, acc); break;
    default: weights_dot_lane<float, NR, U>(w, i, x, lane, acc); break;
    }
}

/* H[a, i] = silu(gate_e[i] . x[t]) * (up_e[i] . x[t]) for assignment a = t*top_k + k, e = ids[a].
 * grid (ceil(inter / MV_WARPS), n*top_k), one warp per row i; x[t] staged in shared memory. */
template <typename XT>
__global__ void __launch_bounds__(MV_WARPS * 32)
    moe_gemv_gateup_kernel(const XT *__restrict__ x, int64_t ld_x, const int32_t *ids, int top_k, int E,
                           const dg_weight *G, const dg_weight *Up, float *H, int64_t ldh, int64_t hidden,
                           int64_t inter) {
    extern __shared__ __align__(16) float xs[];
    pdl_enter();
    const int64_t as = blockIdx.y;
    const int e = ids[as];
    if (e < 0 || e >= E) return; /* uniform over the block */
    const int64_t t = as / top_k;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) xs[j] = to_f32(x[t * ld_x + j]);
    __syncthreads();
    const int lane = threadIdx.x & 31;
    const int64_t i = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (i >= inter) return;
    const dg_weight *g = G + e, *u = Up + e;
    float ag, au;
    if (g->dtype == u->dtype && g->cols == u->cols) {
        const dg_weight *w2[2] = {g, u};
        float acc[2] = {0.f, 0.f};
        weights_dot_any<2, 4>(w2, i, xs, lane, acc);
        ag = acc[0];
        au = acc[1];
    } else {
        const dg_weight *w1[1] = {g};
        float acc[1] = {0.f};
        weights_dot_any<1, 8>(w1, i, xs, lane, acc);
        ag = acc[0];
        w1[0] = u;
        acc[0] = 0.f;
        weights_dot_any<1, 8>(w1, i, xs, lane, acc);
        au = acc[0];
    }
    ag = warp_sum(ag);
    au = warp_sum(au);
    if (lane == 0) H[as * ldh + i] = ag / (1.f + expf(-ag)) * au;
}

/* y[t, j] (+)= sum_k w[t,k] * (down_e[j] . H[t*top_k+k]), fixed k order. grid (ceil(hidden /
 * MV_DOWN_ROWS), n); the block's warps share the (row, k) dot products, then one thread per row
 * combines them. top_k <= 32. */
template <typename YT>
__global__ void __launch_bounds__(MV_WARPS * 32)
    moe_gemv_down_kernel(const float *__restrict__ H, int64_t ldh, const int32_t *ids, const float *wts, int top_k,
                         int E, const dg_weight *D, YT *y, int64_t ld_y, int accumulate, int64_t hidden) {
    __shared__ float part[MV_DOWN_ROWS][32];
    pdl_enter();
    const int64_t t = blockIdx.y;
    const int64_t j0 = (int64_t)blockIdx.x * MV_DOWN_ROWS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int ntask = MV_DOWN_ROWS * top_k;
    for (int task = warp; task < ntask; task += MV_WARPS) {
        const int r = task / top_k, k = task % top_k;
        const int64_t j = j0 + r;
        const int e = ids[t * top_k + k];
        float v = 0.f;
        if (j < hidden && e >= 0 && e < E) {
            const dg_weight *w1[1] = {D + e};
            float acc[1] = {0.f};
            weights_dot_any<1, 8>(w1, j, H + (t * top_k + k) * ldh, lane, acc);
            v = warp_sum(acc[0]);
        }
        if (lane == 0) part[r][k] = v;
    }
    __syncthreads();
    if (threadIdx.x < MV_DOWN_ROWS) {
        const int r = threadIdx.x;
        const int64_t j = j0 + r;
        if (j < hidden) {
            float sum = 0.f;
            for (int k = 0; k < top_k; k++) {
                const int e = ids[t * top_k + k];
                if (e >= 0 && e < E) sum = fmaf(wts[t * top_k + k], part[r][k], sum);
            }
            float acc = accumulate ? to_f32(y[t * ld_y + j]) : 0.f;
            y[t * ld_y + j] = from_f32<YT>(acc + sum);
        }
    }
}

/* y[t] = (accumulate ? y[t] : 0) + sum_k w[t,k] * O[pos[t,k]]  (fixed k order) */
dg_status moe_combine(const dg_moe_ffn_args *a, const float *O, const int32_t *pos, cudaStream_t cs) {
    dim3 cg((unsigned)ceil_div(a->hidden, 256), (unsigned)a->n);
    if (a->y_dtype == DG_F32)
        moe_combine_kernel<float><<<cg, 256, 0, cs>>>(O, a->hidden, pos, a->weights, a->top_k, (float *)a->y, a->ld_y,
                                                     a->accumulate);
    else
        moe_combine_kernel<__nv_bfloat16><<<cg, 256, 0, cs>>>(O, a->hidden, pos, a->weights, a->top_k,
                                                             (__nv_bfloat16 *)a->y, a->ld_y, a->accumulate);
    DG_LAUNCHED("moe_combine_kernel");
    return DG_OK;
}

}  // namespace

extern "C" {

DG_API dg_status dg_moe_gate(const dg_moe_gate_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_moe_gate");
    DG_REQUIRE(a->n_experts > 0 && a->top_k > 0 && a->top_k <= a->n_experts, "dg_moe_gate: n_experts %d, top_k %d",
               a->n_experts, a->top_k);
    DG_REQUIRE(a->n_shared >= 0, "dg_moe_gate: n_shared %d", a->n_shared);
    if (a->top_k + a->n_shared > 32)
        return fail(DG_ERR_UNSUPPORTED, "dg_moe_gate: top_k %d + n_shared %d > 32", a->top_k, a->n_shared);
    DG_REQUIRE(a->scoring == DG_SCORE_SIGMOID || a->scoring == DG_SCORE_SOFTMAX, "dg_moe_gate: scoring %d",
               a->scoring);
    DG_REQUIRE(a->method >= DG_TOPK_NOAUX_TC && a->method <= DG_TOPK_GROUP_LIMITED_GREEDY, "dg_moe_gate: method %d",
               a->method);
    if (a->method != DG_TOPK_GREEDY && a->n_group > 1) {
        DG_REQUIRE(a->n_experts % a->n_group == 0, "dg_moe_gate: n_experts %d not a multiple of n_group %d",
                   a->n_experts, a->n_group);
        DG_REQUIRE(a->topk_group >= 1 && a->topk_group <= a->n_group, "dg_moe_gate: topk_group %d of %d groups",
                   a->topk_group, a->n_group);
        if (a->n_group > 64) return fail(DG_ERR_UNSUPPORTED, "dg_moe_gate: n_group %d > 64", a->n_group);
    }
    DG_REQUIRE(a->n >= 0 && a->ld_logits >= a->n_experts, "dg_moe_gate: n %lld, ld_logits %lld", (long long)a->n,
               (long long)a->ld_logits);
    if (a->n == 0) return DG_OK;
    DG_REQUIRE(a->logits && a->ids && a->weights, "dg_moe_gate: NULL pointer");
    size_t smem = 2 * sizeof(float) * a->n_experts;
    if (smem > 48 * 1024) return fail(DG_ERR_UNSUPPORTED, "dg_moe_gate: %d experts > 6144", a->n_experts);
    DG_REQUIRE(a->n <= INT32_MAX, "dg_moe_gate: n too large");
    launch_pdl(moe_gate_kernel, (unsigned)a->n, 32, smem, stream_of(s), *a);
    DG_LAUNCHED("moe_gate_kernel");
    return DG_OK;
}

DG_API int64_t dg_moe_ffn_workspace_size(const dg_moe_ffn_args *a) {
    if (!a) return 0;
    return moe_layout(a).total;
}

DG_API dg_status dg_moe_ffn(const dg_moe_ffn_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_moe_ffn");
    DG_REQUIRE(is_act_dtype(a->x_dtype) && is_act_dtype(a->y_dtype), "dg_moe_ffn: x %s, y %s (F32 or BF16)",
               dtype_name(a->x_dtype), dtype_name(a->y_dtype));
    DG_REQUIRE(a->mode == DG_LINEAR_DEFAULT || a->mode == DG_LINEAR_W8A8, "dg_moe_ffn: mode %d", a->mode);
    DG_REQUIRE(a->n_experts > 0 && a->top_k > 0, "dg_moe_ffn: n_experts %d, top_k %d", a->n_experts, a->top_k);
    DG_REQUIRE(a->n >= 0 && a->hidden > 0 && a->inter > 0 && a->ld_x >= a->hidden && a->ld_y >= a->hidden,
               "dg_moe_ffn: bad shape");
    if (a->n == 0) return DG_OK;
    DG_REQUIRE(a->x && a->ids && a->weights && a->gate && a->up && a->down && a->y, "dg_moe_ffn: NULL pointer");
    DG_REQUIRE(a->workspace != nullptr, "dg_moe_ffn: needs a workspace of %lld bytes",
               (long long)dg_moe_ffn_workspace_size(a));
    MoeLayout L = moe_layout(a);
    DG_REQUIRE(L.A <= INT32_MAX / 2 && a->n <= 65535, "dg_moe_ffn: too many tokens (%lld)", (long long)a->n);
    DG_REQUIRE(L.max_tiles <= 65535, "dg_moe_ffn: too many tiles (%lld)", (long long)L.max_tiles);
    char *ws = (char *)a->workspace;
    int32_t *counts = (int32_t *)(ws + L.counts), *cursor = (int32_t *)(ws + L.cursor);
    int32_t *offsets = (int32_t *)(ws + L.offsets), *tiles = (int32_t *)(ws + L.tiles);
    int32_t *ntiles = (int32_t *)(ws + L.ntiles), *rows = (int32_t *)(ws + L.rows), *pos = (int32_t *)(ws + L.pos);
    float *G = (float *)(ws + L.g), *U = (float *)(ws + L.u), *O = (float *)(ws + L.o), *XQ = (float *)(ws + L.xq);
    cudaStream_t cs = stream_of(s);
    const int E = a->n_experts;
    const bool w8a8 = a->mode == DG_LINEAR_W8A8;
    const bool grouped = moe_gemv_mma_grouped_ok(a);
    if (w8a8 && moe_gemv_w8a8_ok(a)) return moe_gemv_w8a8(a, G, cs);
    if (!w8a8 && !grouped && a->n <= MOE_GEMV_MAX_N && a->hidden <= MV_MAX_HIDDEN && a->top_k <= 32) {
        /* decode: read only the chosen experts' rows, at full bandwidth, in two launches */
        if (moe_gemv_mma_ok(a)) return moe_gemv_mma(a, (__nv_bfloat16 *)G, cs);
        const int64_t ldh = (a->inter + 3) / 4 * 4;
        dim3 g1((unsigned)ceil_div(a->inter, MV_WARPS), (unsigned)L.A);
        size_t xsm = (size_t)a->hidden * sizeof(float);
        if (a->x_dtype == DG_F32)
            launch_pdl(moe_gemv_gateup_kernel<float>, g1, MV_WARPS * 32, xsm, cs, (const float *)a->x, a->ld_x,
                       a->ids, a->top_k, E, a->gate, a->up, G, ldh, a->hidden, a->inter);
        else
            launch_pdl(moe_gemv_gateup_kernel<__nv_bfloat16>, g1, MV_WARPS * 32, xsm, cs,
                (const __nv_bfloat16 *)a->x, a->ld_x, a->ids, a->top_k, E, a->gate, a->up, G, ldh, a->hidden,
                a->inter);
        DG_LAUNCHED("moe_gemv_gateup_kernel");
        dim3 g2((unsigned)ceil_div(a->hidden, MV_DOWN_ROWS), (unsigned)a->n);
        if (a->y_dtype == DG_F32)
            launch_pdl(moe_gemv_down_kernel<float>, g2, MV_WARPS * 32, 0, cs, (const float *)G, ldh, a->ids,
                       a->weights, a->top_k, E, a->down, (float *)a->y, a->ld_y, a->accumulate, a->hidden);
        else
            launch_pdl(moe_gemv_down_kernel<__nv_bfloat16>, g2, MV_WARPS * 32, 0, cs,
                (const float *)G, ldh, a->ids, a->weights, a->top_k, E, a->down, (__nv_bfloat16 *)a->y, a->ld_y, a->accumulate,
                a->hidden);
        DG_LAUNCHED("moe_gemv_down_kernel");
        return DG_OK;
    }
    /* W8A8 is emulated in f32 (SIMT) so that the quantised operands stay exact: routing bf16
     * copies of q*scale through mma moves the H quantisation boundaries (see linear.cu). */
    const bool mma = a->x_dtype == DG_BF16 && !w8a8;
    int cgrid = (int)std::min<int64_t>(ceil_div(L.A, 256), 1024);

    moe_zero_kernel<<<(E + 255) / 256, 256, 0, cs>>>(counts, E);
    DG_LAUNCHED("moe_zero_kernel");
    moe_count_kernel<<<cgrid, 256, 0, cs>>>(a->ids, L.A, E, counts);
    DG_LAUNCHED("moe_count_kernel");
    moe_plan_kernel<<<1, 1024, 0, cs>>>(counts, E, offsets, cursor, tiles, ntiles);
    DG_LAUNCHED("moe_plan_kernel");
    moe_scatter_kernel<<<cgrid, 256, 0, cs>>>(a->ids, L.A, a->top_k, E, cursor, rows, pos);
    DG_LAUNCHED("moe_scatter_kernel");
    if (grouped) {
        if (dg_status err = moe_gemv_mma_grouped(a, offsets, rows, (__nv_bfloat16 *)G, O, cs)) return err;
        return moe_combine(a, O, pos, cs);
    }

    dim3 g1((unsigned)ceil_div(a->inter, GEMM_BN), (unsigned)L.max_tiles);
    dim3 g2((unsigned)ceil_div(a->hidden, GEMM_BN), (unsigned)L.max_tiles);
    int nthr = mma ? GEMM_MMA_THREADS : GEMM_SIMT_THREADS;

    /* gate and up */
    if (w8a8) {
        if (a->x_dtype == DG_F32)
            act_quant_kernel<float><<<(unsigned)a->n, 128, 0, cs>>>((const float *)a->x, a->ld_x, nullptr, nullptr, XQ,
                                                                 a->hidden, a->hidden, 0, a->gate);
        else
            act_quant_kernel<__nv_bfloat16><<<(unsigned)a->n, 128, 0, cs>>>(
                (const __nv_bfloat16 *)a->x, a->ld_x, nullptr, nullptr, XQ, a->hidden, a->hidden, 0, a->gate);
        DG_LAUNCHED("act_quant_kernel");
        if (mma) {
            moe_gemm_kernel<float, true><<<g1, nthr, 0, cs>>>(XQ, a->hidden, rows, a->gate, tiles, ntiles, G, a->inter);
            moe_gemm_kernel<float, true><<<g1, nthr, 0, cs>>>(XQ, a->hidden, rows, a->up, tiles, ntiles, U, a->inter);
        } else {
            moe_gemm_kernel<float, false><<<g1, nthr, 0, cs>>>(XQ, a->hidden, rows, a->gate, tiles, ntiles, G, a->inter);
            moe_gemm_kernel<float, false><<<g1, nthr, 0, cs>>>(XQ, a->hidden, rows, a->up, tiles, ntiles, U, a->inter);
        }
    } else if (a->x_dtype == DG_F32) {
        const float *x = (const float *)a->x;
        moe_gemm_kernel<float, false><<<g1, nthr, 0, cs>>>(x, a->ld_x, rows, a->gate, tiles, ntiles, G, a->inter);
        moe_gemm_kernel<float, false><<<g1, nthr, 0, cs>>>(x, a->ld_x, rows, a->up, tiles, ntiles, U, a->inter);
    } else {
        /* BF16 x: the fast tiles (cp.async + ldmatrix) where the expert weights allow */
        const __nv_bfloat16 *x = (const __nv_bfloat16 *)a->x;
        if (dg_status err = opt_in_smem<moe_gemm_fast_kernel>(GEMM_FAST_SMEM, "moe_gemm_fast_kernel")) return err;
        dim3 f1((unsigned)ceil_div(a->inter, GF_BN), (unsigned)L.max_tiles);
        int xf = gemm_fast_ok(a->x, a->ld_x, a->hidden) ? 1 : 0;
        moe_gemm_fast_kernel<<<f1, GF_THREADS, GEMM_FAST_SMEM, cs>>>(x, a->ld_x, rows, a->gate, tiles, ntiles, G,
                                                                   a->inter, xf);
        moe_gemm_fast_kernel<<<f1, GF_THREADS, GEMM_FAST_SMEM, cs>>>(x, a->ld_x, rows, a->up, tiles, ntiles, U,
                                                                   a->inter, xf);
        DG_LAUNCHED("moe_gemm_fast_kernel (gate/up)");
        __nv_bfloat16 *HB = (__nv_bfloat16 *)(ws + L.hb);
        moe_silu_bf16_kernel<<<(int)std::min<int64_t>(ceil_div(L.A * a->inter, 256), 65535), 256, 0, cs>>>(
            G, U, HB, a->inter, offsets, E);
        DG_LAUNCHED("moe_silu_bf16_kernel");
        dim3 f2((unsigned)ceil_div(a->hidden, GF_BN), (unsigned)L.max_tiles);
        int hf = gemm_fast_ok(HB, a->inter, a->inter) ? 1 : 0;
        moe_gemm_fast_kernel<<<f2, GF_THREADS, GEMM_FAST_SMEM, cs>>>(HB, a->inter, nullptr, a->down, tiles, ntiles,
                                                                   O, a->hidden, hf);
        DG_LAUNCHED("moe_gemm_fast_kernel (down)");
        return moe_combine(a, O, pos, cs);
    }
    DG_LAUNCHED("moe_gemm_kernel (gate/up)");

    moe_silu_kernel<<<(int)std::min<int64_t>(ceil_div(L.A * a->inter, 256), 65535), 256, 0, cs>>>(G, U, a->inter,
                                                                                               offsets, E);
    DG_LAUNCHED("moe_silu_kernel");

    /* down: A rows are the sorted positions themselves */
    const float *H = G;
    if (w8a8) {
        /* quantise each used row of H per block_cols of down (rows past offsets[E] are skipped) */
        act_quant_kernel<float><<<(unsigned)L.A, 128, 0, cs>>>(G, a->inter, nullptr, offsets + E, XQ, a->inter,
                                                             a->inter, 0, a->down);
        DG_LAUNCHED("act_quant_kernel");
        H = XQ;
    }
    if (mma)
        moe_gemm_kernel<float, true><<<g2, nthr, 0, cs>>>(H, a->inter, nullptr, a->down, tiles, ntiles, O, a->hidden);
    else
        moe_gemm_kernel<float, false><<<g2, nthr, 0, cs>>>(H, a->inter, nullptr, a->down, tiles, ntiles, O, a->hidden);
    DG_LAUNCHED("moe_gemm_kernel (down)");

    return moe_combine(a, O, pos, cs);
}

}  // extern "C"
