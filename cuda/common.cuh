/*
 * common.cuh: what every cuda/*.cu shares.
 *
 *   - the per-thread error message behind dg_last_error() and the macros that turn a CUDA
 *     status into DG_ERR_DEVICE / DG_ERR_NOMEM with a message naming the call;
 *   - element conversions: f32 <-> bf16 <-> f16 (round to nearest even), e4m3fn -> f32
 *     (exact: every e4m3 value is a bf16 value), f32 -> e4m3fn (nearest even, saturating at 448);
 *   - typed loads/stores selected at run time by dg_dtype (ld_elem / st_elem) or at compile time
 *     (to_f32 / from_f32 on float, __nv_bfloat16, __half, fp8_t);
 *   - the fp8 weight dequantisation W[i,j] = e4m3(q[i,j]) * scale[i/br][j/bc] (w_elem);
 *   - warp and block reductions.
 *
 * No kernel here allocates, copies to the host or synchronises: launches are checked with
 * cudaGetLastError (cheap, no sync), so every dg_<op> may be captured in a CUDA graph.
 */
#pragma once

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>
#include <stdio.h>
#include <stdarg.h>
#include <math.h>
#include <algorithm>
#include <atomic>
#include <utility>

#include "deepgo_kernels.h"

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */
namespace dg {

/* Defined in runtime.cu: the calling thread's last message. */
void set_error_v(const char *fmt, va_list ap);

static inline dg_status fail(dg_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_error_v(fmt, ap);
    va_end(ap);
    return st;
}

static inline dg_status cuda_status(cudaError_t e) {
    return e == cudaErrorMemoryAllocation ? DG_ERR_NOMEM : DG_ERR_DEVICE;
}

}  // namespace dg

/* Check a CUDA runtime call; on failure return DG_ERR_DEVICE/DG_ERR_NOMEM with a message. */
#define DG_CUDA(call)                                                                          \
    do {                                                                                       \
        cudaError_t dg_e_ = (call);                                                            \
        if (dg_e_ != cudaSuccess) {                                                            \
            return dg::fail(dg::cuda_status(dg_e_), "%s failed: %s (%s) at %s:%d", #call,      \
                            cudaGetErrorString(dg_e_), cudaGetErrorName(dg_e_), __FILE__,      \
                            __LINE__);                                                         \
        }                                                                                      \
    } while (0)

/* After a <<<>>> launch: report a launch error (bad configuration, no kernel image). */
#define DG_LAUNCHED(name)                                                                      \
    do {                                                                                       \
        cudaError_t dg_e_ = cudaGetLastError();                                                \
        if (dg_e_ != cudaSuccess) {                                                            \
            return dg::fail(dg::cuda_status(dg_e_), "launch of %s failed: %s (%s)", name,      \
                            cudaGetErrorString(dg_e_), cudaGetErrorName(dg_e_));               \
        }                                                                                      \
    } while (0)

#define DG_REQUIRE(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) return dg::fail(DG_ERR_INVALID, __VA_ARGS__);                            \
    } while (0)

#define DG_NOT_NULL(p, op)                                                                     \
    DG_REQUIRE((p) != nullptr, "%s: %s is NULL", op, #p)

namespace dg {

/* The device chosen by dg_init applies to the calling OS thread only (CUDA's rule), and Go moves
 * goroutines between threads: every entry point that touches the device first makes the
 * library's device current on the calling thread (one cudaSetDevice per thread, then a compare).
 * One device per process. */
void bind_device();

static inline cudaStream_t stream_of(dg_stream s) {
    bind_device();
    return (cudaStream_t)s;
}

/* An attribute of the current device, or fallback when it cannot be read. Callers that ask per
 * launch cache it in a function-local static (one device per process). */
static inline int device_attr(cudaDeviceAttr attr, int fallback) {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, attr, dev) != cudaSuccess) return fallback;
    return v;
}

/* Lets Kernel launch with bytes of dynamic shared memory. Set on the first call whatever the size:
 * the default limit is 48 KB less the kernel's static shared memory, so a kernel with some of
 * its own can fail below 48 KB (moe_gemm_fast_kernel does). The largest size set so far is kept
 * per kernel, so repeated launches and graph captures skip the call (one device per process). */
template <auto Kernel>
dg_status opt_in_smem(size_t bytes, const char *name) {
    static std::atomic<size_t> opted{0};
    if (bytes <= opted.load(std::memory_order_relaxed)) return DG_OK;
    const int optin = device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    if ((size_t)optin < bytes)
        return fail(DG_ERR_UNSUPPORTED, "%s needs %zu bytes of shared memory, the device allows %d", name, bytes,
                    optin);
    DG_CUDA(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    opted.store(bytes, std::memory_order_relaxed);
    return DG_OK;
}

static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Whether a wgmma kernel (sm_90a code only) can run here: compute capability 9.0, smem bytes of
 * shared memory per block, and the loaded code the real kernel. A library built without sm_90a
 * (DEEPGO_CUDA_ARCHS 80 or 90, say) carries only the trap stub, JIT-compiled from PTX: a handful
 * of registers where the real kernels hold their accumulators (over a hundred), so fewer than 64
 * means the stub. Callers cache the answer (one device per process). */
static inline bool sm90a_kernel_ok(const void *kernel, size_t smem) {
    bind_device();
    if (device_attr(cudaDevAttrComputeCapabilityMajor, 0) != 9 || device_attr(cudaDevAttrComputeCapabilityMinor, -1) != 0)
        return false;
    if ((size_t)device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) < smem) return false;
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes(&fa, kernel) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return fa.numRegs >= 64;
}

static inline bool is_act_dtype(int32_t t) { return t == DG_F32 || t == DG_BF16; }
static inline bool is_float_dtype(int32_t t) { return t == DG_F32 || t == DG_BF16 || t == DG_F16; }
static inline const char *dtype_name(int32_t t) {
    switch (t) {
    case DG_F32: return "F32";
    case DG_BF16: return "BF16";
    case DG_F16: return "F16";
    case DG_F8E4M3: return "F8E4M3";
    case DG_I32: return "I32";
    }
    return "dtype?";
}
static inline int64_t dtype_size(int32_t t) {
    switch (t) {
    case DG_F32: case DG_I32: return 4;
    case DG_BF16: case DG_F16: return 2;
    case DG_F8E4M3: return 1;
    }
    return 0;
}

/* Validate a weight descriptor (host side). */
dg_status check_weight(const dg_weight &w, const char *op, bool allow_fp8);

/* ---------------------------------------------------------------------------------------------
 * Element conversions (device)
 * ------------------------------------------------------------------------------------------- */
struct fp8_t {
    uint8_t v;
};

__device__ __forceinline__ float e4m3_to_f32(uint8_t b) {
    /* float8 e4m3fn: s eeee mmm, bias 7, no infinities, 0x7f/0xff NaN. */
    __nv_fp8_e4m3 q;
    q.__x = b;
    return (float)q;
}

/* Two e4m3 values (the low byte is the first) to f32, exact (every e4m3 value is an f16 value):
 * one cvt.rn.f16x2.e4m3x2 (sm_89+; the high byte goes to the high half) and two f16 -> f32,
 * instead of a conversion per element. */
__device__ __forceinline__ float2 e4m3x2_to_f32x2(uint16_t pair) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    uint32_t h;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h) : "h"(pair));
    return __half22float2(*(const __half2 *)&h);
#else
    return make_float2(e4m3_to_f32((uint8_t)(pair & 0xff)), e4m3_to_f32((uint8_t)(pair >> 8)));
#endif
}

/* A 16-byte chunk of 16 e4m3 values to f32, in order. */
__device__ __forceinline__ void e4m3x16_to_f32(const uint4 &raw, float (&f)[16]) {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int q = 0; q < 4; q++) {
        float2 a = e4m3x2_to_f32x2((uint16_t)(w[q] & 0xffffu));
        float2 b = e4m3x2_to_f32x2((uint16_t)(w[q] >> 16));
        f[4 * q + 0] = a.x;
        f[4 * q + 1] = a.y;
        f[4 * q + 2] = b.x;
        f[4 * q + 3] = b.y;
    }
}

__device__ __forceinline__ uint8_t f32_to_e4m3(float f) {
    return (uint8_t)__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3);
}

/* One 16-lane group's quantisation of 128 channels (8 per lane, v) with act_quant's arithmetic
 * (the W8A8 GEMM's x quantisation and the W8A8 GEMV tile's):
 * s = amax / 448, q = e4m3(x / s) (satfinite, round to nearest; division, as the emulation and the
 * wgmma path), q = 0 and s = 0 for an all-zero block. Returns the lane's 8 codes; s in *sc. */
__device__ __forceinline__ uint2 act_quant8(const float (&v)[8], float *sc) {
    const unsigned gmask = 0xFFFFu << (threadIdx.x & 16);
    float amax = 0.f;
#pragma unroll
    for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(v[e]));
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(gmask, amax, o));
    const float s = amax / 448.f;
    *sc = s;
    uint2 packed = make_uint2(0u, 0u);
    if (amax > 0.f) {
        uint32_t p[4];
#pragma unroll
        for (int e = 0; e < 4; e++)
            p[e] = (uint32_t)__nv_cvt_float2_to_fp8x2(make_float2(v[2 * e] / s, v[2 * e + 1] / s), __NV_SATFINITE,
                                                      __NV_E4M3);
        packed.x = p[0] | (p[1] << 16), packed.y = p[2] | (p[3] << 16);
    }
    return packed;
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(fp8_t v) { return e4m3_to_f32(v.v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

/* Run-time typed access: dtype is uniform across a launch, so the branch is cheap. */
__device__ __forceinline__ float ld_elem(const void *p, int32_t dtype, int64_t i) {
    switch (dtype) {
    case DG_F32: return ((const float *)p)[i];
    case DG_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case DG_F16: return __half2float(((const __half *)p)[i]);
    case DG_F8E4M3: return e4m3_to_f32(((const uint8_t *)p)[i]);
    }
    return 0.f;
}

__device__ __forceinline__ void st_elem(void *p, int32_t dtype, int64_t i, float v) {
    switch (dtype) {
    case DG_F32: ((float *)p)[i] = v; break;
    case DG_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    case DG_F16: ((__half *)p)[i] = __float2half_rn(v); break;
    }
}

/* Round v to what a store in dtype would keep (F32: unchanged). */
__device__ __forceinline__ float round_to(int32_t dtype, float v) {
    switch (dtype) {
    case DG_BF16: return __bfloat162float(__float2bfloat16_rn(v));
    case DG_F16: return __half2float(__float2half_rn(v));
    }
    return v;
}

/* W[i, j] of a weight descriptor, dequantised to f32. */
__device__ __forceinline__ float w_elem(const dg_weight &w, int64_t i, int64_t j) {
    float v = ld_elem(w.data, w.dtype, i * w.ld + j);
    if (w.dtype == DG_F8E4M3) {
        int64_t ncb = (w.cols + w.block_cols - 1) / w.block_cols;
        v *= w.scale[(i / w.block_rows) * ncb + j / w.block_cols];
    }
    return v;
}

/* dg_rope's rotation of one interleaved pair (x0, x1) at position pos: the angle is a float32
 * product, cos and sin are scaled by mscale. rope_kernel and mla_prep_kernel share it so that the
 * fused op rounds exactly as the op it replaces. */
__device__ __forceinline__ float2 rope_rotate(float x0, float x1, int32_t pos, float inv_freq, float mscale) {
    float angle = (float)pos * inv_freq;
    float c = cosf(angle) * mscale, s = sinf(angle) * mscale;
    return make_float2(x0 * c - x1 * s, x0 * s + x1 * c);
}

/* 16-byte streaming load of read-once data (weights): not kept in L1. p 16-byte aligned. */
__device__ __forceinline__ uint4 ld_stream16(const void *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * Reductions
 * ------------------------------------------------------------------------------------------- */
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* dg_rmsnorm's row layout, shared with dg_mla_prep (which must repeat its float order): up to
 * RMS_PER columns per thread stay in registers; the block size for a row of dim columns. */
constexpr int RMS_PER = 8;
__host__ __device__ inline int rmsnorm_threads(int64_t dim) {
    return dim > 256 * RMS_PER && dim <= 1024 * RMS_PER ? 1024 : 256;
}

/* Block-wide sum; every thread gets the result. blockDim.x a multiple of 32, <= 1024.
 * `red` is __shared__ float[32]. */
__device__ __forceinline__ float block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.f;
    v = warp_sum(v);
    return v;
}
__device__ __forceinline__ double block_sum_d(double v, double *red) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0;
    v = warp_sum_d(v);
    return v;
}
__device__ __forceinline__ float block_max(float v, float *red) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    v = warp_max(v);
    return v;
}

/* (value, index) arg-max: larger value wins, equal values go to the lower index. */
__device__ __forceinline__ void argmax_merge(float &v, int &i, float v2, int i2) {
    if (v2 > v || (v2 == v && i2 < i)) {
        v = v2;
        i = i2;
    }
}
__device__ __forceinline__ void warp_argmax(float &v, int &i) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, i, o);
        argmax_merge(v, i, v2, i2);
    }
}

}  // namespace dg

/* ---------------------------------------------------------------------------------------------
 * Programmatic dependent launch (sm_90+). A decode step is ~250 short kernels in a row; with
 * plain stream order each one starts only after its predecessor has drained, and its blocks
 * then ramp up from nothing. A kernel launched by launch_pdl() may be scheduled while its
 * predecessor still runs: it does what needs no earlier result (an L2 prefetch of its own
 * weights), then pdl_enter() waits until every earlier kernel has completed and its writes are
 * visible, and lets its own successor be scheduled. The trigger comes after the wait, so at most
 * one kernel is waiting ahead of the running one.
 *
 * Rules: a kernel launched by launch_pdl() calls pdl_enter() before its first access to memory
 * that another kernel writes or reads (weights are read-only and may be touched earlier), and
 * on every path (a block may return before it: an exit counts as the trigger). On sm_80/89 the
 * calls compile to nothing and launch_pdl() launches plainly. DEEPGO_PDL=0 turns it off.
 * ------------------------------------------------------------------------------------------- */
namespace dg {

__device__ __forceinline__ void pdl_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* Asynchronous prefetch of [p, p + bytes) into L2 (the TMA unit; no registers, no wait).
 * p and bytes are rounded inwards to 16 bytes, as the instruction requires. */
__device__ __forceinline__ void prefetch_l2(const void *p, int64_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    uintptr_t a = ((uintptr_t)p + 15) & ~(uintptr_t)15;
    int64_t n = (bytes - (int64_t)(a - (uintptr_t)p)) & ~(int64_t)15;
    while (n > 0) {
        uint32_t c = (uint32_t)(n < (1 << 20) ? n : (1 << 20));
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(a), "r"(c) : "memory");
        a += c;
        n -= c;
    }
#else
    (void)p;
    (void)bytes;
#endif
}

/* Whether launch_pdl() asks for programmatic serialisation: the current device is sm_90+ and
 * DEEPGO_PDL is not "0". Defined in runtime.cu; read once per device. */
bool pdl_on();

/* kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialisation when
 * pdl_on(). The kernel must follow the rules above. Errors surface through cudaGetLastError
 * (DG_LAUNCHED) like a <<<>>> launch. */
template <typename... KArgs, typename... Args>
static inline void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                              Args &&...args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_on() ? 1 : 0;
    (void)cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace dg
