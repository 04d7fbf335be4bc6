/*
 * sample.cu: argmax and sampling over logits rows, on the GPU (only token ids go back).
 *
 * argmax: one block per row; (value, index) block reduction, ties to the lower index; a row with
 * any NaN gives -1 (cpu/argmax.c).
 *
 * sample, the contract's rules (go/sampling; cpu/sample.c is the reference):
 *   temperature 0: argmax. Otherwise z = logits / T (f32); keep the top_k largest (<= 0: all);
 *   p = softmax(z) over the kept set in canonical order (descending p, ties by lower id); keep
 *   the shortest prefix whose mass >= top_p (at least one); drop p < min_p * p_max; renormalise;
 *   the token is the first whose cumulative probability exceeds uniform (else the last kept).
 * Steps:
 *   1. keys: per element a 64-bit key (order-flipped f32 bits of z) << 32 | id, so that an
 *      ascending sort gives canonical order (z descending, id ascending; -0 folded into +0).
 *   2. sort: cub::DeviceSegmentedRadixSort::SortKeys, one segment per row (device-side only,
 *      graph-capturable; temp storage in the workspace).
 *   3. finish: one block of 1024 threads per row: e = exp(z - zmax), p = e / sum (block sums),
 *      then chunked block scans for the top_p prefix, the min_p cut and the inverse CDF.
 *   p is stored in f32; sums and cumulative masses are in double (block tree + running carry),
 *   so the draw is within ~1e-9 of the exact inverse CDF. The CPU library sums in f32 in
 *   sequence, whose drift over a 129K-token vocabulary (~1e-5) exceeds one token's probability:
 *   the two agree on every row whose kept set is small, and tests/kernels checks the GPU draw
 *   against a float64 inverse CDF. Tokens with equal p but distinct z (they round alike) keep z
 *   order here; the CPU re-sorts them by id.
 * Workspace: 2 * n * vocab * 8 (keys) + n * vocab * 4 (p) + (n + 1) * 4 + CUB's temp storage.
 * A later speed issue: radix-select of the kept prefix (go/sampling's algorithm) instead of a
 * full sort.
 * Test: go test ./tests/kernels -run 'Argmax|Sample' -v
 */
#include "common.cuh"

#include <cub/device/device_segmented_radix_sort.cuh>

using namespace dg;

namespace {

constexpr int FIN_THREADS = 1024;

__device__ __forceinline__ void block_argmax(float &v, int &i, float *rv, int *ri) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    warp_argmax(v, i);
    __syncthreads();
    if (lane == 0) {
        rv[wid] = v;
        ri[wid] = i;
    }
    __syncthreads();
    if (lane < nw) {
        v = rv[lane];
        i = ri[lane];
    } else {
        v = -INFINITY;
        i = 0x7fffffff;
    }
    warp_argmax(v, i);
}

/* Row arg-max by the CPU's rules; every thread gets the result. */
__device__ int row_argmax(const float *x, int64_t vocab) {
    __shared__ float rv[32];
    __shared__ int ri[32];
    __shared__ int nan_flag;
    if (threadIdx.x == 0) nan_flag = 0;
    __syncthreads();
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    bool nan = false;
    /* The merge is order-independent (value, then lower index), so the row is read as 16-byte
     * vectors, 4 in flight per thread, where it is aligned; the rest element by element. */
    int64_t j0 = 0;
    if (((uintptr_t)x & 15) == 0) {
        const int64_t nv = vocab / 4;
        const float4 *x4 = (const float4 *)x;
        for (int64_t q0 = threadIdx.x; q0 < nv; q0 += 4 * (int64_t)blockDim.x) {
            float4 r[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                int64_t q = q0 + (int64_t)u * blockDim.x;
                r[u] = q < nv ? x4[q] : make_float4(NAN, NAN, NAN, NAN);
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                int64_t q = q0 + (int64_t)u * blockDim.x;
                if (q >= nv) break;
                const float e[4] = {r[u].x, r[u].y, r[u].z, r[u].w};
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    if (e[k] != e[k]) nan = true;
                    else argmax_merge(bv, bi, e[k], (int)(4 * q + k));
                }
            }
        }
        j0 = nv * 4;
    }
    for (int64_t j = j0 + threadIdx.x; j < vocab; j += blockDim.x) {
        float v = x[j];
        if (v != v) nan = true;
        else argmax_merge(bv, bi, v, (int)j);
    }
    if (nan) nan_flag = 1;
    block_argmax(bv, bi, rv, ri);
    __syncthreads();
    if (nan_flag) return -1;
    return bi == 0x7fffffff ? 0 : bi; /* all -inf: the CPU keeps index 0 */
}

__global__ void argmax_kernel(dg_argmax_args a) {
    pdl_enter();
    int64_t r = blockIdx.x;
    int v = row_argmax(a.logits + r * a.ld, a.vocab);
    if (threadIdx.x == 0) a.out[r] = v;
}

/* Inclusive block scan of one value per thread (double); total in *tot. `sm` is __shared__ double[33]. */
__device__ __forceinline__ double block_scan(double v, double *sm, double *tot) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        double n = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += n;
    }
    __syncthreads();
    if (lane == 31) sm[wid] = v;
    __syncthreads();
    if (wid == 0) {
        double w = lane < nw ? sm[lane] : 0.0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            double n = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += n;
        }
        if (lane < nw) sm[lane] = w;
    }
    __syncthreads();
    double add = wid > 0 ? sm[wid - 1] : 0.0;
    *tot = sm[nw - 1];
    return v + add;
}

__device__ __forceinline__ uint32_t desc_key(float z) {
    if (z == 0.f) z = 0.f; /* fold -0 */
    uint32_t u = __float_as_uint(z);
    uint32_t ord = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending with z */
    return ~ord;                                                 /* descending */
}

__global__ void sample_keys_kernel(dg_sample_args a, uint64_t *keys, int32_t *offsets) {
    int64_t r = blockIdx.y;
    float T = a.temperature[r];
    if (T == 0.f) T = 1.f;
    const float *x = a.logits + r * a.ld;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < a.vocab; j += (int64_t)gridDim.x * blockDim.x) {
        float z = x[j] / T;
        keys[r * a.vocab + j] = ((uint64_t)desc_key(z) << 32) | (uint32_t)j;
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        offsets[r] = (int32_t)(r * a.vocab);
        if (r == a.n - 1) offsets[a.n] = (int32_t)(a.n * a.vocab);
    }
}

__global__ void __launch_bounds__(FIN_THREADS) sample_finish_kernel(dg_sample_args a, const uint64_t *sorted, float *pbuf) {
    __shared__ double sm[33];
    __shared__ double red[32];
    __shared__ int found;
    const int64_t r = blockIdx.x;
    const float *x = a.logits + r * a.ld;
    const float T = a.temperature[r];
    if (T == 0.f) {
        int v = row_argmax(x, a.vocab);
        if (threadIdx.x == 0) a.out[r] = v;
        return;
    }
    const uint64_t *key = sorted + r * a.vocab;
    float *p = pbuf + r * a.vocab;
    int64_t n = a.vocab;
    int64_t K = a.top_k[r];
    if (K > 0 && K < n) n = K;
    const float zmax = x[(uint32_t)key[0]] / T;

    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float e = expf(x[(uint32_t)key[i]] / T - zmax);
        p[i] = e;
        s += e;
    }
    s = block_sum_d(s, red);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) p[i] = (float)(p[i] / s);
    __syncthreads();

    /* top_p: L = first i with cum_i >= top_p, plus one (n if never) */
    const float top_p = a.top_p[r];
    if (threadIdx.x == 0) found = (int)n;
    __syncthreads();
    double carry = 0.0;
    for (int64_t base = 0; base < n; base += blockDim.x) {
        int64_t i = base + threadIdx.x;
        double v = i < n ? p[i] : 0.0;
        double tot;
        double c = block_scan(v, sm, &tot) + carry;
        if (i < n && c >= top_p) atomicMin(&found, (int)(i + 1));
        carry += tot;
        __syncthreads();
        if (found < (int)n) break;
    }
    __syncthreads();
    int64_t L = found;
    /* min_p: first i < L with p_i < min_p * p_0 */
    const float thr = a.min_p[r] * p[0];
    __syncthreads();
    if (threadIdx.x == 0) found = (int)L;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x)
        if (p[i] < thr) atomicMin(&found, (int)i);
    __syncthreads();
    L = found < 1 ? 1 : found;
    /* renormalise and draw */
    double t = 0.0;
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) t += p[i];
    t = block_sum_d(t, red);
    const float u = a.uniform[r];
    __syncthreads();
    if (threadIdx.x == 0) found = (int)(L - 1);
    __syncthreads();
    carry = 0.0;
    for (int64_t base = 0; base < L; base += blockDim.x) {
        int64_t i = base + threadIdx.x;
        double v = i < L ? p[i] : 0.0;
        double tot;
        double c = (block_scan(v, sm, &tot) + carry) / t;
        if (i < L && c > u) atomicMin(&found, (int)i);
        carry += tot;
        __syncthreads();
        if (found < (int)(L - 1)) break;
    }
    __syncthreads();
    if (threadIdx.x == 0) a.out[r] = (int32_t)(uint32_t)key[found];
}

struct SampleLayout {
    int64_t keys_in, keys_out, p, offsets, temp, temp_bytes, total;
};

int64_t al(int64_t b) { return (b + 255) / 256 * 256; }

SampleLayout sample_layout(const dg_sample_args *a) {
    SampleLayout L{};
    int64_t items = a->n * a->vocab;
    size_t temp = 0;
    cub::DeviceSegmentedRadixSort::SortKeys(nullptr, temp, (const uint64_t *)nullptr, (uint64_t *)nullptr,
                                            (int)items, (int)a->n, (const int32_t *)nullptr,
                                            (const int32_t *)nullptr, 0, 64, (cudaStream_t)0);
    int64_t off = 0;
    L.keys_in = off; off += al(8 * items);
    L.keys_out = off; off += al(8 * items);
    L.p = off; off += al(4 * items);
    L.offsets = off; off += al(4 * (a->n + 1));
    L.temp = off; off += al((int64_t)temp);
    L.temp_bytes = (int64_t)temp;
    L.total = off;
    return L;
}

}  // namespace

extern "C" {

DG_API dg_status dg_argmax(const dg_argmax_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_argmax");
    DG_REQUIRE(a->n >= 0 && a->vocab > 0 && a->vocab <= INT32_MAX && a->ld >= a->vocab,
               "dg_argmax: n %lld, vocab %lld, ld %lld", (long long)a->n, (long long)a->vocab, (long long)a->ld);
    if (a->n == 0) return DG_OK;
    DG_REQUIRE(a->logits && a->out, "dg_argmax: NULL pointer");
    DG_REQUIRE(a->n <= INT32_MAX, "dg_argmax: n too large");
    launch_pdl(argmax_kernel, (unsigned)a->n, 1024, 0, stream_of(s), *a);
    DG_LAUNCHED("argmax_kernel");
    return DG_OK;
}

DG_API int64_t dg_sample_workspace_size(const dg_sample_args *a) {
    bind_device(); /* CUB sizes its temp storage for the current device */
    if (!a || a->n <= 0 || a->vocab <= 0) return 0;
    return sample_layout(a).total;
}

DG_API dg_status dg_sample(const dg_sample_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_sample");
    DG_REQUIRE(a->n >= 0 && a->vocab > 0 && a->ld >= a->vocab, "dg_sample: n %lld, vocab %lld, ld %lld",
               (long long)a->n, (long long)a->vocab, (long long)a->ld);
    if (a->n == 0) return DG_OK;
    if (a->n * a->vocab > INT32_MAX)
        return fail(DG_ERR_UNSUPPORTED, "dg_sample: n * vocab = %lld > 2^31 per call", (long long)(a->n * a->vocab));
    DG_REQUIRE(a->n <= 65535, "dg_sample: n %lld > 65535", (long long)a->n);
    DG_REQUIRE(a->logits && a->temperature && a->top_k && a->top_p && a->min_p && a->uniform && a->out,
               "dg_sample: NULL pointer");
    DG_REQUIRE(a->workspace != nullptr, "dg_sample: needs a workspace of %lld bytes",
               (long long)dg_sample_workspace_size(a));
    SampleLayout L = sample_layout(a);
    char *ws = (char *)a->workspace;
    uint64_t *kin = (uint64_t *)(ws + L.keys_in), *kout = (uint64_t *)(ws + L.keys_out);
    int32_t *offsets = (int32_t *)(ws + L.offsets);
    float *p = (float *)(ws + L.p);
    cudaStream_t cs = stream_of(s);
    dim3 kg((unsigned)std::min<int64_t>(ceil_div(a->vocab, 256), 1024), (unsigned)a->n);
    sample_keys_kernel<<<kg, 256, 0, cs>>>(*a, kin, offsets);
    DG_LAUNCHED("sample_keys_kernel");
    size_t temp = (size_t)L.temp_bytes;
    DG_CUDA(cub::DeviceSegmentedRadixSort::SortKeys(ws + L.temp, temp, kin, kout, (int)(a->n * a->vocab), (int)a->n,
                                                    offsets, offsets + 1, 0, 64, cs));
    sample_finish_kernel<<<(unsigned)a->n, FIN_THREADS, 0, cs>>>(*a, kout, p);
    DG_LAUNCHED("sample_finish_kernel");
    return DG_OK;
}

}  // extern "C"
