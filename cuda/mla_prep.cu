/*
 * mla_prep.cu: MLA's prologue after the q_a | kv_a projection, in one launch per layer:
 *
 *   q[t, :q_dim]        = w_q  * round(q  * rsqrt(mean(q^2) + eps))      blocks (t, 1), when q_dim > 0
 *   kv[t, :latent]      = w_kv * round(kv * rsqrt(mean(kv^2) + eps))     blocks (t, 0)
 *   kv[t, latent:width] = rope(kv[t, latent:width], pos[t])
 *   cache[slots[t], :width] = kv[t, :width] in cache_dtype (slots < 0: skipped)
 *
 * It replaces rmsnorm, rmsnorm, rope and kv_store (four latency-bound launches per layer at
 * decode) and must give their bits, so each part repeats its kernel's float order: a norm sums
 * squares with the thread count dg_rmsnorm picks at that width (rmsnorm_threads), each thread over
 * the same columns j = tid + k * threads in the same order, through the same block_sum (threads
 * past the norm's count add zeros, which leave the reduction tree's result unchanged); the pairs
 * go through rope_rotate like rope_kernel; the cache gets the values as rounded into kv, converted
 * as kv_store converts them. The first RMS_PER columns of a thread stay in registers between the
 * two passes and their weights are loaded before pdl_enter, as in rmsnorm_reg_kernel; wider rows
 * (beyond 8192 columns) re-read the rest.
 * Variants: q/kv F32/BF16 (template), weights F32/BF16/F16 and cache F32/BF16 (run-time dtype).
 * Test: go test ./tests/kernels -run MLAPrep -v
 */
#include "common.cuh"

using namespace dg;

namespace {

/* x[j] = v rounded to T and, when crow >= 0, the same value into cache row crow (kv_store's
 * conversion of what kv holds). */
template <typename T>
__device__ __forceinline__ void put(T *x, int64_t j, float v, void *cache, int32_t cache_dtype, int64_t crow) {
    const T r = from_f32<T>(v);
    x[j] = r;
    if (crow >= 0) st_elem(cache, cache_dtype, crow + j, to_f32(r));
}

template <typename T>
__global__ void mla_prep_kernel(dg_mla_prep_args a) {
    __shared__ float red[32];
    const int64_t t = blockIdx.x;
    const bool is_q = blockIdx.y == 1;
    T *x = is_q ? (T *)a.q + t * a.ld_q : (T *)a.kv + t * a.ld_kv;
    const void *w = is_q ? a.q_weight : a.kv_weight;
    const int32_t w_dtype = is_q ? a.q_w_dtype : a.kv_w_dtype;
    const int64_t dim = is_q ? a.q_dim : a.latent;
    const int nthr = rmsnorm_threads(dim);
    const bool mine = threadIdx.x < nthr;
    float wr[RMS_PER], v[RMS_PER];
    /* the weights are read-only: loaded while the previous kernel finishes */
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * nthr;
        wr[k] = mine && j < dim ? ld_elem(w, w_dtype, j) : 0.f;
    }
    pdl_enter();
    int64_t crow = -1;
    if (!is_q) {
        const int32_t slot = a.slots[t];
        if (slot >= 0) crow = (int64_t)slot * (a.latent + a.rope_dim);
        for (int64_t i = threadIdx.x; i < a.rope_dim / 2; i += blockDim.x) {
            const int64_t j = a.latent + 2 * i;
            const float2 r = rope_rotate(to_f32(x[j]), to_f32(x[j + 1]), a.pos[t], a.inv_freq[i], a.mscale);
            put(x, j, r.x, a.cache, a.cache_dtype, crow);
            put(x, j + 1, r.y, a.cache, a.cache_dtype, crow);
        }
    }
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * nthr;
        v[k] = mine && j < dim ? to_f32(x[j]) : 0.f;
    }
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * nthr;
        if (mine && j < dim) ss += v[k] * v[k];
    }
    for (int64_t j = threadIdx.x + (int64_t)RMS_PER * nthr; mine && j < dim; j += nthr) {
        const float u = to_f32(x[j]);
        ss += u * u;
    }
    ss = block_sum(ss, red);
    const float rs = rsqrtf(ss / (float)dim + a.eps);
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * nthr;
        if (mine && j < dim) put(x, j, wr[k] * round_to(a.dtype, v[k] * rs), a.cache, a.cache_dtype, crow);
    }
    for (int64_t j = threadIdx.x + (int64_t)RMS_PER * nthr; mine && j < dim; j += nthr)
        put(x, j, ld_elem(w, w_dtype, j) * round_to(a.dtype, to_f32(x[j]) * rs), a.cache, a.cache_dtype, crow);
}

dg_status check_args(const dg_mla_prep_args *a) {
    DG_NOT_NULL(a, "dg_mla_prep");
    DG_REQUIRE(is_act_dtype(a->dtype), "dg_mla_prep: dtype %s (F32 or BF16)", dtype_name(a->dtype));
    DG_REQUIRE(is_act_dtype(a->cache_dtype), "dg_mla_prep: cache_dtype %s (F32 or BF16)",
               dtype_name(a->cache_dtype));
    DG_REQUIRE(is_float_dtype(a->kv_w_dtype), "dg_mla_prep: kv_w_dtype %s", dtype_name(a->kv_w_dtype));
    DG_REQUIRE(a->q_dim == 0 || is_float_dtype(a->q_w_dtype), "dg_mla_prep: q_w_dtype %s",
               dtype_name(a->q_w_dtype));
    DG_REQUIRE(a->n >= 0 && a->q_dim >= 0, "dg_mla_prep: n %lld, q_dim %lld", (long long)a->n,
               (long long)a->q_dim);
    DG_REQUIRE(a->latent > 0, "dg_mla_prep: latent %lld", (long long)a->latent);
    DG_REQUIRE(a->rope_dim > 0 && a->rope_dim % 2 == 0, "dg_mla_prep: rope_dim %d (even, > 0)", a->rope_dim);
    DG_REQUIRE(a->ld_kv >= a->latent + a->rope_dim, "dg_mla_prep: ld_kv %lld < latent + rope_dim %lld",
               (long long)a->ld_kv, (long long)(a->latent + a->rope_dim));
    DG_REQUIRE(a->q_dim == 0 || a->ld_q >= a->q_dim, "dg_mla_prep: ld_q %lld < q_dim %lld", (long long)a->ld_q,
               (long long)a->q_dim);
    DG_REQUIRE(a->n <= INT32_MAX, "dg_mla_prep: n %lld too large", (long long)a->n);
    if (a->n == 0) return DG_OK;
    DG_REQUIRE(a->kv && a->kv_weight && a->pos && a->inv_freq && a->slots && a->cache,
               "dg_mla_prep: NULL pointer (kv, kv_weight, pos, inv_freq, slots or cache)");
    DG_REQUIRE(a->q_dim == 0 || (a->q && a->q_weight), "dg_mla_prep: q or q_weight is NULL with q_dim %lld",
               (long long)a->q_dim);
    return DG_OK;
}

}  // namespace

extern "C" DG_API dg_status dg_mla_prep(const dg_mla_prep_args *a, dg_stream s) {
    dg_status st = check_args(a);
    if (st != DG_OK || a->n == 0) return st;
    const int threads = std::max(rmsnorm_threads(a->latent), a->q_dim > 0 ? rmsnorm_threads(a->q_dim) : 0);
    const dim3 grid((unsigned)a->n, a->q_dim > 0 ? 2 : 1);
    if (a->dtype == DG_BF16)
        launch_pdl(mla_prep_kernel<__nv_bfloat16>, grid, threads, 0, stream_of(s), *a);
    else
        launch_pdl(mla_prep_kernel<float>, grid, threads, 0, stream_of(s), *a);
    DG_LAUNCHED("mla_prep_kernel");
    return DG_OK;
}
