/*
 * runtime.cu: the library and device-runtime half of include/deepgo_kernels.h over the CUDA
 * runtime API: version, name, last error, device count/selection, memory info, device name,
 * device and pinned-host allocation, memcpy/memset on a stream, streams.
 *
 * Every CUDA call's status is checked: cudaErrorMemoryAllocation becomes DG_ERR_NOMEM, anything
 * else DG_ERR_DEVICE, and the calling thread's message (dg_last_error) names the call and the
 * CUDA error. dg_malloc's message also says how many bytes were asked and how many are free.
 * dg_memcpy and dg_memset are asynchronous on the given stream (cudaMemcpyAsync/cudaMemsetAsync);
 * a D2H copy into pageable memory completes before the call returns (CUDA's own rule), and
 * Go's Download calls dg_stream_sync afterwards in any case.
 * dg_init records the device for the whole library: each entry point makes it current on the
 * calling OS thread (Go moves goroutines between threads). One device per process for now.
 *
 * Test: go test ./tests/kernels -run Runtime  (on a machine with a GPU and build/cuda built).
 */
#include "common.cuh"
#include <stdlib.h>

#include <string.h>

namespace dg {

static thread_local char g_msg[1024];
static int g_device = -1;              /* set by dg_init */
static thread_local int t_device = -1; /* what this thread has made current */

void bind_device() {
    int d = __atomic_load_n(&g_device, __ATOMIC_ACQUIRE);
    if (d >= 0 && t_device != d) {
        if (cudaSetDevice(d) == cudaSuccess) t_device = d;
    }
}

void set_error_v(const char *fmt, va_list ap) { vsnprintf(g_msg, sizeof g_msg, fmt, ap); }

dg_status check_weight(const dg_weight &w, const char *op, bool allow_fp8) {
    DG_REQUIRE(w.data != nullptr, "%s: weight data is NULL", op);
    DG_REQUIRE(w.rows >= 0 && w.cols >= 0, "%s: weight shape [%lld, %lld] is negative", op,
               (long long)w.rows, (long long)w.cols);
    DG_REQUIRE(w.ld >= w.cols, "%s: weight ld %lld < cols %lld", op, (long long)w.ld,
               (long long)w.cols);
    switch (w.dtype) {
    case DG_F32: case DG_BF16: case DG_F16: break;
    case DG_F8E4M3:
        if (!allow_fp8) return fail(DG_ERR_UNSUPPORTED, "%s: F8E4M3 weights are not supported here", op);
        DG_REQUIRE(w.scale != nullptr, "%s: F8E4M3 weight without block scales", op);
        DG_REQUIRE(w.block_rows > 0 && w.block_cols > 0, "%s: F8E4M3 weight block %dx%d", op,
                   w.block_rows, w.block_cols);
        break;
    default:
        return fail(DG_ERR_INVALID, "%s: weight dtype %d is not F32, BF16, F16 or F8E4M3", op,
                    (int)w.dtype);
    }
    return DG_OK;
}

/* 0 unknown, 1 off, 2 on; per device ordinal. cudaGetDevice is a thread-local read. */
static int g_pdl[64];

bool pdl_on() {
    int d = 0;
    if (cudaGetDevice(&d) != cudaSuccess || d < 0 || d >= 64) return false;
    int v = __atomic_load_n(&g_pdl[d], __ATOMIC_ACQUIRE);
    if (v == 0) {
        const char *env = getenv("DEEPGO_PDL");
        int major = 0;
        bool on = !(env && strcmp(env, "0") == 0) &&
                  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) == cudaSuccess && major >= 9;
        v = on ? 2 : 1;
        __atomic_store_n(&g_pdl[d], v, __ATOMIC_RELEASE);
    }
    return v == 2;
}

}  // namespace dg

using namespace dg;

extern "C" {

/* Load every kernel of the library when the context is created rather than at its first launch
 * (CUDA's default is lazy): otherwise the first step (a prompt's prefill) pays for loading each
 * kernel it uses. Runs when the library is loaded, before any CUDA call; a CUDA_MODULE_LOADING
 * already set by the user wins. */
__attribute__((constructor)) static void dg_eager_modules(void) { setenv("CUDA_MODULE_LOADING", "EAGER", 0); }

DG_API int32_t dg_api_version(void) { return DG_KERNELS_API_VERSION; }
DG_API const char *dg_backend_name(void) { return "cuda"; }
DG_API const char *dg_last_error(void) { return g_msg; }

DG_API dg_status dg_device_count(int32_t *count) {
    DG_REQUIRE(count != nullptr, "dg_device_count: count is NULL");
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice) {
        *count = 0;
        return DG_OK;
    }
    if (e != cudaSuccess) {
        *count = 0;
        (void)cudaGetLastError();
        return fail(DG_ERR_DEVICE, "cudaGetDeviceCount failed: %s (%s)%s", cudaGetErrorString(e),
                    cudaGetErrorName(e),
                    e == cudaErrorInsufficientDriver
                        ? ": the NVIDIA driver is older than this library's CUDA runtime (13.0 needs driver >= 580)"
                        : "");
    }
    *count = n;
    return DG_OK;
}

DG_API dg_status dg_init(int32_t device) {
    int n = 0;
    DG_CUDA(cudaGetDeviceCount(&n));
    DG_REQUIRE(device >= 0 && device < n, "dg_init: device %d out of range (%d devices)", device, n);
    DG_CUDA(cudaSetDevice(device));
    DG_CUDA(cudaFree(0)); /* create the context now, not inside the first kernel call */
    __atomic_store_n(&g_device, device, __ATOMIC_RELEASE);
    t_device = device;
    return DG_OK;
}

DG_API dg_status dg_mem_info(int64_t *free_bytes, int64_t *total_bytes) {
    bind_device();
    size_t f = 0, t = 0;
    DG_CUDA(cudaMemGetInfo(&f, &t));
    if (free_bytes) *free_bytes = (int64_t)f;
    if (total_bytes) *total_bytes = (int64_t)t;
    return DG_OK;
}

DG_API dg_status dg_device_name(int32_t device, char *buf, int64_t len) {
    DG_REQUIRE(buf != nullptr && len > 0, "dg_device_name: empty buffer");
    cudaDeviceProp p;
    DG_CUDA(cudaGetDeviceProperties(&p, device));
    snprintf(buf, (size_t)len, "%s, sm_%d%d, %d SMs, %.1f GiB", p.name, p.major, p.minor,
             p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return DG_OK;
}

DG_API dg_status dg_malloc(void **ptr, int64_t bytes) {
    bind_device();
    DG_REQUIRE(ptr != nullptr, "dg_malloc: ptr is NULL");
    DG_REQUIRE(bytes >= 0, "dg_malloc: negative size %lld", (long long)bytes);
    *ptr = nullptr;
    if (bytes == 0) return DG_OK;
    cudaError_t e = cudaMalloc(ptr, (size_t)bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t f = 0, t = 0;
        cudaMemGetInfo(&f, &t);
        *ptr = nullptr;
        return fail(cuda_status(e), "cudaMalloc(%lld bytes) failed: %s (%s); %lld of %lld bytes free",
                    (long long)bytes, cudaGetErrorString(e), cudaGetErrorName(e), (long long)f,
                    (long long)t);
    }
    return DG_OK;
}

DG_API dg_status dg_free(void *ptr) {
    bind_device();
    if (ptr == nullptr) return DG_OK;
    DG_CUDA(cudaFree(ptr));
    return DG_OK;
}

DG_API dg_status dg_host_alloc(void **ptr, int64_t bytes) {
    bind_device();
    DG_REQUIRE(ptr != nullptr, "dg_host_alloc: ptr is NULL");
    DG_REQUIRE(bytes >= 0, "dg_host_alloc: negative size %lld", (long long)bytes);
    *ptr = nullptr;
    if (bytes == 0) return DG_OK;
    cudaError_t e = cudaMallocHost(ptr, (size_t)bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *ptr = nullptr;
        return fail(cuda_status(e), "cudaMallocHost(%lld bytes) failed: %s (%s)", (long long)bytes,
                    cudaGetErrorString(e), cudaGetErrorName(e));
    }
    return DG_OK;
}

DG_API dg_status dg_host_free(void *ptr) {
    if (ptr == nullptr) return DG_OK;
    DG_CUDA(cudaFreeHost(ptr));
    return DG_OK;
}

DG_API dg_status dg_memcpy(void *dst, const void *src, int64_t bytes, int32_t kind, dg_stream stream) {
    DG_REQUIRE(bytes >= 0, "dg_memcpy: negative size %lld", (long long)bytes);
    if (bytes == 0) return DG_OK;
    DG_REQUIRE(dst != nullptr && src != nullptr, "dg_memcpy: NULL pointer");
    cudaMemcpyKind k;
    switch (kind) {
    case DG_COPY_H2D: k = cudaMemcpyHostToDevice; break;
    case DG_COPY_D2H: k = cudaMemcpyDeviceToHost; break;
    case DG_COPY_D2D: k = cudaMemcpyDeviceToDevice; break;
    default: return fail(DG_ERR_INVALID, "dg_memcpy: kind %d", (int)kind);
    }
    DG_CUDA(cudaMemcpyAsync(dst, src, (size_t)bytes, k, stream_of(stream)));
    return DG_OK;
}

DG_API dg_status dg_memset(void *dst, int32_t value, int64_t bytes, dg_stream stream) {
    DG_REQUIRE(bytes >= 0, "dg_memset: negative size %lld", (long long)bytes);
    if (bytes == 0) return DG_OK;
    DG_REQUIRE(dst != nullptr, "dg_memset: dst is NULL");
    DG_CUDA(cudaMemsetAsync(dst, value, (size_t)bytes, stream_of(stream)));
    return DG_OK;
}

DG_API dg_status dg_stream_create(dg_stream *stream) {
    bind_device();
    DG_REQUIRE(stream != nullptr, "dg_stream_create: stream is NULL");
    cudaStream_t s = nullptr;
    DG_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = (dg_stream)s;
    return DG_OK;
}

DG_API dg_status dg_stream_destroy(dg_stream stream) {
    if (stream == nullptr) return DG_OK;
    DG_CUDA(cudaStreamDestroy(stream_of(stream)));
    return DG_OK;
}

DG_API dg_status dg_stream_sync(dg_stream stream) {
    DG_CUDA(cudaStreamSynchronize(stream_of(stream)));
    return DG_OK;
}

DG_API dg_status dg_set_threads(int32_t n) {
    (void)n;
    return DG_OK;
}

}  // extern "C"

/* ---------------------------------------------------------------------------------------------
 * CUDA-only extras (not in include/deepgo_kernels.h): stream capture into a CUDA graph, so that
 * Go can capture a decode step once per batch bucket and replay it. The capture runs in
 * cudaStreamCaptureModeGlobal, so a kernel call that allocated, copied to the host or
 * synchronised would make the capture fail (tests/kernels TestGraphCapture relies on that).
 * ------------------------------------------------------------------------------------------- */
extern "C" {

DG_API dg_status dg_cuda_graph_begin(dg_stream stream) {
    DG_REQUIRE(stream != nullptr, "dg_cuda_graph_begin: capture needs a created stream, not the default one");
    DG_CUDA(cudaStreamBeginCapture(stream_of(stream), cudaStreamCaptureModeGlobal));
    return DG_OK;
}

DG_API dg_status dg_cuda_graph_end(dg_stream stream, void **exec) {
    DG_REQUIRE(exec != nullptr, "dg_cuda_graph_end: exec is NULL");
    *exec = nullptr;
    cudaGraph_t g = nullptr;
    cudaError_t ec = cudaStreamEndCapture(stream_of(stream), &g);
    if (ec != cudaSuccess) {
        /* a failed capture leaves its error for cudaGetLastError, where the next kernel launch
         * of the step (run kernel by kernel now) would find it and fail: clear it here */
        (void)cudaGetLastError();
        return fail(cuda_status(ec), "cudaStreamEndCapture failed: %s (%s)", cudaGetErrorString(ec),
                    cudaGetErrorName(ec));
    }
    cudaGraphExec_t e = nullptr;
    cudaError_t err = cudaGraphInstantiate(&e, g, 0);
    cudaGraphDestroy(g);
    if (err != cudaSuccess)
        return fail(cuda_status(err), "cudaGraphInstantiate failed: %s (%s)", cudaGetErrorString(err),
                    cudaGetErrorName(err));
    *exec = (void *)e;
    return DG_OK;
}

DG_API dg_status dg_cuda_graph_launch(void *exec, dg_stream stream) {
    DG_REQUIRE(exec != nullptr, "dg_cuda_graph_launch: exec is NULL");
    DG_CUDA(cudaGraphLaunch((cudaGraphExec_t)exec, stream_of(stream)));
    return DG_OK;
}

DG_API dg_status dg_cuda_graph_destroy(void *exec) {
    if (exec == nullptr) return DG_OK;
    DG_CUDA(cudaGraphExecDestroy((cudaGraphExec_t)exec));
    return DG_OK;
}

}  // extern "C"
