/*
 * elementwise.cu: the memory-bound ops that move or convert rows.
 *
 *   embed      out[t, :] = table[ids[t], :] in out_dtype; an id outside [0, rows) gives zeros.
 *              One block per token, threads over columns.
 *   silu_mul   out = silu(gate) * up, silu(x) = x / (1 + exp(-x)), in f32, rounded once to dtype.
 *              Grid (column chunks, rows).
 *   rope       interleaved pairs (x[2i], x[2i+1]) rotated by pos[t] * inv_freq[i] (the angle is a
 *              float32 product, as the contract says; cosf/sinf with full range reduction),
 *              cos/sin scaled by mscale. One thread per (token, head, pair), in place.
 *   kv_store   cache[slots[t], :width] = src[t, :width] (slots < 0 skipped); grid (cols, tokens).
 *   kv_gather  dst[p, :] = cache[block_table[p / bs] * bs + p % bs, :].
 *   convert    dst[i] = src[i]: F32/BF16/F16 both ways, F8E4M3 -> F32/BF16/F16; round to nearest
 *              even. Grid-stride loop.
 *
 * Layouts: row-major with the strides of the args (elements). All accept F32 and BF16 (and F16
 * where the contract allows).
 * Test: go test ./tests/kernels -run 'Embed|SiluMul|Rope|KV|Convert' -v
 */
#include "common.cuh"

using namespace dg;

namespace {

/* A thread's elements in batches of EMB_BATCH, every load of a batch before its stores: loads and
 * stores interleaved one by one wait a DRAM round trip each (the compiler cannot move a load above
 * a store that might alias it), 14 us for one DeepSeek-V3 row (7168) on the H100. */
constexpr int EMB_BATCH = 8;

__global__ void embed_kernel(dg_embed_args a) {
    pdl_enter();
    int64_t t = blockIdx.x;
    int32_t id = a.ids[t];
    bool ok = id >= 0 && id < a.table.rows;
    const int64_t step = (int64_t)blockDim.x * EMB_BATCH;
    for (int64_t j0 = threadIdx.x; j0 < a.table.cols; j0 += step) {
        float v[EMB_BATCH];
#pragma unroll
        for (int k = 0; k < EMB_BATCH; k++) {
            const int64_t j = j0 + (int64_t)k * blockDim.x;
            v[k] = ok && j < a.table.cols ? ld_elem(a.table.data, a.table.dtype, (int64_t)id * a.table.ld + j) : 0.f;
        }
#pragma unroll
        for (int k = 0; k < EMB_BATCH; k++) {
            const int64_t j = j0 + (int64_t)k * blockDim.x;
            if (j < a.table.cols) st_elem(a.out, a.out_dtype, t * a.ld_out + j, v[k]);
        }
    }
}

template <typename T>
__global__ void silu_mul_kernel(dg_silu_mul_args a) {
    pdl_enter();
    int64_t t = blockIdx.y;
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= a.dim) return;
    float g = to_f32(((const T *)a.gate)[t * a.ld_gate + j]);
    float u = to_f32(((const T *)a.up)[t * a.ld_up + j]);
    float s = g / (1.f + expf(-g));
    ((T *)a.out)[t * a.ld_out + j] = from_f32<T>(s * u);
}

template <typename T>
__global__ void rope_kernel(dg_rope_args a) {
    pdl_enter();
    int64_t half = a.rope_dim / 2;
    int64_t total = a.n_tok * a.n_heads * half;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = idx % half;
        int64_t h = (idx / half) % a.n_heads;
        int64_t t = idx / (half * a.n_heads);
        T *p = (T *)a.x + t * a.ld_tok + h * a.ld_head + a.offset;
        float2 r = rope_rotate(to_f32(p[2 * i]), to_f32(p[2 * i + 1]), a.pos[t], a.inv_freq[i], a.mscale);
        p[2 * i] = from_f32<T>(r.x);
        p[2 * i + 1] = from_f32<T>(r.y);
    }
}

__global__ void kv_store_kernel(dg_kv_store_args a) {
    pdl_enter();
    int64_t t = blockIdx.y;
    int32_t slot = a.slots[t];
    if (slot < 0) return;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < a.width;
         j += (int64_t)gridDim.x * blockDim.x) {
        float v = ld_elem(a.src, a.src_dtype, t * a.ld_src + j);
        st_elem(a.cache, a.cache_dtype, (int64_t)slot * a.width + j, v);
    }
}

__global__ void kv_gather_kernel(dg_kv_gather_args a) {
    int64_t p = blockIdx.y;
    int64_t blk = a.block_table[p / a.block_size];
    int64_t row = blk * a.block_size + p % a.block_size;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < a.width;
         j += (int64_t)gridDim.x * blockDim.x) {
        float v = ld_elem(a.cache, a.cache_dtype, row * a.width + j);
        st_elem(a.dst, a.dst_dtype, p * a.ld_dst + j, v);
    }
}

__global__ void convert_kernel(dg_convert_args a) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < a.n;
         i += (int64_t)gridDim.x * blockDim.x) {
        st_elem(a.dst, a.dst_dtype, i, ld_elem(a.src, a.src_dtype, i));
    }
}

int grid_for(int64_t n, int threads, int cap = 65535 * 4) {
    int64_t g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    if (g > cap) g = cap;
    return (int)g;
}

}  // namespace

extern "C" {

DG_API dg_status dg_embed(const dg_embed_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_embed");
    dg_status st = check_weight(a->table, "dg_embed", false);
    if (st) return st;
    DG_REQUIRE(a->n >= 0 && a->ld_out >= a->table.cols, "dg_embed: n %lld, ld_out %lld < cols %lld",
               (long long)a->n, (long long)a->ld_out, (long long)a->table.cols);
    DG_REQUIRE(is_float_dtype(a->out_dtype), "dg_embed: out_dtype %s", dtype_name(a->out_dtype));
    if (a->n == 0 || a->table.cols == 0) return DG_OK;
    DG_REQUIRE(a->n <= INT32_MAX, "dg_embed: n too large");
    DG_NOT_NULL(a->ids, "dg_embed");
    DG_NOT_NULL(a->out, "dg_embed");
    int threads = a->table.cols >= 2048 ? 1024 : a->table.cols >= 256 ? 256 : 64;
    launch_pdl(embed_kernel, (unsigned)a->n, threads, 0, stream_of(s), *a);
    DG_LAUNCHED("embed_kernel");
    return DG_OK;
}

DG_API dg_status dg_silu_mul(const dg_silu_mul_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_silu_mul");
    DG_REQUIRE(is_act_dtype(a->dtype), "dg_silu_mul: dtype %s (F32 or BF16)", dtype_name(a->dtype));
    DG_REQUIRE(a->n >= 0 && a->dim >= 0, "dg_silu_mul: negative shape");
    if (a->n == 0 || a->dim == 0) return DG_OK;
    DG_REQUIRE(a->n <= 65535, "dg_silu_mul: n %lld > 65535 rows per call", (long long)a->n);
    DG_REQUIRE(a->gate && a->up && a->out, "dg_silu_mul: NULL pointer");
    dim3 grid((unsigned)ceil_div(a->dim, 256), (unsigned)a->n);
    if (a->dtype == DG_F32)
        launch_pdl(silu_mul_kernel<float>, grid, 256, 0, stream_of(s), *a);
    else
        launch_pdl(silu_mul_kernel<__nv_bfloat16>, grid, 256, 0, stream_of(s), *a);
    DG_LAUNCHED("silu_mul_kernel");
    return DG_OK;
}

DG_API dg_status dg_rope(const dg_rope_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_rope");
    DG_REQUIRE(is_act_dtype(a->dtype), "dg_rope: dtype %s (F32 or BF16)", dtype_name(a->dtype));
    DG_REQUIRE(a->rope_dim >= 0 && a->rope_dim % 2 == 0, "dg_rope: rope_dim %d must be even",
               a->rope_dim);
    DG_REQUIRE(a->n_tok >= 0 && a->n_heads >= 0 && a->offset >= 0, "dg_rope: negative shape");
    int64_t total = a->n_tok * a->n_heads * (a->rope_dim / 2);
    if (total == 0) return DG_OK;
    DG_REQUIRE(a->x && a->pos && a->inv_freq, "dg_rope: NULL pointer");
    int g = grid_for(total, 256);
    if (a->dtype == DG_F32)
        launch_pdl(rope_kernel<float>, g, 256, 0, stream_of(s), *a);
    else
        launch_pdl(rope_kernel<__nv_bfloat16>, g, 256, 0, stream_of(s), *a);
    DG_LAUNCHED("rope_kernel");
    return DG_OK;
}

DG_API dg_status dg_kv_store(const dg_kv_store_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_kv_store");
    DG_REQUIRE(is_float_dtype(a->src_dtype), "dg_kv_store: src_dtype %s", dtype_name(a->src_dtype));
    DG_REQUIRE(is_act_dtype(a->cache_dtype), "dg_kv_store: cache_dtype %s (F32 or BF16)",
               dtype_name(a->cache_dtype));
    DG_REQUIRE(a->n >= 0 && a->width >= 0 && a->ld_src >= a->width, "dg_kv_store: bad shape");
    if (a->n == 0 || a->width == 0) return DG_OK;
    DG_REQUIRE(a->n <= 65535, "dg_kv_store: n %lld > 65535 rows per call", (long long)a->n);
    DG_REQUIRE(a->src && a->slots && a->cache, "dg_kv_store: NULL pointer");
    dim3 grid((unsigned)ceil_div(a->width, 256), (unsigned)a->n);
    launch_pdl(kv_store_kernel, grid, 256, 0, stream_of(s), *a);
    DG_LAUNCHED("kv_store_kernel");
    return DG_OK;
}

DG_API dg_status dg_kv_gather(const dg_kv_gather_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_kv_gather");
    DG_REQUIRE(is_act_dtype(a->cache_dtype) && is_float_dtype(a->dst_dtype),
               "dg_kv_gather: cache_dtype %s, dst_dtype %s", dtype_name(a->cache_dtype),
               dtype_name(a->dst_dtype));
    DG_REQUIRE(a->block_size > 0, "dg_kv_gather: block_size %d", a->block_size);
    DG_REQUIRE(a->n >= 0 && a->width >= 0 && a->ld_dst >= a->width, "dg_kv_gather: bad shape");
    if (a->n == 0 || a->width == 0) return DG_OK;
    DG_REQUIRE(a->n <= 65535, "dg_kv_gather: n %lld > 65535 positions per call", (long long)a->n);
    DG_REQUIRE(a->cache && a->block_table && a->dst, "dg_kv_gather: NULL pointer");
    dim3 grid((unsigned)ceil_div(a->width, 256), (unsigned)a->n);
    kv_gather_kernel<<<grid, 256, 0, stream_of(s)>>>(*a);
    DG_LAUNCHED("kv_gather_kernel");
    return DG_OK;
}

DG_API dg_status dg_convert(const dg_convert_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_convert");
    bool src_ok = is_float_dtype(a->src_dtype) || a->src_dtype == DG_F8E4M3;
    DG_REQUIRE(src_ok && is_float_dtype(a->dst_dtype), "dg_convert: %s -> %s not supported",
               dtype_name(a->src_dtype), dtype_name(a->dst_dtype));
    DG_REQUIRE(a->n >= 0, "dg_convert: negative n");
    if (a->n == 0) return DG_OK;
    DG_REQUIRE(a->src && a->dst, "dg_convert: NULL pointer");
    convert_kernel<<<grid_for(a->n, 256), 256, 0, stream_of(s)>>>(*a);
    DG_LAUNCHED("convert_kernel");
    return DG_OK;
}

}  // extern "C"
