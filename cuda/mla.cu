/*
 * mla.cu: multi-head latent attention, both forms.
 *
 * mla_prefill (plain form, causal, varlen). Sequence b: query rows [cu_q[b], cu_q[b+1]), key rows
 * [cu_k[b], cu_k[b+1]); query i sees keys j <= klen - qlen + i.
 *   score(i,j) = scale * (q[i,h,:nope] . kv[j,h,:nope] + q[i,h,nope:] . k_pe[j,:])
 *   out[i,h,:] = softmax_j(score) . kv[j,h,nope:nope+v]
 * Flash-style: grid (query tiles of 8, heads, seqs), one warp per query row. Key tiles of 32 rows
 * (k = kv's nope part | k_pe, and v) are staged in shared memory as f32 (row stride dqk+1: the
 * lane-per-key dot products are bank-conflict free); each lane scores one key, the warp keeps the
 * running max m, the running sum l and the output o (lanes own columns d = lane + 32c) and
 * rescales them per tile (online softmax). The score matrix is never materialised. No workspace.
 * Limits: v <= 256; shared memory 4*(32*(nope+rope+1) + 32*v + 4*(nope+rope)) bytes.
 *
 * mla_decode (absorbed form over the paged latent cache, split-K):
 *   row r = b*q_per_seq + i sees cache positions p < seq_lens[b] - (q_per_seq - 1 - i)
 *   score(r,h,p) = scale * (q_lat[r,h,:] . c[p,:latent] + q_pe[r,h,:] . c[p,latent:])
 *   o_lat[r,h,:] = softmax_p(score) . c[p,:latent]
 * Pass 1: grid (splits, head groups of 8, rows); a block stages 32 cache rows (latent+rope wide,
 * f32, through the block table) in shared memory, shared by its 8 heads (one warp each), and
 * runs the online softmax over its key range; it writes (o unnormalised, m, l) to the workspace
 * [rows, heads, splits, latent+2] (f32). Pass 2 (combine): out = sum_s e^(m_s-M) o_s / sum_s
 * e^(m_s-M) l_s. The split count depends only on max_seq_len (32 keys per split, at most 128),
 * so a captured graph stays valid for every length up to it.
 * Limits: latent <= 512; shared memory 4*(32*(latent+rope+1) + 8*(latent+rope)) bytes (92 KB
 * for DeepSeek's 512+64, opted in with cudaFuncSetAttribute).
 * bf16 q over a bf16 cache with latent 512 + rope 64 (DeepSeek's) takes the tensor-core pass 1 in
 * mla_decode_mma.cu instead (DEEPGO_MLA_DECODE=simt keeps this one), with fewer splits when the
 * rows x head groups already fill the GPU; the combine is shared. bf16 prefill with suitable shapes
 * takes mla_prefill_mma.cu (DEEPGO_MLA_PREFILL=scalar keeps the one here). On H100/H200 with heads %
 * 64 == 0 the wgmma pass 1 of mla_decode_wgmma.cu runs instead (DEEPGO_MLA_DECODE=mma keeps
 * mla_decode_mma.cu); with one split it writes out itself and the combine is skipped.
 *
 * Variants: q/kv/out F32 or BF16 (prefill dtype; decode dtype), cache F32 or BF16. Math in f32.
 * Test: go test ./tests/kernels -run 'MLA' -v
 */
#include "common.cuh"
#include "mla_decode_mma.cuh"
#include "mla_decode_wgmma.cuh"

using namespace dg;

namespace {

constexpr int KT = 32;          /* keys per tile */
constexpr int PF_WARPS = 8;     /* query rows per prefill block */
constexpr int PF_MAXV = 8;      /* v <= 32 * PF_MAXV */
constexpr int DC_HEADS = 8;     /* heads per decode block */
constexpr int DC_MAXL = 16;     /* latent <= 32 * DC_MAXL */
constexpr int DC_KEYS_PER_SPLIT = 32; /* one key tile per split: blocks enough to fill the GPU */
constexpr int DC_MAX_SPLITS = 128; /* also the combine kernel's block size */
static_assert(KT % DC_HEADS == 0, "decode staging: rows per warp");

template <typename T>
__global__ void __launch_bounds__(PF_WARPS * 32) mla_prefill_kernel(dg_mla_prefill_args a) {
    extern __shared__ float smem[];
    const int nope = a.nope, rope = a.rope, dv = a.v, dqk = nope + rope;
    float *Ks = smem;                      /* [KT][dqk+1] */
    float *Vs = Ks + KT * (dqk + 1);       /* [KT][dv] */
    float *Qs = Vs + KT * dv;              /* [PF_WARPS][dqk] */
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int64_t b = blockIdx.z, h = blockIdx.y;
    const int64_t qs = a.cu_q[b], qlen = a.cu_q[b + 1] - qs;
    const int64_t ks = a.cu_k[b], klen = a.cu_k[b + 1] - ks;
    const int64_t q_first = (int64_t)blockIdx.x * PF_WARPS;
    if (q_first >= qlen) return;
    const int64_t qi = q_first + w;
    const bool valid = qi < qlen;
    const int64_t limit = klen - qlen + qi; /* last visible key */
    const int64_t q_last = min(q_first + PF_WARPS - 1, qlen - 1);
    const int64_t kend = min(klen, klen - qlen + q_last + 1);

    const T *q = (const T *)a.q;
    const T *kv = (const T *)a.kv;
    const T *kpe = (const T *)a.k_pe;
    if (valid)
        for (int c = lane; c < dqk; c += 32)
            Qs[w * dqk + c] = to_f32(q[(qs + qi) * a.ld_q_tok + h * a.ld_q_head + c]);

    float m = -INFINITY, l = 0.f, o[PF_MAXV];
#pragma unroll
    for (int c = 0; c < PF_MAXV; c++) o[c] = 0.f;

    for (int64_t kt = 0; kt < kend; kt += KT) {
        __syncthreads();
        /* one warp per key row (no index division), lanes along the row: coalesced */
        for (int r = w; r < KT; r += PF_WARPS) {
            const int64_t key = kt + r;
            float *kd = Ks + r * (dqk + 1);
            float *vd = Vs + r * dv;
            if (key < klen) {
                const T *kr = kv + (ks + key) * a.ld_kv_tok + h * a.ld_kv_head;
                const T *pr = kpe + (ks + key) * a.ld_kpe;
                for (int c = lane; c < nope; c += 32) kd[c] = to_f32(kr[c]);
                for (int c = lane; c < rope; c += 32) kd[nope + c] = to_f32(pr[c]);
                for (int c = lane; c < dv; c += 32) vd[c] = to_f32(kr[nope + c]);
            } else {
                for (int c = lane; c < dqk; c += 32) kd[c] = 0.f;
                for (int c = lane; c < dv; c += 32) vd[c] = 0.f;
            }
        }
        __syncthreads();
        if (!valid) continue;
        int64_t key = kt + lane;
        float s = -INFINITY;
        if (key <= limit && key < klen) {
            const float *kr = Ks + lane * (dqk + 1);
            const float *qr = Qs + w * dqk;
            float d = 0.f;
            for (int c = 0; c < dqk; c++) d = fmaf(qr[c], kr[c], d);
            s = d * a.scale;
        }
        float tmax = warp_max(s);
        if (tmax == -INFINITY) continue;
        float m_new = fmaxf(m, tmax);
        float p = s == -INFINITY ? 0.f : expf(s - m_new);
        float corr = m == -INFINITY ? 0.f : expf(m - m_new);
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int c = 0; c < PF_MAXV; c++) o[c] *= corr;
        for (int j = 0; j < KT; j++) {
            float pj = __shfl_sync(0xffffffffu, p, j);
            const float *vr = Vs + j * dv;
#pragma unroll
            for (int c = 0; c < PF_MAXV; c++) {
                int d = lane + 32 * c;
                if (d < dv) o[c] = fmaf(pj, vr[d], o[c]);
            }
        }
        m = m_new;
    }
    if (!valid) return;
    T *out = (T *)a.out + (qs + qi) * a.ld_out_tok + h * a.ld_out_head;
    float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int c = 0; c < PF_MAXV; c++) {
        int d = lane + 32 * c;
        if (d < dv) out[d] = from_f32<T>(o[c] * inv);
    }
}

template <typename T, typename CT>
__global__ void __launch_bounds__(DC_HEADS * 32, 2) mla_decode_split_kernel(dg_mla_decode_args a, int n_splits,
                                                                         int64_t chunk) {
    extern __shared__ float smem[];
    pdl_enter();
    const int latent = a.latent, D = a.latent + a.rope;
    float *Cs = smem;                  /* [KT][D+1] */
    float *Qs = Cs + KT * (D + 1);     /* [DC_HEADS][D] */
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int split = blockIdx.x;
    const int64_t r = blockIdx.z;
    const int64_t b = r / a.q_per_seq, i = r % a.q_per_seq;
    const int64_t h = (int64_t)blockIdx.y * DC_HEADS + w;
    const bool valid = h < a.n_heads;
    const int64_t L = (int64_t)a.seq_lens[b] - (a.q_per_seq - 1 - i);
    const int64_t k0 = (int64_t)split * chunk;
    const int64_t k1 = min(L, k0 + chunk);
    const T *ql = (const T *)a.q_lat;
    const T *qp = (const T *)a.q_pe;
    const CT *cache = (const CT *)a.cache;
    const int32_t *bt = a.block_table + b * a.max_blocks;
    const bool vec16 = ((uintptr_t)a.cache % 16 == 0) && ((D * (int)sizeof(CT)) % 16 == 0);

    if (valid)
        for (int c = lane; c < D; c += 32)
            Qs[w * D + c] = c < latent ? to_f32(ql[r * a.ld_q_tok + h * a.ld_q_head + c])
                                       : to_f32(qp[r * a.ld_qpe_tok + h * a.ld_qpe_head + (c - latent)]);

    float m = -INFINITY, l = 0.f, o[DC_MAXL];
#pragma unroll
    for (int c = 0; c < DC_MAXL; c++) o[c] = 0.f;

    for (int64_t kt = k0; kt < k1; kt += KT) {
        __syncthreads();
        if (vec16) {
            /* 16-byte loads, all rows of this warp issued before the stores */
            constexpr int RPW = KT / DC_HEADS;
            const int nch = D * (int)sizeof(CT) / 16;
#pragma unroll
            for (int q = 0; q < RPW; q++) {
                const int rr = w + q * DC_HEADS;
                const int64_t p = kt + rr;
                float *dst = Cs + rr * (D + 1);
                if (p < k1) {
                    const int64_t row = (int64_t)bt[p / a.block_size] * a.block_size + p % a.block_size;
                    const uint4 *src = (const uint4 *)(cache + row * D);
#pragma unroll 3
                    for (int c = lane; c < nch; c += 32) {
                        uint4 v = src[c];
                        const CT *e = (const CT *)&v;
#pragma unroll
                        for (int u = 0; u < 16 / (int)sizeof(CT); u++) dst[c * (16 / (int)sizeof(CT)) + u] = to_f32(e[u]);
                    }
                } else {
                    for (int c = lane; c < D; c += 32) dst[c] = 0.f;
                }
            }
        } else {
            for (int rr = w; rr < KT; rr += DC_HEADS) {
                int64_t p = kt + rr;
                float *dst = Cs + rr * (D + 1);
                if (p < k1) {
                    int64_t row = (int64_t)bt[p / a.block_size] * a.block_size + p % a.block_size;
                    const CT *src = cache + row * D;
                    for (int c = lane; c < D; c += 32) dst[c] = to_f32(src[c]);
                } else {
                    for (int c = lane; c < D; c += 32) dst[c] = 0.f;
                }
            }
        }
        __syncthreads();
        if (!valid) continue;
        int64_t p = kt + lane;
        float s = -INFINITY;
        if (p < k1) {
            const float *cr = Cs + lane * (D + 1);
            const float *qr = Qs + w * D;
            float d = 0.f;
            for (int c = 0; c < D; c++) d = fmaf(qr[c], cr[c], d);
            s = d * a.scale;
        }
        float tmax = warp_max(s);
        float m_new = fmaxf(m, tmax);
        float pr = s == -INFINITY ? 0.f : expf(s - m_new);
        float corr = m == -INFINITY ? 0.f : expf(m - m_new);
        l = l * corr + warp_sum(pr);
#pragma unroll
        for (int c = 0; c < DC_MAXL; c++) o[c] *= corr;
        for (int j = 0; j < KT; j++) {
            float pj = __shfl_sync(0xffffffffu, pr, j);
            const float *cr = Cs + j * (D + 1);
#pragma unroll
            for (int c = 0; c < DC_MAXL; c++) {
                int d = lane + 32 * c;
                if (d < latent) o[c] = fmaf(pj, cr[d], o[c]);
            }
        }
        m = m_new;
    }
    if (!valid) return;
    float *ws = (float *)a.workspace + ((r * a.n_heads + h) * n_splits + split) * (int64_t)(latent + 2);
#pragma unroll
    for (int c = 0; c < DC_MAXL; c++) {
        int d = lane + 32 * c;
        if (d < latent) ws[d] = o[c];
    }
    if (lane == 0) {
        ws[latent] = m;
        ws[latent + 1] = l;
    }
}

template <typename T>
__global__ void __launch_bounds__(DC_MAX_SPLITS) mla_decode_combine_kernel(dg_mla_decode_args a, int n_splits,
                                                                          int64_t chunk) {
    /* blockDim.x == DC_MAX_SPLITS >= n_splits. Only the splits that start below the row's length
     * saw keys (the tensor-core pass 1 writes nothing for the others), so their count comes from
     * seq_lens; thread s owns split s for the softmax terms, then each thread sums two columns
     * over those splits in split order. */
    __shared__ float red[32];
    __shared__ float fac[DC_MAX_SPLITS];
    pdl_enter();
    const int64_t h = blockIdx.x, r = blockIdx.y;
    const int64_t b = r / a.q_per_seq, i = r % a.q_per_seq;
    const int64_t L = (int64_t)a.seq_lens[b] - (a.q_per_seq - 1 - i);
    const int n_act = L > 0 ? (int)min((int64_t)n_splits, (L + chunk - 1) / chunk) : 0;
    const int latent = a.latent;
    const float *ws = (const float *)a.workspace + (r * a.n_heads + h) * n_splits * (int64_t)(latent + 2);
    const int s = threadIdx.x;
    float ms = -INFINITY, ls = 0.f;
    if (s < n_act) {
        ms = ws[s * (latent + 2) + latent];
        ls = ws[s * (latent + 2) + latent + 1];
    }
    const float M = block_max(ms, red);
    const float e = ms == -INFINITY ? 0.f : expf(ms - M);
    const float Lsum = block_sum(e * ls, red);
    fac[s] = e;
    __syncthreads();
    const float inv = Lsum > 0.f ? 1.f / Lsum : 0.f;
    T *out = (T *)a.out + r * a.ld_out_tok + h * a.ld_out_head;
    /* (latent + 2) floats per split: 8-byte aligned, so float2 loads */
    for (int d = 2 * threadIdx.x; d < latent; d += 2 * blockDim.x) {
        const bool pair = d + 1 < latent;
        float ax = 0.f, ay = 0.f;
#pragma unroll 8
        for (int q = 0; q < n_act; q++) {
            const float f = fac[q];
            const float *src = ws + q * (int64_t)(latent + 2) + d;
            if (pair) {
                const float2 v = *(const float2 *)src;
                ax += f * v.x;
                ay += f * v.y;
            } else {
                ax += f * src[0];
            }
        }
        out[d] = from_f32<T>(ax * inv);
        if (pair) out[d + 1] = from_f32<T>(ay * inv);
    }
}

int decode_splits(const dg_mla_decode_args *a) {
    int64_t n = ceil_div(a->max_seq_len > 0 ? a->max_seq_len : 1, DC_KEYS_PER_SPLIT);
    if (n < 1) n = 1;
    if (n > DC_MAX_SPLITS) n = DC_MAX_SPLITS;
    return (int)n;
}

}  // namespace

namespace dg {
/* mla_prefill_mma.cu: the bf16 tensor-core prefill, for the arguments it suits. */
bool mla_prefill_mma_ok(const dg_mla_prefill_args &a);
dg_status mla_prefill_mma(const dg_mla_prefill_args &a, cudaStream_t st);
}  // namespace dg

extern "C" {

DG_API int64_t dg_mla_prefill_workspace_size(const dg_mla_prefill_args *a) {
    (void)a;
    return 0;
}

DG_API dg_status dg_mla_prefill(const dg_mla_prefill_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_mla_prefill");
    DG_REQUIRE(is_act_dtype(a->dtype), "dg_mla_prefill: dtype %s (F32 or BF16)", dtype_name(a->dtype));
    DG_REQUIRE(a->nope >= 0 && a->rope >= 0 && a->v > 0 && a->nope + a->rope > 0, "dg_mla_prefill: bad head dims");
    if (a->v > 32 * PF_MAXV)
        return fail(DG_ERR_UNSUPPORTED, "dg_mla_prefill: v %d > %d", a->v, 32 * PF_MAXV);
    DG_REQUIRE(a->n_seqs >= 0 && a->n_heads >= 0 && a->max_q >= 0, "dg_mla_prefill: negative shape");
    if (a->n_seqs == 0 || a->n_heads == 0 || a->max_q == 0) return DG_OK;
    DG_REQUIRE(a->q && a->kv && a->out && a->cu_q && a->cu_k && (a->rope == 0 || a->k_pe),
               "dg_mla_prefill: NULL pointer");
    DG_REQUIRE(a->n_heads <= 65535 && a->n_seqs <= 65535, "dg_mla_prefill: too many heads or sequences");
    int dqk = a->nope + a->rope;
    size_t smem = sizeof(float) * ((size_t)KT * (dqk + 1) + (size_t)KT * a->v + (size_t)PF_WARPS * dqk);
    dim3 grid((unsigned)ceil_div(a->max_q, PF_WARPS), (unsigned)a->n_heads, (unsigned)a->n_seqs);
    cudaStream_t cs = stream_of(s);
    /* BF16 with suitable shapes: the tensor-core kernel (mla_prefill_mma.cu) */
    if (a->dtype == DG_BF16 && mla_prefill_mma_ok(*a)) return mla_prefill_mma(*a, cs);
    dg_status st;
    if (a->dtype == DG_F32) {
        if ((st = opt_in_smem<mla_prefill_kernel<float>>(smem, "mla_prefill_kernel"))) return st;
        mla_prefill_kernel<float><<<grid, PF_WARPS * 32, smem, cs>>>(*a);
    } else {
        if ((st = opt_in_smem<mla_prefill_kernel<__nv_bfloat16>>(smem, "mla_prefill_kernel"))) return st;
        mla_prefill_kernel<__nv_bfloat16><<<grid, PF_WARPS * 32, smem, cs>>>(*a);
    }
    DG_LAUNCHED("mla_prefill_kernel");
    return DG_OK;
}

DG_API int64_t dg_mla_decode_workspace_size(const dg_mla_decode_args *a) {
    if (!a) return 0;
    int64_t rows = a->batch * (a->q_per_seq > 0 ? a->q_per_seq : 1);
    return rows * a->n_heads * decode_splits(a) * (int64_t)(a->latent + 2) * 4;
}

DG_API dg_status dg_mla_decode(const dg_mla_decode_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_mla_decode");
    DG_REQUIRE(is_act_dtype(a->dtype) && is_act_dtype(a->cache_dtype), "dg_mla_decode: dtype %s, cache %s",
               dtype_name(a->dtype), dtype_name(a->cache_dtype));
    DG_REQUIRE(a->latent > 0 && a->rope >= 0 && a->block_size > 0 && a->q_per_seq > 0,
               "dg_mla_decode: latent %d, rope %d, block_size %d, q_per_seq %d", a->latent, a->rope,
               a->block_size, a->q_per_seq);
    if (a->latent > 32 * DC_MAXL)
        return fail(DG_ERR_UNSUPPORTED, "dg_mla_decode: latent %d > %d", a->latent, 32 * DC_MAXL);
    DG_REQUIRE(a->batch >= 0 && a->n_heads >= 0, "dg_mla_decode: negative shape");
    int64_t rows = a->batch * a->q_per_seq;
    if (rows == 0 || a->n_heads == 0) return DG_OK;
    DG_REQUIRE(a->q_lat && (a->rope == 0 || a->q_pe) && a->cache && a->block_table && a->seq_lens && a->out,
               "dg_mla_decode: NULL pointer");
    DG_REQUIRE(a->workspace != nullptr, "dg_mla_decode: needs a workspace of %lld bytes",
               (long long)dg_mla_decode_workspace_size(a));
    DG_REQUIRE(rows <= 65535, "dg_mla_decode: %lld query rows > 65535", (long long)rows);
    const bool wgmma = mla_decode_wgmma_ok(a); /* H100/H200, heads % 64 == 0: mla_decode_wgmma.cu */
    const bool mma = !wgmma && mla_decode_mma_ok(a);
    int splits = decode_splits(a); /* the most splits; the workspace is sized for these */
    if (wgmma) splits = mla_decode_wgmma_splits(a, splits);
    else if (mma) splits = mla_decode_mma_splits(a, splits);
    int64_t chunk = ceil_div(a->max_seq_len > 0 ? a->max_seq_len : 1, splits);
    chunk = ceil_div(chunk, KT) * KT;
    int D = a->latent + a->rope;
    size_t smem = sizeof(float) * ((size_t)KT * (D + 1) + (size_t)DC_HEADS * D);
    dim3 grid(splits, (unsigned)ceil_div(a->n_heads, DC_HEADS), (unsigned)rows);
    dim3 cgrid((unsigned)a->n_heads, (unsigned)rows);
    cudaStream_t cs = stream_of(s);
    dg_status st;
    if (wgmma) {
        bool wrote_out = false; /* one split: the kernel normalised and wrote out itself */
        if ((st = mla_decode_wgmma(a, splits, chunk, &wrote_out, cs))) return st;
        if (wrote_out) return DG_OK;
        launch_pdl(mla_decode_combine_kernel<__nv_bfloat16>, cgrid, DC_MAX_SPLITS, 0, cs, *a, splits, chunk);
        DG_LAUNCHED("mla_decode_combine_kernel");
        return DG_OK;
    }
    if (mma) {
        if ((st = mla_decode_mma(a, splits, chunk, cs))) return st;
        launch_pdl(mla_decode_combine_kernel<__nv_bfloat16>, cgrid, DC_MAX_SPLITS, 0, cs, *a, splits, chunk);
        DG_LAUNCHED("mla_decode_combine_kernel");
        return DG_OK;
    }
#define DG_DECODE(T, CT)                                                                             \
    do {                                                                                             \
        if ((st = opt_in_smem<mla_decode_split_kernel<T, CT>>(smem, "mla_decode_split_kernel"))) return st; \
        launch_pdl(mla_decode_split_kernel<T, CT>, grid, DC_HEADS * 32, smem, cs, *a, splits, chunk);  \
        DG_LAUNCHED("mla_decode_split_kernel");                                                      \
        launch_pdl(mla_decode_combine_kernel<T>, cgrid, DC_MAX_SPLITS, 0, cs, *a, splits, chunk);            \
        DG_LAUNCHED("mla_decode_combine_kernel");                                                    \
    } while (0)
    if (a->dtype == DG_F32) {
        if (a->cache_dtype == DG_F32) DG_DECODE(float, float);
        else DG_DECODE(float, __nv_bfloat16);
    } else {
        if (a->cache_dtype == DG_F32) DG_DECODE(__nv_bfloat16, float);
        else DG_DECODE(__nv_bfloat16, __nv_bfloat16);
    }
#undef DG_DECODE
    return DG_OK;
}

}  // extern "C"
