/*
 * mla_prefill_mma.cu: dg_mla_prefill on bf16 tensor cores (flash-attention 2 style), for BF16
 * q/kv/k_pe/out. mla.cu's dg_mla_prefill calls it when mla_prefill_mma_ok() says the arguments
 * suit it, and keeps its scalar f32 kernel otherwise. Same contract as there:
 *   sequence b: query rows [cu_q[b], cu_q[b+1]), key rows [cu_k[b], cu_k[b+1]); local query i
 *   sees local keys j <= klen - qlen + i;
 *   score(i,j) = scale * (q[i,h,:nope] . kv[j,h,:nope] + q[i,h,nope:] . k_pe[j,:])
 *   out[i,h,:] = softmax_j(score) . kv[j,h,nope:nope+v]
 * i.e. the key row of head h is kv[j,h,0:nope] | k_pe[j,0:rope] (k_pe shared by all heads), the
 * value row is kv[j,h,nope:nope+v]. Rows that see no key (qlen > klen) get zeros, as the scalar
 * kernel writes.
 *
 * Grid (heads, query tiles of BM=64, sequences), 128 threads: warp w owns query rows
 * 16w..16w+15 of the tile. The query tiles run last-first (blockIdx.y reversed): causal work
 * grows with the tile index, so the long blocks start first and the short ones fill the tail.
 * Per key tile of BN=64 keys:
 *   S = Q K^T     mma.sync m16n8k16 bf16 -> f32, Q and K fragments by ldmatrix from shared
 *                 memory (Q is re-read per tile instead of held in registers: the k loop may
 *                 then run over any dqk at run time, and a thread keeps only S (32 floats) and
 *                 O (DVT/2 floats) live);
 *   online softmax in f32 registers, in the log2 domain (s = dot * scale * log2 e, p = 2^(s-m)):
 *                 row max and sum across the quad of lanes that share a row; causal masking only
 *                 on tiles that cross a row's limit; tiles past the block's last visible key are
 *                 never loaded, and a warp skips tiles wholly past its own rows' limits;
 *   O += P V      P rounded to bf16 (as FlashAttention does; the row sum l adds the rounded
 *                 values, so the weights stay normalised), V fragments by ldmatrix.trans.
 * Out = O / l, rounded to bf16 once.
 *
 * Shared memory (dynamic, rows padded by 8 elements = 16 bytes so that the 8 rows of an ldmatrix
 * fall in 8 different 16-byte bank groups for any dqk, dv multiple of 16):
 *   Q [64][dqk+8], K [64][dqk+8], V [64][dv+8] bf16 = 128 * (2*dqk + dv + 24) bytes
 *   (68,608 for 192/128; at most 101,376 = sm_86/89's opt-in limit, for 256/256).
 * One buffer each, overlapped as FlashAttention 2 does on sm_80: V[t] is copied (cp.async) while
 * S[t] is computed, K[t+1] while P[t] V[t] is. Rows past the sequence's keys or queries are
 * zero-filled by cp.async (masked p is 0, and 0 * a stale NaN would not be).
 *
 * Requirements (else the scalar kernel): nope, rope multiples of 8, dqk = nope + rope a multiple
 * of 16 in [16, 256], v a multiple of 16 <= 256; q, kv, k_pe 16-byte aligned with element
 * strides multiples of 8 (16-byte cp.async chunks); out 4-byte aligned with even strides (bf16x2
 * stores); the shared memory within the device's opt-in limit. DEEPGO_MLA_PREFILL=scalar forces
 * the scalar kernel (read once per process; A/B runs and tests).
 * Test:  go test ./tests/kernels -run 'MLAPrefill' -v
 * Bench: go test ./tests/kernels -run - -bench MLAPrefill
 */
#include "gemm.cuh"
#include <stdlib.h>
#include <string.h>

namespace dg {

namespace {

typedef __nv_bfloat16 bf16;

constexpr int PM_BM = 64;              /* query rows per block */
constexpr int PM_BN = 64;              /* keys per tile */
constexpr int PM_WARPS = PM_BM / 16;   /* one m16 row slab per warp */
constexpr int PM_THREADS = PM_WARPS * 32;
constexpr int PM_PAD = 8;              /* elements of row padding in shared memory */
constexpr int PM_MAXD = 256;           /* dqk and dv limit */

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void *smem) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

/* Two f32 -> one bf16x2 register (x in the low half: the lower column of an mma fragment pair),
 * and the rounded values back, for the row sum. */
__device__ __forceinline__ uint32_t pack_bf16x2(float x, float y, float &sum) {
    __nv_bfloat162 b = __floats2bfloat162_rn(x, y);
    float2 f = __bfloat1622float2(b);
    sum += f.x + f.y;
    return *reinterpret_cast<uint32_t *>(&b);
}

/* DVT: v rounded up to 128 or 256 (the O accumulator's register count); the v tiles past a->v
 * are skipped by uniform branches in fully unrolled loops. */
template <int DVT>
__global__ void __launch_bounds__(PM_THREADS) mla_prefill_mma_kernel(dg_mla_prefill_args a) {
    constexpr int NVT = DVT / 8; /* n8 tiles of O */
    extern __shared__ __align__(16) char pm_smem[];
    const int nope = a.nope, dqk = a.nope + a.rope, dv = a.v;
    const int ldk = dqk + PM_PAD, ldv = dv + PM_PAD; /* shared row strides, elements */
    bf16 *Qs = (bf16 *)pm_smem;                      /* [BM][ldk] */
    bf16 *Ks = Qs + PM_BM * ldk;                     /* [BN][ldk] */
    bf16 *Vs = Ks + PM_BN * ldk;                     /* [BN][ldv] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t4 = lane & 3;
    const int64_t h = blockIdx.x, b = blockIdx.z;
    const int q0 = (int)(gridDim.y - 1 - blockIdx.y) * PM_BM;
    const int64_t qs = a.cu_q[b], ks = a.cu_k[b];
    const int qlen = a.cu_q[b + 1] - a.cu_q[b], klen = a.cu_k[b + 1] - a.cu_k[b];
    if (q0 >= qlen) return;
    const int off = klen - qlen;                 /* row i sees keys j <= off + i */
    const int q_hi = min(q0 + PM_BM, qlen);      /* rows [q0, q_hi) are real */
    const int kend = min(klen, off + q_hi);      /* keys [0, kend) are seen by some real row */
    const int ntiles = kend > 0 ? (kend + PM_BN - 1) / PM_BN : 0;

    const bf16 *q = (const bf16 *)a.q;
    const bf16 *kv = (const bf16 *)a.kv;
    const bf16 *kpe = (const bf16 *)a.k_pe;
    const int qc = dqk >> 3, vc = dv >> 3; /* 16-byte chunks per row */

    auto load_k = [&](int t) {
        for (int idx = tid; idx < PM_BN * qc; idx += PM_THREADS) {
            const int r = idx / qc, c = (idx - r * qc) * 8, key = t * PM_BN + r;
            const bool ok = key < kend;
            const bf16 *src = kv;
            if (ok)
                src = c < nope ? kv + (ks + key) * a.ld_kv_tok + h * a.ld_kv_head + c
                               : kpe + (ks + key) * a.ld_kpe + (c - nope);
            cp_async16(Ks + r * ldk + c, src, ok);
        }
    };
    auto load_v = [&](int t) {
        for (int idx = tid; idx < PM_BN * vc; idx += PM_THREADS) {
            const int r = idx / vc, c = (idx - r * vc) * 8, key = t * PM_BN + r;
            const bool ok = key < kend;
            const bf16 *src = ok ? kv + (ks + key) * a.ld_kv_tok + h * a.ld_kv_head + nope + c : kv;
            cp_async16(Vs + r * ldv + c, src, ok);
        }
    };

    /* Rows g and g + 8 of the warp's slab: the two rows of an m16n8 accumulator a thread holds
     * (elements 0, 1 and 2, 3). */
    const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;
    const int warp_min_lim = off + q0 + warp * 16; /* the slab's first row's last key */
    const int warp_max_lim = warp_min_lim + 15;
    const float sl2 = a.scale * 1.4426950408889634f; /* log2(e): exp(x) = 2^(x log2 e) */

    float o[NVT][4];
#pragma unroll
    for (int n = 0; n < NVT; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f; /* l: this thread's columns only */

    if (ntiles > 0) {
        for (int idx = tid; idx < PM_BM * qc; idx += PM_THREADS) {
            const int r = idx / qc, c = (idx - r * qc) * 8;
            const bool ok = q0 + r < qlen;
            const bf16 *src = ok ? q + (qs + q0 + r) * a.ld_q_tok + h * a.ld_q_head + c : q;
            cp_async16(Qs + r * ldk + c, src, ok);
        }
        load_k(0);
        cp_async_commit();
    }

    for (int t = 0; t < ntiles; t++) {
        const int k0 = t * PM_BN;
        cp_async_wait<0>(); /* K[t] (and Q) landed */
        __syncthreads();    /* ... for every thread; every warp is done with V[t-1] */
        load_v(t);
        cp_async_commit();

        const bool active = k0 <= warp_max_lim; /* some row of the slab sees a key of the tile */
        float s[PM_BN / 8][4];
#pragma unroll
        for (int n = 0; n < PM_BN / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
        if (active) {
            const bf16 *qrow = Qs + (warp * 16 + (lane & 15)) * ldk + ((lane >> 4) << 3);
            const bf16 *krow = Ks + ((lane & 7) + ((lane >> 4) << 3)) * ldk + (((lane >> 3) & 1) << 3);
#pragma unroll 2
            for (int kk = 0; kk < dqk; kk += 16) {
                uint32_t qa[4];
                ldmatrix_x4(qa, qrow + kk);
#pragma unroll
                for (int nj = 0; nj < PM_BN / 16; nj++) {
                    uint32_t kb[4]; /* b0 b1 of keys nj*16 + 0..7, then of nj*16 + 8..15 */
                    ldmatrix_x4(kb, krow + nj * 16 * ldk + kk);
                    mma_bf16_16816(s[2 * nj], qa[0], qa[1], qa[2], qa[3], kb[0], kb[1]);
                    mma_bf16_16816(s[2 * nj + 1], qa[0], qa[1], qa[2], qa[3], kb[2], kb[3]);
                }
            }
        }

        cp_async_wait<0>(); /* V[t] landed */
        __syncthreads();    /* ... for every thread; every warp is done with K[t] */
        if (t + 1 < ntiles) load_k(t + 1);
        cp_async_commit();

        if (active) {
#pragma unroll
            for (int n = 0; n < PM_BN / 8; n++)
#pragma unroll
                for (int c = 0; c < 4; c++) s[n][c] *= sl2;
            if (k0 + PM_BN - 1 > warp_min_lim) { /* the tile crosses some row's limit */
#pragma unroll
                for (int n = 0; n < PM_BN / 8; n++)
#pragma unroll
                    for (int c = 0; c < 4; c++) {
                        const int j = k0 + n * 8 + 2 * t4 + (c & 1);
                        if (j > off + (c < 2 ? row0 : row1)) s[n][c] = -INFINITY;
                    }
            }
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int n = 0; n < PM_BN / 8; n++) {
                mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
                mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            /* a row that has seen no key yet keeps max -inf: subtract 0 instead, so that
             * -inf - -inf (NaN) never happens; its p are all 0 and its o and l stay 0 */
            const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
            const float cr0 = exp2f(m0 - mu0), cr1 = exp2f(m1 - mu1); /* m = -inf: 0 */
            m0 = mn0;
            m1 = mn1;
            l0 *= cr0;
            l1 *= cr1;
#pragma unroll
            for (int n = 0; n < NVT; n++) {
                o[n][0] *= cr0;
                o[n][1] *= cr0;
                o[n][2] *= cr1;
                o[n][3] *= cr1;
            }
#pragma unroll
            for (int n = 0; n < PM_BN / 8; n++) {
                s[n][0] = exp2f(s[n][0] - mu0);
                s[n][1] = exp2f(s[n][1] - mu0);
                s[n][2] = exp2f(s[n][2] - mu1);
                s[n][3] = exp2f(s[n][3] - mu1);
            }
            /* O += P V, 16 keys per step: the S accumulators of key tiles 2kj, 2kj+1 are exactly
             * the A fragment of P for those 16 keys (rows g, g+8; key pairs 2t4 and 8+2t4) */
            const bf16 *vrow = Vs + (lane & 15) * ldv + ((lane >> 4) << 3);
#pragma unroll
            for (int kj = 0; kj < PM_BN / 16; kj++) {
                uint32_t pa[4];
                pa[0] = pack_bf16x2(s[2 * kj][0], s[2 * kj][1], l0);
                pa[1] = pack_bf16x2(s[2 * kj][2], s[2 * kj][3], l1);
                pa[2] = pack_bf16x2(s[2 * kj + 1][0], s[2 * kj + 1][1], l0);
                pa[3] = pack_bf16x2(s[2 * kj + 1][2], s[2 * kj + 1][3], l1);
#pragma unroll
                for (int np = 0; np < NVT / 2; np++) {
                    if (np * 16 < dv) {
                        uint32_t vb[4]; /* b0 b1 of v columns np*16 + 0..7, then of + 8..15 */
                        ldmatrix_x4_trans(vb, vrow + kj * 16 * ldv + np * 16);
                        mma_bf16_16816(o[2 * np], pa[0], pa[1], pa[2], pa[3], vb[0], vb[1]);
                        mma_bf16_16816(o[2 * np + 1], pa[0], pa[1], pa[2], pa[3], vb[2], vb[3]);
                    }
                }
            }
        }
    }
    cp_async_wait<0>();

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
    bf16 *out = (bf16 *)a.out;
    bf16 *out0 = out + (qs + row0) * a.ld_out_tok + h * a.ld_out_head + 2 * t4;
    bf16 *out1 = out + (qs + row1) * a.ld_out_tok + h * a.ld_out_head + 2 * t4;
#pragma unroll
    for (int n = 0; n < NVT; n++) {
        if (n * 8 < dv) {
            if (row0 < qlen)
                *(__nv_bfloat162 *)(out0 + n * 8) = __floats2bfloat162_rn(o[n][0] * inv0, o[n][1] * inv0);
            if (row1 < qlen)
                *(__nv_bfloat162 *)(out1 + n * 8) = __floats2bfloat162_rn(o[n][2] * inv1, o[n][3] * inv1);
        }
    }
}

size_t mma_smem_bytes(const dg_mla_prefill_args &a) {
    return sizeof(bf16) * ((size_t)(PM_BM + PM_BN) * (a.nope + a.rope + PM_PAD) + (size_t)PM_BN * (a.v + PM_PAD));
}

bool aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

/* DEEPGO_MLA_PREFILL=scalar: always the scalar kernel (read once per process). */
bool mma_disabled() {
    static const bool off = [] {
        const char *e = getenv("DEEPGO_MLA_PREFILL");
        return e && strcmp(e, "scalar") == 0;
    }();
    return off;
}

/* The device's opt-in shared memory per block (one device per process, as elsewhere). */
int smem_optin() {
    static const int n = device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024);
    return n;
}

template <int DVT>
dg_status launch(const dg_mla_prefill_args &a, cudaStream_t st) {
    const size_t smem = mma_smem_bytes(a);
    if (dg_status err = opt_in_smem<mla_prefill_mma_kernel<DVT>>(smem, "mla_prefill_mma_kernel")) return err;
    dim3 grid((unsigned)a.n_heads, (unsigned)ceil_div(a.max_q, PM_BM), (unsigned)a.n_seqs);
    mla_prefill_mma_kernel<DVT><<<grid, PM_THREADS, smem, st>>>(a);
    DG_LAUNCHED("mla_prefill_mma_kernel");
    return DG_OK;
}

}  // namespace

/* Whether the tensor-core kernel takes these (already validated) arguments. Binds no device:
 * the caller has (stream_of). */
bool mla_prefill_mma_ok(const dg_mla_prefill_args &a) {
    if (a.dtype != DG_BF16 || mma_disabled()) return false;
    const int dqk = a.nope + a.rope;
    if (a.nope % 8 || a.rope % 8 || dqk % 16 || dqk < 16 || dqk > PM_MAXD) return false;
    if (a.v % 16 || a.v <= 0 || a.v > PM_MAXD) return false;
    if (!aligned16(a.q) || !aligned16(a.kv) || a.ld_q_tok % 8 || a.ld_q_head % 8 || a.ld_kv_tok % 8 ||
        a.ld_kv_head % 8)
        return false;
    if (a.rope > 0 && (!aligned16(a.k_pe) || a.ld_kpe % 8)) return false;
    if ((uintptr_t)a.out % 4 || a.ld_out_tok % 2 || a.ld_out_head % 2) return false;
    if (ceil_div(a.max_q, PM_BM) > 65535) return false;
    return mma_smem_bytes(a) <= (size_t)smem_optin();
}

dg_status mla_prefill_mma(const dg_mla_prefill_args &a, cudaStream_t st) {
    return a.v <= 128 ? launch<128>(a, st) : launch<256>(a, st);
}

}  // namespace dg
