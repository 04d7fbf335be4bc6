/*
 * mla_decode_mma.cu: pass 1 of dg_mla_decode on tensor cores, for bf16 queries over a bf16 latent
 * cache with DeepSeek's widths (latent 512, rope 64). mla.cu dispatches here when those hold and
 * runs the same combine (pass 2) after it; anything else takes mla.cu's f32 SIMT kernel.
 *
 * Why: the SIMT kernel scores one key per lane with a 576-long dependent FMA chain and stages
 * the cache as f32; at peer-7b's batch 1 (16 heads) it took ~20 us a layer for 0.7 MB of cache,
 * and at DeepSeek-V3's 128 heads its f32 arithmetic (1088 FLOP per head per key) is far above
 * the bytes. Here the 16 heads of a group are the M=16 of mma.sync m16n8k16:
 *   S[16 heads, 32 keys] = Q[16, 576] . K[32, 576]^T      (K = the cache rows: c | k_pe)
 *   O[16, 512]          += P[16, 32] . C[32, 512]          (P = exp(S - m), rounded to bf16)
 * with f32 accumulators and the online softmax in f32 (m, l per head), as FlashAttention does.
 *
 * Block: HG head groups of 16 heads x 4 warps. Warp (hg, wq) scores keys 8wq..8wq+7 of the
 * tile for its group, the 4 warps meet through a [heads][32] f32 score tile in shared memory,
 * each then recomputes the same softmax statistics for its group and accumulates the output
 * columns 128wq..128wq+127. A block stages its queries once and walks its key range in tiles of
 * 32 cache rows (cp.async, two stages, zero-filled past the range so that P . C sees zeros, not
 * stale rows). HG = 4 (64 heads) for DeepSeek-V3 so that each cache tile is read by two blocks,
 * not eight; shared memory 95.7 KB (HG 1), 116.7 KB (HG 2), 158.7 KB (HG 4), the largest the
 * device allows is taken. Splits: enough blocks for ~16 per SM, at most one per 32 keys of
 * max_seq_len (and <= 128), so a captured graph stays valid for every length up to it; a split
 * with no keys returns at once and the combine skips it (it counts the splits from seq_lens).
 * Output: the workspace layout of mla.cu's pass 1, [rows, heads, splits, latent + 2] f32
 * (o unnormalised, m, l).
 */
#include "mla_decode_mma.cuh"

#include "gemm.cuh"
#include <stdlib.h>
#include <string.h>

using namespace dg;

namespace {

typedef __nv_bfloat16 bf;
constexpr int LAT = 512, ROPE = 64, D = LAT + ROPE;
constexpr int TK = 32;            /* keys per tile */
constexpr int LDS = D + 8;        /* bf16 row stride in shared memory: 1168 bytes, ldmatrix conflict-free */
constexpr int SLD = TK + 4;       /* f32 score row stride */
constexpr int CH = D / 8;         /* 16-byte chunks per cache row: 72 */

constexpr size_t smem_bytes(int hg) {
    return (size_t)16 * hg * LDS * 2 + (size_t)2 * TK * LDS * 2 + (size_t)16 * hg * SLD * 4;
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void *smem) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

template <int HG>
__global__ void __launch_bounds__(128 * HG) mla_decode_mma_kernel(dg_mla_decode_args a, int n_splits, int64_t chunk,
                                                                  int qvec) {
    extern __shared__ __align__(16) char smem[];
    constexpr int HPB = 16 * HG;
    bf *Qs = (bf *)smem;                       /* [HPB][LDS] */
    bf *Ks = Qs + HPB * LDS;                   /* [2][TK][LDS] */
    float *Ss = (float *)(Ks + 2 * TK * LDS);  /* [HPB][SLD] */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int hg = warp >> 2, wq = warp & 3, g = lane >> 2, t = lane & 3;
    const int split = blockIdx.x;
    const int64_t r = blockIdx.z, h0 = (int64_t)blockIdx.y * HPB;
    const int64_t b = r / a.q_per_seq, qi = r % a.q_per_seq;
    pdl_enter();
    const int64_t L = (int64_t)a.seq_lens[b] - (a.q_per_seq - 1 - qi);
    const int64_t k0 = (int64_t)split * chunk;
    const int64_t k1 = min(L, k0 + chunk);
    if (k0 >= k1) return;

    const bf *cache = (const bf *)a.cache;
    const int32_t *bt = a.block_table + b * a.max_blocks;
    const bf *ql = (const bf *)a.q_lat + r * a.ld_q_tok;
    const bf *qp = (const bf *)a.q_pe + r * a.ld_qpe_tok;

    if (qvec) {
        for (int idx = tid; idx < HPB * CH; idx += blockDim.x) {
            const int hh = idx / CH, c = idx - hh * CH;
            const int64_t h = h0 + hh;
            const bool ok = h < a.n_heads;
            const bf *src = !ok ? cache : c < LAT / 8 ? ql + h * a.ld_q_head + c * 8 : qp + h * a.ld_qpe_head + (c - LAT / 8) * 8;
            cp_async16(Qs + hh * LDS + c * 8, src, ok);
        }
    } else {
        for (int idx = tid; idx < HPB * D; idx += blockDim.x) {
            const int hh = idx / D, c = idx - hh * D;
            const int64_t h = h0 + hh;
            bf v = __float2bfloat16(0.f);
            if (h < a.n_heads) v = c < LAT ? ql[h * a.ld_q_head + c] : qp[h * a.ld_qpe_head + (c - LAT)];
            Qs[hh * LDS + c] = v;
        }
    }
    auto load_tile = [&](int stage, int64_t kt) {
        bf *ks = Ks + stage * TK * LDS;
        for (int idx = tid; idx < TK * CH; idx += blockDim.x) {
            const int rr = idx / CH, c = idx - rr * CH;
            const int64_t p = kt + rr;
            const bool ok = p < k1;
            const bf *src = cache;
            if (ok) src = cache + ((int64_t)bt[p / a.block_size] * a.block_size + p % a.block_size) * D + c * 8;
            cp_async16(ks + rr * LDS + c * 8, src, ok);
        }
    };
    load_tile(0, k0);
    cp_async_commit();

    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f};
    float o[16][4];
#pragma unroll
    for (int n = 0; n < 16; n++)
#pragma unroll
        for (int c = 0; c < 4; c++) o[n][c] = 0.f;

    const bf *qs = Qs + hg * 16 * LDS;
    float *ss = Ss + hg * 16 * SLD;
    const int ntiles = (int)((k1 - k0 + TK - 1) / TK);
    for (int it = 0; it < ntiles; it++) {
        cp_async_wait<0>();
        __syncthreads();
        if (it + 1 < ntiles) load_tile((it + 1) & 1, k0 + (int64_t)(it + 1) * TK);
        cp_async_commit();
        const bf *ks = Ks + (it & 1) * TK * LDS;
        const int64_t kt = k0 + (int64_t)it * TK;

        /* scores of keys 8wq..8wq+7: two accumulators halve the dependent mma chain */
        float s0[4] = {0.f, 0.f, 0.f, 0.f}, s1[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll 6
        for (int d0 = 0; d0 < D; d0 += 32) {
            uint32_t kb[4], qa[4], qb[4];
            ldmatrix_x4(kb, ks + (8 * wq + (lane & 7)) * LDS + d0 + (lane >> 3) * 8);
            ldmatrix_x4(qa, qs + (lane & 15) * LDS + d0 + (lane >> 4) * 8);
            ldmatrix_x4(qb, qs + (lane & 15) * LDS + d0 + 16 + (lane >> 4) * 8);
            mma_bf16_16816(s0, qa[0], qa[1], qa[2], qa[3], kb[0], kb[1]);
            mma_bf16_16816(s1, qb[0], qb[1], qb[2], qb[3], kb[2], kb[3]);
        }
        {
            const int col = 8 * wq + 2 * t;
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const bool ok = kt + col + e < k1;
                ss[g * SLD + col + e] = ok ? (s0[e] + s1[e]) * a.scale : -INFINITY;
                ss[(g + 8) * SLD + col + e] = ok ? (s0[2 + e] + s1[2 + e]) * a.scale : -INFINITY;
            }
        }
        __syncthreads();

        /* rows g and g+8 of the group: lane (g, t) holds columns 16j + 8h + 2t + {0,1}, the
         * A-fragment positions of P for k-steps j = 0, 1 */
        float p[2][8];
        float corr[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const float *row = ss + (g + 8 * rr) * SLD;
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const float2 v = *(const float2 *)(row + 16 * j + 8 * hh + 2 * t);
                    p[rr][4 * j + 2 * hh] = v.x;
                    p[rr][4 * j + 2 * hh + 1] = v.y;
                    mx = fmaxf(mx, fmaxf(v.x, v.y));
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m_r[rr], mx);
            corr[rr] = m_r[rr] == -INFINITY ? 0.f : expf(m_r[rr] - m_new);
            float sum = 0.f;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                /* the weight the mma sees (bf16) is the one l counts: O / l stays a convex sum */
                const float pe = p[rr][e] == -INFINITY ? 0.f : __bfloat162float(__float2bfloat16(expf(p[rr][e] - m_new)));
                p[rr][e] = pe;
                sum += pe;
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            l_r[rr] = l_r[rr] * corr[rr] + sum;
            m_r[rr] = m_new;
        }
#pragma unroll
        for (int n = 0; n < 16; n++) {
            o[n][0] *= corr[0];
            o[n][1] *= corr[0];
            o[n][2] *= corr[1];
            o[n][3] *= corr[1];
        }
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const uint32_t a0 = pack_bf16(p[0][4 * j], p[0][4 * j + 1]);
            const uint32_t a1 = pack_bf16(p[1][4 * j], p[1][4 * j + 1]);
            const uint32_t a2 = pack_bf16(p[0][4 * j + 2], p[0][4 * j + 3]);
            const uint32_t a3 = pack_bf16(p[1][4 * j + 2], p[1][4 * j + 3]);
            const bf *vrow = ks + (16 * j + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + 128 * wq + (lane >> 4) * 8;
#pragma unroll
            for (int np = 0; np < 8; np++) {
                uint32_t vb[4];
                ldsm_x4_trans(vb, vrow + 16 * np);
                mma_bf16_16816(o[2 * np], a0, a1, a2, a3, vb[0], vb[1]);
                mma_bf16_16816(o[2 * np + 1], a0, a1, a2, a3, vb[2], vb[3]);
            }
        }
    }
    cp_async_wait<0>();

#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int64_t h = h0 + hg * 16 + g + 8 * rr;
        if (h >= a.n_heads) continue;
        float *ws = (float *)a.workspace + ((r * a.n_heads + h) * n_splits + split) * (int64_t)(LAT + 2);
#pragma unroll
        for (int n = 0; n < 16; n++)
            *(float2 *)(ws + 128 * wq + 8 * n + 2 * t) = make_float2(o[n][2 * rr], o[n][2 * rr + 1]);
        if (wq == 0 && t == 0) {
            ws[LAT] = m_r[rr];
            ws[LAT + 1] = l_r[rr];
        }
    }
}

/* Head groups per block: the most (1, 2, 4) that the heads fill and the device's shared memory
 * allows (sm_89: 99 KB, HG 1 only). */
int pick_hg(int64_t heads) {
    static const int optin = device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    int hg = heads > 32 ? 4 : heads > 16 ? 2 : 1;
    while (hg > 1 && smem_bytes(hg) > (size_t)optin) hg /= 2;
    return hg;
}

int sm_count() {
    static const int n = device_attr(cudaDevAttrMultiProcessorCount, 132);
    return n;
}

template <int HG>
dg_status launch(const dg_mla_decode_args *a, int splits, int64_t chunk, cudaStream_t st) {
    const size_t smem = smem_bytes(HG);
    if (dg_status err = opt_in_smem<mla_decode_mma_kernel<HG>>(smem, "mla_decode_mma_kernel")) return err;
    const int64_t rows = a->batch * a->q_per_seq;
    const bool qvec = (uintptr_t)a->q_lat % 16 == 0 && (uintptr_t)a->q_pe % 16 == 0 && a->ld_q_tok % 8 == 0 &&
                      a->ld_q_head % 8 == 0 && a->ld_qpe_tok % 8 == 0 && a->ld_qpe_head % 8 == 0;
    dim3 grid((unsigned)splits, (unsigned)ceil_div(a->n_heads, 16 * HG), (unsigned)rows);
    launch_pdl(mla_decode_mma_kernel<HG>, grid, 128 * HG, smem, st, *a, splits, chunk, qvec ? 1 : 0);
    DG_LAUNCHED("mla_decode_mma_kernel");
    return DG_OK;
}

}  // namespace

namespace dg {

bool mla_decode_mma_ok(const dg_mla_decode_args *a) {
    static const bool off = [] {
        const char *e = getenv("DEEPGO_MLA_DECODE");
        return e && strcmp(e, "simt") == 0;
    }();
    if (off) return false;
    static const int major = device_attr(cudaDevAttrComputeCapabilityMajor, 0);
    static const int optin = device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    if (major < 8 || (size_t)optin < smem_bytes(1)) return false;
    return a->dtype == DG_BF16 && a->cache_dtype == DG_BF16 && a->latent == LAT && a->rope == ROPE &&
           (uintptr_t)a->cache % 16 == 0 && a->workspace && (uintptr_t)a->workspace % 8 == 0;
}

int mla_decode_mma_splits(const dg_mla_decode_args *a, int max_splits) {
    const int64_t rows = a->batch * a->q_per_seq;
    const int64_t hblocks = ceil_div(a->n_heads, 16 * pick_hg(a->n_heads));
    int64_t want = ceil_div((int64_t)16 * sm_count(), rows * hblocks);
    if (want > max_splits) want = max_splits;
    return want < 1 ? 1 : (int)want;
}

dg_status mla_decode_mma(const dg_mla_decode_args *a, int splits, int64_t chunk, cudaStream_t st) {
    switch (pick_hg(a->n_heads)) {
    case 4: return launch<4>(a, splits, chunk, st);
    case 2: return launch<2>(a, splits, chunk, st);
    default: return launch<1>(a, splits, chunk, st);
    }
}

}  // namespace dg
