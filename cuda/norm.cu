/*
 * norm.cu: rmsnorm fused with the residual add.
 *
 *   if residual: x[t, :] = round_x(x[t, :] + residual[t, :])      (stored back: the residual stream)
 *   r = rsqrt(sum(x^2) / dim + eps)                                (f32)
 *   out[t, :] = round_out(w * round_x(x * r))                      (transformers' order)
 *
 * One block (256 threads) per row; pass 1 adds the residual, stores x and sums squares; pass 2
 * re-reads the elements the same thread wrote (so out may alias x). Each thread owns columns
 * j = tid, tid + 256, ..., so no element is read by one thread after another wrote it.
 * Variants: x F32/BF16, weight F32/BF16/F16, out F32/BF16 (run-time dtype, uniform branches).
 * Rows of up to 8192 columns (every DeepSeek width) take rmsnorm_reg_kernel: x typed, each
 * thread's 8 columns (same j = tid + k * threads as above) loaded at once into registers with
 * their residual and weight before any store (the generic loop's store to x serialises its
 * loads, which may alias), then one reduction and the stores. Same rounding, same per-thread
 * order; 256 threads up to 2048 columns, else 1024.
 * Test: go test ./tests/kernels -run RMSNorm -v
 */
#include "common.cuh"

using namespace dg;

namespace {

__global__ void rmsnorm_kernel(dg_rmsnorm_args a) {
    __shared__ float red[32];
    pdl_enter();
    int64_t t = blockIdx.x;
    int64_t xo = t * a.ld_x;
    float ss = 0.f;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
        float v = ld_elem(a.x, a.x_dtype, xo + j);
        if (a.residual) {
            v = round_to(a.x_dtype, v + ld_elem(a.residual, a.x_dtype, t * a.ld_residual + j));
            st_elem(a.x, a.x_dtype, xo + j, v);
        }
        ss += v * v;
    }
    ss = block_sum(ss, red);
    float r = rsqrtf(ss / (float)a.dim + a.eps);
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
        float v = ld_elem(a.x, a.x_dtype, xo + j);
        float nv = round_to(a.x_dtype, v * r);
        float w = ld_elem(a.weight, a.w_dtype, j);
        st_elem(a.out, a.out_dtype, t * a.ld_out + j, w * nv);
    }
}

template <typename XT>
__global__ void rmsnorm_reg_kernel(dg_rmsnorm_args a) {
    __shared__ float red[32];
    const int64_t t = blockIdx.x;
    XT *xr = (XT *)a.x + t * a.ld_x;
    const XT *rr = a.residual ? (const XT *)a.residual + t * a.ld_residual : nullptr;
    float v[RMS_PER], r[RMS_PER], w[RMS_PER];
    /* the weight is read-only: loaded while the previous kernel finishes */
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * blockDim.x;
        w[k] = j < a.dim ? ld_elem(a.weight, a.w_dtype, j) : 0.f;
    }
    pdl_enter();
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * blockDim.x;
        v[k] = r[k] = 0.f;
        if (j < a.dim) {
            v[k] = to_f32(xr[j]);
            if (rr) r[k] = to_f32(rr[j]);
        }
    }
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * blockDim.x;
        if (j < a.dim) {
            if (rr) {
                v[k] = round_to(a.x_dtype, v[k] + r[k]);
                xr[j] = from_f32<XT>(v[k]);
            }
            ss += v[k] * v[k];
        }
    }
    ss = block_sum(ss, red);
    const float rs = rsqrtf(ss / (float)a.dim + a.eps);
#pragma unroll
    for (int k = 0; k < RMS_PER; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * blockDim.x;
        if (j < a.dim) st_elem(a.out, a.out_dtype, t * a.ld_out + j, w[k] * round_to(a.x_dtype, v[k] * rs));
    }
}

}  // namespace

extern "C" DG_API dg_status dg_rmsnorm(const dg_rmsnorm_args *a, dg_stream s) {
    DG_NOT_NULL(a, "dg_rmsnorm");
    DG_REQUIRE(is_act_dtype(a->x_dtype), "dg_rmsnorm: x_dtype %s (F32 or BF16)", dtype_name(a->x_dtype));
    DG_REQUIRE(is_float_dtype(a->w_dtype), "dg_rmsnorm: w_dtype %s", dtype_name(a->w_dtype));
    DG_REQUIRE(is_act_dtype(a->out_dtype), "dg_rmsnorm: out_dtype %s (F32 or BF16)",
               dtype_name(a->out_dtype));
    DG_REQUIRE(a->n >= 0 && a->dim >= 0, "dg_rmsnorm: negative shape");
    DG_REQUIRE(a->ld_x >= a->dim && a->ld_out >= a->dim, "dg_rmsnorm: ld_x %lld / ld_out %lld < dim %lld",
               (long long)a->ld_x, (long long)a->ld_out, (long long)a->dim);
    DG_REQUIRE(!a->residual || a->ld_residual >= a->dim, "dg_rmsnorm: ld_residual < dim");
    if (a->n == 0 || a->dim == 0) return DG_OK;
    DG_REQUIRE(a->x && a->weight && a->out, "dg_rmsnorm: NULL pointer");
    DG_REQUIRE(a->n <= INT32_MAX, "dg_rmsnorm: n too large");
    if (a->dim <= 1024 * RMS_PER) {
        const int threads = rmsnorm_threads(a->dim);
        if (a->x_dtype == DG_BF16)
            launch_pdl(rmsnorm_reg_kernel<__nv_bfloat16>, (unsigned)a->n, threads, 0, stream_of(s), *a);
        else
            launch_pdl(rmsnorm_reg_kernel<float>, (unsigned)a->n, threads, 0, stream_of(s), *a);
        DG_LAUNCHED("rmsnorm_reg_kernel");
        return DG_OK;
    }
    launch_pdl(rmsnorm_kernel, (unsigned)a->n, 256, 0, stream_of(s), *a);
    DG_LAUNCHED("rmsnorm_kernel");
    return DG_OK;
}
