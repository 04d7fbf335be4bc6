/*
 * gemm.cuh: the tile GEMM cores shared by linear.cu (dg_linear's large-m path) and moe.cu (the
 * grouped expert GEMMs).  C[r, n] = sum_k A[map(r), k] * W[n, k]    (y = x . W^T)
 *
 * A tile is BM=64 rows of A (tokens) by BN=64 rows of W (outputs), stepping BK=32 along k.
 * A rows go through an optional index map (gather: MoE tokens sorted by expert); the output goes
 * through an epilogue functor epi(r, n, value) that does the store (and accumulate / scatter).
 * W is dequantised while it is staged into shared memory (fp8: e4m3 * block scale), with its
 * dtype read at run time (MoE weight descriptors live in device memory).
 *
 *   gemm_tile_mma   128 threads, 4 warps as 2x2, each 32x32 via mma.sync.m16n8k16 bf16 -> f32
 *                   (sm_80+). A and W are rounded to bf16 in shared memory. For BF16 activations.
 *   gemm_tile_simt  256 threads, 4x4 outputs each, f32 FMA. Exact f32 (F32 activations).
 *
 * These generic tiles stage scalars (coalesced), not double-buffered. The fast tiles further down
 * (gemm_tile_fast: bf16 A x bf16 W; gemm_tile_fast_fp8: bf16 A x e4m3 W, block scales applied to
 * f32 partial sums per K-block) use a 3-stage cp.async pipeline, BN=128; wgmma for sm_90a is next.
 */
#pragma once
#include "common.cuh"

namespace dg {

constexpr int GEMM_BM = 64, GEMM_BN = 64, GEMM_BK = 32;
constexpr int GEMM_MMA_THREADS = 128, GEMM_SIMT_THREADS = 256;

template <typename AT>
__device__ __forceinline__ float ld_a(const AT *A, int64_t i) {
    return to_f32(A[i]);
}

/* Row of A for logical row r. */
__device__ __forceinline__ int64_t a_row(const int32_t *amap, int64_t r) { return amap ? amap[r] : r; }

__device__ __forceinline__ float w_elem_checked(const dg_weight &W, int64_t n, int64_t k) {
    return (n < W.rows && k < W.cols) ? w_elem(W, n, k) : 0.f;
}

template <typename AT, typename Epi>
__device__ __forceinline__ void gemm_tile_mma(const AT *__restrict__ A, int64_t lda,
                                              const int32_t *__restrict__ amap, int64_t m0,
                                              int64_t m_end, const dg_weight &W, int64_t n0, Epi epi) {
    constexpr int BM = GEMM_BM, BN = GEMM_BN, BK = GEMM_BK, PAD = 8;
    __shared__ __align__(16) __nv_bfloat16 As[BM][BK + PAD];
    __shared__ __align__(16) __nv_bfloat16 Bs[BN][BK + PAD];
    __shared__ int64_t arow[BM];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1;
    const int g = lane >> 2, t4 = lane & 3;
    const int64_t K = W.cols;

    for (int r = tid; r < BM; r += GEMM_MMA_THREADS)
        arow[r] = (m0 + r < m_end) ? a_row(amap, m0 + r) : -1;
    __syncthreads();

    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[i][j][c] = 0.f;

    for (int64_t k0 = 0; k0 < K; k0 += BK) {
#pragma unroll 4
        for (int i = 0; i < (BM * BK) / GEMM_MMA_THREADS; i++) {
            int idx = tid + i * GEMM_MMA_THREADS;
            int r = idx / BK, c = idx % BK;
            int64_t k = k0 + c;
            int64_t ar = arow[r];
            float v = (ar >= 0 && k < K) ? ld_a(A, ar * lda + k) : 0.f;
            As[r][c] = __float2bfloat16_rn(v);
            Bs[r][c] = __float2bfloat16_rn(w_elem_checked(W, n0 + r, k));
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t af[2][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                int row = wm * 32 + mi * 16 + g;
                af[mi][0] = *(const uint32_t *)&As[row][kk + t4 * 2];
                af[mi][1] = *(const uint32_t *)&As[row + 8][kk + t4 * 2];
                af[mi][2] = *(const uint32_t *)&As[row][kk + t4 * 2 + 8];
                af[mi][3] = *(const uint32_t *)&As[row + 8][kk + t4 * 2 + 8];
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                int col = wn * 32 + ni * 8 + g;
                bf[ni][0] = *(const uint32_t *)&Bs[col][kk + t4 * 2];
                bf[ni][1] = *(const uint32_t *)&Bs[col][kk + t4 * 2 + 8];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) {
                    float *d = acc[mi][ni];
                    asm volatile(
                        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                        : "r"(af[mi][0]), "r"(af[mi][1]), "r"(af[mi][2]), "r"(af[mi][3]),
                          "r"(bf[ni][0]), "r"(bf[ni][1]));
                }
        }
        __syncthreads();
    }

#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int64_t r = m0 + wm * 32 + mi * 16 + g + (c >= 2 ? 8 : 0);
                int64_t n = n0 + wn * 32 + ni * 8 + t4 * 2 + (c & 1);
                if (r < m_end && n < W.rows) epi(r, n, acc[mi][ni][c]);
            }
}

template <typename AT, typename Epi>
__device__ __forceinline__ void gemm_tile_simt(const AT *__restrict__ A, int64_t lda,
                                               const int32_t *__restrict__ amap, int64_t m0,
                                               int64_t m_end, const dg_weight &W, int64_t n0, Epi epi) {
    constexpr int BM = GEMM_BM, BN = GEMM_BN, BK = GEMM_BK;
    __shared__ float As[BK][BM + 4];
    __shared__ float Bs[BK][BN + 4];
    __shared__ int64_t arow[BM];
    const int tid = threadIdx.x;
    const int tx = tid & 15, ty = tid >> 4;
    const int64_t K = W.cols;

    for (int r = tid; r < BM; r += GEMM_SIMT_THREADS)
        arow[r] = (m0 + r < m_end) ? a_row(amap, m0 + r) : -1;
    __syncthreads();

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

    for (int64_t k0 = 0; k0 < K; k0 += BK) {
#pragma unroll 4
        for (int i = 0; i < (BM * BK) / GEMM_SIMT_THREADS; i++) {
            int idx = tid + i * GEMM_SIMT_THREADS;
            int r = idx / BK, c = idx % BK;
            int64_t k = k0 + c;
            int64_t ar = arow[r];
            As[c][r] = (ar >= 0 && k < K) ? ld_a(A, ar * lda + k) : 0.f;
            Bs[c][r] = w_elem_checked(W, n0 + r, k);
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < BK; k++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[k][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[k][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t r = m0 + ty + 16 * i;
            int64_t n = n0 + tx + 16 * j;
            if (r < m_end && n < W.rows) epi(r, n, acc[i][j]);
        }
}

/* W8A8 activation quantisation, emulated: for each row r (through amap) and each block of bc
 * channels, s = amax/448, q = e4m3(x / s), dst[r, :] = q * s (f32). amax == 0 gives zeros.
 * bc <= 0: read it from *wdesc (a weight descriptor in device memory). One block per row. */
template <typename AT>
__global__ void act_quant_kernel(const AT *__restrict__ src, int64_t ld_src, const int32_t *amap,
                                 const int32_t *count, float *__restrict__ dst, int64_t ld_dst,
                                 int64_t cols, int32_t bc, const dg_weight *wdesc) {
    int64_t r = blockIdx.x;
    if (count && r >= *count) return;
    if (bc <= 0) bc = wdesc->block_cols;
    int64_t sr = amap ? amap[r] : r;
    const AT *x = src + sr * ld_src;
    float *y = dst + r * ld_dst;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int64_t nb = (cols + bc - 1) / bc;
    for (int64_t b = warp; b < nb; b += nw) {
        int64_t j0 = b * bc, j1 = min(cols, j0 + (int64_t)bc);
        float amax = 0.f;
        for (int64_t j = j0 + lane; j < j1; j += 32) amax = fmaxf(amax, fabsf(to_f32(x[j])));
        amax = warp_max(amax);
        float s = amax / 448.f;
        for (int64_t j = j0 + lane; j < j1; j += 32) {
            float v = 0.f;
            if (amax > 0.f) v = e4m3_to_f32(f32_to_e4m3(to_f32(x[j]) / s)) * s;
            y[j] = v;
        }
    }
}

}  // namespace dg

/* ---------------------------------------------------------------------------------------------
 * The fast tile: bf16 A and bf16 W, both with 16-byte aligned rows and K % 8 == 0 (the common
 * prefill case). BM=64 x BN=128 x BK=32, 128 threads (4 warps as 2x2, each 32x64), a 3-stage
 * cp.async pipeline (16-byte copies straight into shared memory, zero-filled past m_end, N and
 * K), ldmatrix fragments from rows padded to 40 elements (80 bytes: conflict-free), mma.sync
 * m16n8k16 bf16 -> f32. Dynamic shared memory: GEMM_FAST_SMEM bytes.
 * ------------------------------------------------------------------------------------------- */
namespace dg {

constexpr int GF_BM = 64, GF_BN = 128, GF_BK = 32, GF_STAGES = 3, GF_LDS = GF_BK + 8;
constexpr int GF_THREADS = 128;
constexpr int GEMM_FAST_SMEM = GF_STAGES * (GF_BM + GF_BN) * GF_LDS * 2 + GF_BM * 8;

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool pred) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *smem) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

/* The A side of both fast tiles. arow[r] = the source row of tile row r (-1: past m_end, zeros). */
__device__ __forceinline__ void fast_a_rows(int64_t *arow, const int32_t *amap, int64_t m0, int64_t m_end, int tid) {
    for (int r = tid; r < GF_BM; r += GF_THREADS) arow[r] = (m0 + r < m_end) ? a_row(amap, m0 + r) : -1;
    __syncthreads();
}

/* One stage of A: GF_BM rows x GF_BK bf16 from columns k0.., 4 chunks of 8 per row, into as with
 * a row stride of lds elements; rows with arow -1 and columns past K are zero-filled. */
__device__ __forceinline__ void fast_a_stage(__nv_bfloat16 *as, int lds, const __nv_bfloat16 *__restrict__ A,
                                             int64_t lda, const int64_t *arow, int64_t k0, int64_t K, int tid) {
#pragma unroll
    for (int i = 0; i < (GF_BM * GF_BK / 8) / GF_THREADS; i++) {
        const int idx = tid + i * GF_THREADS;
        const int r = idx >> 2, c = (idx & 3) * 8;
        const int64_t ar = arow[r];
        const bool ok = ar >= 0 && k0 + c < K;
        cp_async16(as + r * lds + c, ok ? A + ar * lda + k0 + c : A, ok);
    }
}

/* Whether a (bf16) operand qualifies for the fast tile: 16-byte aligned rows. */
__host__ __device__ __forceinline__ bool gemm_fast_ok(const void *p, int64_t ld, int64_t K) {
    return ((uintptr_t)p % 16 == 0) && (ld % 8 == 0) && (K % 8 == 0);
}

template <typename Epi>
__device__ __forceinline__ void gemm_tile_fast(const __nv_bfloat16 *__restrict__ A, int64_t lda,
                                               const int32_t *__restrict__ amap, int64_t m0, int64_t m_end,
                                               const __nv_bfloat16 *__restrict__ W, int64_t ldw, int64_t N,
                                               int64_t K, int64_t n0, Epi epi, char *smem) {
    typedef __nv_bfloat16 bf;
    bf *As = (bf *)smem;                                  /* [STAGES][BM][LDS] */
    bf *Bs = As + GF_STAGES * GF_BM * GF_LDS;             /* [STAGES][BN][LDS] */
    int64_t *arow = (int64_t *)(Bs + GF_STAGES * GF_BN * GF_LDS); /* [BM] */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1;
    const int g = lane >> 2, t4 = lane & 3;

    fast_a_rows(arow, amap, m0, m_end, tid);

    const int KT = (int)((K + GF_BK - 1) / GF_BK);
    auto load_stage = [&](int stage, int kt) {
        const int64_t k0 = (int64_t)kt * GF_BK;
        bf *bs = Bs + stage * GF_BN * GF_LDS;
        fast_a_stage(As + stage * GF_BM * GF_LDS, GF_LDS, A, lda, arow, k0, K, tid);
        /* W: 128 rows x 4 chunks = 512 chunks, 4 per thread */
#pragma unroll
        for (int i = 0; i < (GF_BN * GF_BK / 8) / GF_THREADS; i++) {
            int idx = tid + i * GF_THREADS;
            int r = idx >> 2, c = (idx & 3) * 8;
            bool ok = n0 + r < N && k0 + c < K;
            const bf *src = ok ? W + (n0 + r) * ldw + k0 + c : W;
            cp_async16(bs + r * GF_LDS + c, src, ok);
        }
    };

    float acc[2][8][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[i][j][c] = 0.f;

#pragma unroll
    for (int s = 0; s < GF_STAGES - 1; s++) {
        if (s < KT) load_stage(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < KT; kt++) {
        cp_async_wait<GF_STAGES - 2>();
        __syncthreads();
        {
            int nk = kt + GF_STAGES - 1;
            if (nk < KT) load_stage(nk % GF_STAGES, nk);
            cp_async_commit();
        }
        const bf *as = As + (kt % GF_STAGES) * GF_BM * GF_LDS;
        const bf *bs = Bs + (kt % GF_STAGES) * GF_BN * GF_LDS;
#pragma unroll
        for (int kk = 0; kk < GF_BK; kk += 16) {
            uint32_t af[2][4], bfr[8][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                int row = wm * 32 + mi * 16 + (lane & 15);
                int col = kk + (lane >> 4) * 8;
                ldmatrix_x4(af[mi], as + row * GF_LDS + col);
            }
#pragma unroll
            for (int nj = 0; nj < 4; nj++) {
                int nrow = wn * 64 + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
                int col = kk + ((lane >> 3) & 1) * 8;
                uint32_t r[4];
                ldmatrix_x4(r, bs + nrow * GF_LDS + col);
                bfr[2 * nj][0] = r[0];
                bfr[2 * nj][1] = r[1];
                bfr[2 * nj + 1][0] = r[2];
                bfr[2 * nj + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 8; ni++) {
                    float *d = acc[mi][ni];
                    asm volatile(
                        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                        : "r"(af[mi][0]), "r"(af[mi][1]), "r"(af[mi][2]), "r"(af[mi][3]), "r"(bfr[ni][0]),
                          "r"(bfr[ni][1]));
                }
        }
    }
    cp_async_wait<0>();
    __syncthreads(); /* the smem may be reused by the caller */

#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int64_t r = m0 + wm * 32 + mi * 16 + g + (c >= 2 ? 8 : 0);
                int64_t n = n0 + wn * 64 + ni * 8 + t4 * 2 + (c & 1);
                if (r < m_end && n < N) epi(r, n, acc[mi][ni][c]);
            }
}

}  // namespace dg

/* ---------------------------------------------------------------------------------------------
 * The fast fp8 tile: bf16 A (16-byte aligned rows, as for the fast tile) and e4m3 W with f32
 * block scales, W[n, k] = e4m3(q[n, k]) * scale[n / br][k / bc]. Requires W rows 16-byte aligned
 * (data % 16 == 0, ldw % 16 == 0 bytes), K % 16 == 0 and bc % 32 == 0 (gemm_fast_fp8_ok); the
 * callers keep the generic tiles otherwise.
 *
 * BM=64 x BN=128 x BK=32, 128 threads: 4 warps side by side along n, each 64 rows x 32 outputs
 * (4 x 4 mma.sync m16n8k16 bf16 -> f32 per 16 k). 3-stage cp.async pipeline of 16-byte copies:
 * A as bf16 (64 rows x 64 B) and W as raw e4m3 bytes (128 rows x 32 B: 4 KB a stage), both
 * unpadded, zero-filled past m_end, N and K. Dynamic shared memory: GEMM_FAST_FP8_SMEM bytes.
 *
 * k order inside a BK step: the mma does not care which k a fragment slot stands for as long as A
 * and B agree, so thread (g = lane/4, t4 = lane%4) takes the 8 consecutive k = 8*t4 .. 8*t4+7:
 * one 16-byte smem load per A row (4 words: k pairs (0,1) (2,3) (4,5) (6,7)) and one 8-byte load
 * per W row (8 e4m3 bytes). mma step s (0, 1) uses k 8*t4+4s .. +3: a0/a1 = the pair (4s, 4s+1) of
 * rows g / g+8, a2/a3 = the pair (4s+2, 4s+3), b0 = W bytes (4s, 4s+1), b1 = bytes (4s+2, 4s+3).
 * Both load patterns cover 128 contiguous bytes per access phase (8 lanes for 16-byte loads, 16
 * for 8-byte ones): no bank conflicts without padding.
 *
 * e4m3 -> bf16 is exact (every e4m3 value is a bf16 value, subnormals included): see
 * e4m3x4_to_bf16x2. The block scale is never folded into the bf16 operand: each K-block of bc
 * columns is accumulated into its own f32 registers (tmp), and at the block's end
 * acc += scale[n / br][kb] * tmp (one f32 fma per element, n = the element's W row), tmp = 0 -
 * like the GEMV, which dequantises to f32. When the tile's 128 rows lie in one row block (br a
 * multiple of 128, the usual case) the scale is one value per K-block, loaded a K-block ahead.
 * ------------------------------------------------------------------------------------------- */

/* The e4m3 -> bf16 conversion: 0 (default) a bit-exact integer sequence on every architecture;
 * 1: cvt.rn.f16x2.e4m3x2 on sm_89+ (f16 -> f32 -> bf16 after it; all exact), integer elsewhere. */
#ifndef DG_FP8_CVT_HW
#define DG_FP8_CVT_HW 0
#endif

namespace dg {

constexpr int GF8_STAGES = 3;
constexpr int GF8_A_STAGE = GF_BM * GF_BK * 2; /* bytes: 64 rows x 32 bf16 */
constexpr int GF8_W_STAGE = GF_BN * GF_BK;     /* bytes: 128 rows x 32 e4m3 */
constexpr int GEMM_FAST_FP8_SMEM = GF8_STAGES * (GF8_A_STAGE + GF8_W_STAGE) + GF_BM * 8;
/* moe.cu's moe_gemm_fast_kernel runs either tile on a GEMM_FAST_SMEM allocation. */
static_assert(GEMM_FAST_FP8_SMEM <= GEMM_FAST_SMEM, "the fp8 tile must fit the bf16 tile's shared memory");

/* Whether an e4m3 weight qualifies for the fast fp8 tile (A: gemm_fast_ok as for the bf16 tile). */
__host__ __device__ __forceinline__ bool gemm_fast_fp8_ok(const void *data, int64_t ld, int64_t K, int32_t br,
                                                          int32_t bc) {
    return ((uintptr_t)data % 16 == 0) && (ld % 16 == 0) && (K % 16 == 0) && br > 0 && bc > 0 && bc % GF_BK == 0;
}

/* Four e4m3 codes (bytes 0..3 of q, byte 0 first in k) -> two bf16x2, exactly:
 * lo = (byte 0, byte 1), hi = (byte 2, byte 3), the first of each pair in the low half.
 * Integer path: a code s eeee mmm placed as bf16 bits s 0000 eeee mmm 0000 is the e4m3 value
 * times 2^-120 (e4m3 bias 7, bf16 bias 127; code exponent 0 lands on bf16 subnormals with the
 * same factor), and one bf16x2 fma by 2^120 (+ -0, so signed zeros stay) makes it exact: the
 * result is a normal bf16, or zero. The NaN codes 0x7f/0xff come out as +-480, not NaN. */
__device__ __forceinline__ void e4m3x4_to_bf16x2(uint32_t q, uint32_t &lo, uint32_t &hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890 && DG_FP8_CVT_HW
    uint32_t h0, h1;
    asm("{\n\t.reg .b16 l, h;\n\tmov.b32 {l, h}, %2;\n\t"
        "cvt.rn.f16x2.e4m3x2 %0, l;\n\tcvt.rn.f16x2.e4m3x2 %1, h;\n\t}\n"
        : "=r"(h0), "=r"(h1)
        : "r"(q));
    __half2 p0 = *reinterpret_cast<__half2 *>(&h0), p1 = *reinterpret_cast<__half2 *>(&h1);
    float2 f0 = __half22float2(p0), f1 = __half22float2(p1);
    __nv_bfloat162 b0 = __floats2bfloat162_rn(f0.x, f0.y), b1 = __floats2bfloat162_rn(f1.x, f1.y);
    lo = *reinterpret_cast<uint32_t *>(&b0);
    hi = *reinterpret_cast<uint32_t *>(&b1);
#else
    const uint32_t r0 = __byte_perm(q, 0u, 0x1404); /* byte 0 -> bits 8..15, byte 1 -> bits 24..31 */
    const uint32_t r1 = __byte_perm(q, 0u, 0x3424); /* bytes 2, 3 likewise */
    const uint32_t x0 = (r0 & 0x80008000u) | ((r0 >> 4) & 0x07f007f0u);
    const uint32_t x1 = (r1 & 0x80008000u) | ((r1 >> 4) & 0x07f007f0u);
    const uint32_t two120 = 0x7b807b80u, nzero = 0x80008000u;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(lo) : "r"(x0), "r"(two120), "r"(nzero));
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(hi) : "r"(x1), "r"(two120), "r"(nzero));
#endif
}

__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* C[r, n] = sum_k A[map(r), k] * W[n, k] for r in [m0, min(m0 + 64, m_end)), n in [n0, n0 + BNT)
 * (n < N); epi(r, n, value) stores. W: e4m3 bytes, row stride ldw bytes; scale: [ceil(N / br)]
 * rows of lds floats (lds >= ceil(K / bc)). smem: GEMM_FAST_FP8_SMEM bytes, 16-byte aligned.
 * WM warps along m, 4 / WM along n; each warp (64 / WM) rows x (BNT * WM / 4) outputs, i.e. MI x NI
 * mma tiles, with MI x NI x 4 f32 accumulators and as many per-K-block partial sums per thread. */
template <int WM, int BNT, typename Epi>
__device__ __forceinline__ void gemm_tile_fast_fp8_impl(const __nv_bfloat16 *__restrict__ A, int64_t lda,
                                                        const int32_t *__restrict__ amap, int64_t m0, int64_t m_end,
                                                        const uint8_t *__restrict__ W, int64_t ldw, int64_t N,
                                                        int64_t K, const float *__restrict__ scale, int32_t br,
                                                        int32_t bc, int64_t lds, int64_t n0, Epi epi, char *smem) {
    typedef __nv_bfloat16 bf;
    constexpr int WN = 4 / WM;
    constexpr int WROWS = GF_BM / WM, WCOLS = BNT / WN; /* one warp's outputs */
    constexpr int MI = WROWS / 16, NI = WCOLS / 8;
    static_assert(WM * WN == GF_THREADS / 32 && MI * 16 == WROWS && NI * 8 == WCOLS && BNT <= GF_BN, "tile shape");
    constexpr int AROW = GF_BK * 2; /* bytes per A row in shared memory */
    char *As = smem;                                                  /* [STAGES][BM][BK] bf16 */
    uint8_t *Ws = (uint8_t *)(smem + GF8_STAGES * GF8_A_STAGE);       /* [STAGES][BNT][BK] e4m3 */
    int64_t *arow = (int64_t *)(smem + GF8_STAGES * (GF8_A_STAGE + GF8_W_STAGE)); /* [BM] */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WN, wn = warp % WN;
    const int g = lane >> 2, t4 = lane & 3;

    fast_a_rows(arow, amap, m0, m_end, tid);

    const int KT = (int)((K + GF_BK - 1) / GF_BK);
    const int TPB = bc / GF_BK; /* k tiles per scale block */
    auto load_stage = [&](int stage, int kt) {
        const int64_t k0 = (int64_t)kt * GF_BK;
        uint8_t *ws = Ws + stage * GF8_W_STAGE;
        fast_a_stage((bf *)(As + stage * GF8_A_STAGE), GF_BK, A, lda, arow, k0, K, tid);
        /* W: BNT rows x 2 chunks of 16 e4m3 (K % 16 == 0: whole chunks), BNT / 64 per thread */
#pragma unroll
        for (int i = 0; i < (BNT * GF_BK / 16) / GF_THREADS; i++) {
            int idx = tid + i * GF_THREADS;
            int r = idx >> 1, c = (idx & 1) * 16;
            bool ok = n0 + r < N && k0 + c < K;
            const uint8_t *src = ok ? W + (n0 + r) * ldw + k0 + c : W;
            cp_async16(ws + r * GF_BK + c, src, ok);
        }
    };

    /* The scale of the tile's rows: one row of scales when all BNT rows share a row block. */
    const bool s_uniform = (n0 / br) == ((n0 + BNT - 1) / br);
    const float *srow = scale + (n0 / br) * lds;
    float s_next = (s_uniform && KT > 0) ? srow[0] : 0.f; /* the current K-block's scale, loaded ahead */

    float acc[MI][NI][4], tmp[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                acc[i][j][c] = 0.f;
                tmp[i][j][c] = 0.f;
            }

#pragma unroll
    for (int s = 0; s < GF8_STAGES - 1; s++) {
        if (s < KT) load_stage(s, s);
        cp_async_commit();
    }
    int kin = 0;    /* k tiles done in the current K-block */
    int64_t kb = 0; /* the current K-block */
    for (int kt = 0; kt < KT; kt++) {
        cp_async_wait<GF8_STAGES - 2>();
        __syncthreads();
        {
            int nk = kt + GF8_STAGES - 1;
            if (nk < KT) load_stage(nk % GF8_STAGES, nk);
            cp_async_commit();
        }
        const char *as = As + (kt % GF8_STAGES) * GF8_A_STAGE;
        const uint8_t *ws = Ws + (kt % GF8_STAGES) * GF8_W_STAGE;
        uint32_t bfr[NI][4]; /* [ni][step 0: b0 b1, step 1: b0 b1] */
#pragma unroll
        for (int ni = 0; ni < NI; ni++) {
            const uint2 q = *(const uint2 *)(ws + (wn * WCOLS + ni * 8 + g) * GF_BK + t4 * 8);
            e4m3x4_to_bf16x2(q.x, bfr[ni][0], bfr[ni][1]);
            e4m3x4_to_bf16x2(q.y, bfr[ni][2], bfr[ni][3]);
        }
#pragma unroll
        for (int mi = 0; mi < MI; mi++) {
            const int row = wm * WROWS + mi * 16 + g;
            const uint4 lo = *(const uint4 *)(as + row * AROW + t4 * 16);       /* row g */
            const uint4 hi = *(const uint4 *)(as + (row + 8) * AROW + t4 * 16); /* row g + 8 */
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
                mma_bf16_16816(tmp[mi][ni], lo.x, hi.x, lo.y, hi.y, bfr[ni][0], bfr[ni][1]);
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
                mma_bf16_16816(tmp[mi][ni], lo.z, hi.z, lo.w, hi.w, bfr[ni][2], bfr[ni][3]);
        }
        if (++kin == TPB || kt == KT - 1) {
            /* end of a K-block: acc += scale * tmp, per element, in f32 */
            float sc[NI][2];
            if (s_uniform) {
#pragma unroll
                for (int ni = 0; ni < NI; ni++) sc[ni][0] = sc[ni][1] = s_next;
                if (kt + 1 < KT) s_next = srow[kb + 1];
            } else {
#pragma unroll
                for (int ni = 0; ni < NI; ni++)
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        int64_t n = n0 + wn * WCOLS + ni * 8 + t4 * 2 + j;
                        sc[ni][j] = n < N ? scale[(n / br) * lds + kb] : 0.f;
                    }
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int ni = 0; ni < NI; ni++)
#pragma unroll
                    for (int c = 0; c < 4; c++) {
                        acc[mi][ni][c] = fmaf(sc[ni][c & 1], tmp[mi][ni][c], acc[mi][ni][c]);
                        tmp[mi][ni][c] = 0.f;
                    }
            kin = 0;
            kb++;
        }
    }
    cp_async_wait<0>();
    __syncthreads(); /* the smem may be reused by the caller */

#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int ni = 0; ni < NI; ni++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int64_t r = m0 + wm * WROWS + mi * 16 + g + (c >= 2 ? 8 : 0);
                int64_t n = n0 + wn * WCOLS + ni * 8 + t4 * 2 + (c & 1);
                if (r < m_end && n < N) epi(r, n, acc[mi][ni][c]);
            }
}

/* The fast fp8 tile, 64 x 128: 4 warps side by side along n, each 64 x 32 (4 x 4 mma tiles, 128
 * f32 registers of accumulators and partial sums per thread: ~190 registers in all). */
template <typename Epi>
__device__ __forceinline__ void gemm_tile_fast_fp8(const __nv_bfloat16 *__restrict__ A, int64_t lda,
                                                   const int32_t *__restrict__ amap, int64_t m0, int64_t m_end,
                                                   const uint8_t *__restrict__ W, int64_t ldw, int64_t N, int64_t K,
                                                   const float *__restrict__ scale, int32_t br, int32_t bc,
                                                   int64_t lds, int64_t n0, Epi epi, char *smem) {
    gemm_tile_fast_fp8_impl<1, GF_BN>(A, lda, amap, m0, m_end, W, ldw, N, K, scale, br, bc, lds, n0, epi, smem);
}

/* The same, 64 x 64 (2 x 2 warps of 32 x 32: half the registers of accumulators, each W tile
 * converted by two warps): for kernels that must stay near the bf16 tile's register count (moe.cu's
 * grouped GEMM holds both; it calls this twice per 128 outputs). */
template <typename Epi>
__device__ __forceinline__ void gemm_tile_fast_fp8_n64(const __nv_bfloat16 *__restrict__ A, int64_t lda,
                                                       const int32_t *__restrict__ amap, int64_t m0, int64_t m_end,
                                                       const uint8_t *__restrict__ W, int64_t ldw, int64_t N,
                                                       int64_t K, const float *__restrict__ scale, int32_t br,
                                                       int32_t bc, int64_t lds, int64_t n0, Epi epi, char *smem) {
    gemm_tile_fast_fp8_impl<2, 64>(A, lda, amap, m0, m_end, W, ldw, N, K, scale, br, bc, lds, n0, epi, smem);
}

}  // namespace dg
