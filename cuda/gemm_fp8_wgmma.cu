/*
 * gemm_fp8_wgmma.cu: dg_linear's W8A8 mode on Hopper fp8 tensor cores (wgmma e4m3 x e4m3, sm_90a).
 *
 * Math (DeepSeek-V3's fp8 GEMM, kernel.py act_quant + fp8_gemm):
 *   x is quantised per token t and per block b of 128 input channels:
 *     s[t, b] = amax_b |x[t, :]| / 448,  q[t, k] = e4m3(x[t, k] / s)   (q = 0, s = 0 for an all-zero block)
 *   with exactly the arithmetic of gemm.cuh's act_quant_kernel (the emulated path), then
 *     y[t, n] (+)= sum_b ( sum_{k in b} q[t, k] * Wq[n, k] ) * (s[t, b] * ws[n / 128, b])
 *   Each inner sum (128 products of e4m3 values) runs on the tensor cores: 4 chained
 *   wgmma m64n128k32 with f32 accumulators; Hopper adds fp8 products with about 14 bits kept,
 *   so, as in DeepSeek's recipe, each 128-wide block's sum is promoted to a separate f32
 *   accumulator (times its two scales) by ordinary FMAs before the next block starts.
 *
 * Layout:
 *   workspace (256-byte aligned base): q [m, cols] e4m3, row stride cols bytes; then (at the next
 *     256 bytes) s^T [cols/128, lds] f32, lds = round_up(m, 4): one row per k-block, so that a
 *     tile's 128 token scales of one k-block are one 512-byte TMA box; then the stream-K parts,
 *     [SM count][256 x 64] f32 (8.4 MB on an H100, whatever m), and flags [SM count] u32.
 *   W [rows, cols] e4m3 row stride ld (16-byte multiple), scales [ceil(rows/128), cols/128].
 *   y [m, rows] row stride ld_y, bf16 or f32, written straight from the accumulator fragments.
 *
 * Tile: BM = 128 tokens x BN = 128 weight rows x BK = 128 (bytes = channels). 384 threads, one
 *   block per SM, persistent over units of work (k-block ranges of tiles; see "Schedule" below):
 *   - warpgroup 0, the producer (setmaxnreg 40): one thread issues, per k-block, three TMA loads
 *     (cp.async.bulk.tensor.2d) into a stage: q [128 x 128] and W [128 x 128] with the 128-byte
 *     swizzle, s^T [128] plain, all completing on the stage's "full" mbarrier (expect_tx of the
 *     stage's bytes; out-of-range rows arrive as zeros). 6 stages of 33 KB.
 *   - warpgroups 1 and 2, the consumers (setmaxnreg 232): warpgroup c owns tokens 64c..64c+63.
 *     Per k-block: wait "full", read its two token scales, wgmma.fence, 4 x
 *     wgmma.mma_async.m64n128k32.f32.e4m3.e4m3 (A and B from shared memory, K-major, both
 *     descriptors 128B-swizzle with 1024-byte stride between 8-row groups; the k-th step starts
 *     32 bytes further into the swizzled rows; the first with scale-d 0), commit, wait 0, release
 *     the stage (one arrive per warp on its "empty" mbarrier), promote. At the unit's end the
 *     fragments are stored (the producer is already loading the next unit's stages).
 *   Fragment of m64n128 f32 (per thread, warp w of the warpgroup, lane = 4g + t):
 *     d[4j + 0, 1] = D[16w + g,     8j + 2t + {0, 1}],  d[4j + 2, 3] = D[16w + g + 8, 8j + 2t + {0, 1}].
 *   Shared memory: 6 x (16 KB q + 16 KB W + 512 B s) + 12 mbarriers (+ 1 KB to align to 1024):
 *   200,800 bytes, one block per SM. ptxas (nvcc 13.0): 168 registers at entry, no spills (the
 *   quantisation kernel: 31). BN 256 would need 2 x 128 accumulators per consumer thread, more
 *   than setmaxnreg's 232.
 *   Why: the mma.sync fp8 path (gemm.cuh) converts e4m3 to bf16 and runs at a fraction of the fp8
 *   rate; wgmma reads e4m3 from shared memory itself, TMA spends no registers or issue slots on
 *   loads, and 6 stages keep ~190 KB of loads in flight per SM.
 *
 * Schedule (stream-K, the default; DEEPGO_W8A8_GEMM=nosplit keeps whole tiles, block b taking tiles
 *   b, b + grid, ... with tile t = (token block t % mt, weight block t / mt)). Why: ncu of o_proj
 *   [7168x16384] at m = 512 on the H100 had 224 tiles (4 x 56) of 128 k-blocks on 132 blocks, 1.7
 *   waves: "SM Active Cycles" 184k of 238k elapsed, the busiest SMs running 256 k-blocks where the
 *   mean is 217; MLP down (224 tiles), gate/up (576 tiles, 4.36 waves) and the shared experts and
 *   q_a/kv_a (48 and 20 tiles on 132 SMs) lose the same way. Now the grid is ng = min(sms / mt,
 *   max(nt, T / 8)) groups of mt blocks (block b: token block b % mt, group b / mt; at m = 512:
 *   33 x 4 = 132), and the T = nt * nkb k-blocks of the weight blocks in a row (weight block major) are cut into
 *   ng contiguous ranges [j T / ng, (j + 1) T / ng): every block runs its group's range for its token
 *   block, so all blocks run the same number of k-blocks to within one, and the mt blocks of a group
 *   read the same W k-blocks together (W still comes from DRAM once). A range starts and ends where
 *   it falls, so a tile may be cut between groups j0 (its first k-block, at the end of j0's range)
 *   and j0 + 1, ... (the rest, at the start of their ranges). A block whose first unit starts past
 *   k-block 0 writes that unit's f32 fragments to its own 64 KB slot in the workspace (fragment
 *   order, 16-byte coalesced stores, .cg), fences, and after a named barrier of the 256 consumer
 *   threads sets its flag (st.release.gpu); the block holding the tile's k-block 0 then waits for
 *   each later group's flag (ld.acquire.gpu) in group order and adds its slot before it stores y
 *   (accumulate applied once). Deterministic: the cuts depend only on the shape and the SM count,
 *   and the parts are added in a fixed order (the bits differ from nosplit's, which adds the k-blocks
 *   in one chain). No deadlock: the grid is at most one block per SM (all resident), and a part is
 *   always its block's first unit, computed before that block waits on anything. The quantisation
 *   kernel clears the flags (stream order puts it before the GEMM). Ranges have at least 8 k-blocks
 *   (or a whole tile); more token blocks than SMs fall back to whole tiles.
 *
 * Quantisation kernel: ncu of o_proj's (512 x 16384 bf16 x) took 16.6 us at 1.03 TB/s with the ALU
 *   pipe the busiest and 70% of issue slots used: a warp per (token, k-block) with 8-byte loads and a
 *   64-bit division per thread. Now 16 lanes per (token, k-block), 8 channels per lane (16-byte
 *   loads), the token from blockIdx.y (no division), cvt in pairs; the arithmetic (x / s, s =
 *   amax / 448, cvt.rn.satfinite) is unchanged, so q and s are the same bytes.
 *
 * Where: mode W8A8, e4m3 W with block_rows == block_cols == 128, cols % 128 == 0, W rows 16-byte
 *   aligned, m > 8 (1..8: gemv_w8a8.cu), compute capability 9.0 with the sm_90a code loaded
 *   (w8a8_wgmma_ok). Elsewhere
 *   linear.cu's emulation (f32 q*s into the workspace, f32 GEMV/SIMT GEMM) runs, as it does for
 *   every call when DEEPGO_W8A8_GEMM=emulate (read once; "nosplit" keeps the wgmma path with whole
 *   tiles, no stream-K). The sm_80/89 builds of this file keep a trap stub of the kernel; the host
 *   never launches it there. CUtensorMaps are encoded per call on the host through
 *   cuTensorMapEncodeTiled, found with cudaGetDriverEntryPointByVersion (no libcuda link), and
 *   passed as __grid_constant__ parameters (graph capture keeps them by value).
 *
 * Test:  go test ./tests/kernels -run 'W8A8' -v           (needs a GPU; compares with the CPU backend;
 *        TestLinearW8A8StreamK cuts tiles in 2 to 16 parts, TestLinearW8A8Deterministic repeats a call)
 * Bench: deepgo bench kernels --backend cuda --shapes deepseek-v3 --filter 'fp8-w8a8 m=512' --m 512
 *        (each "linear ... fp8-w8a8 m=512" row carries the cuBLASLt fp8 baseline of the same shape)
 */
#include "gemm_fp8_wgmma.cuh"

#include <cuda.h>          /* CUtensorMap and its enums; no driver call is linked */
#include <cudaTypedefs.h>  /* PFN_cuTensorMapEncodeTiled_v12000 */
#include <stdlib.h>
#include <string.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DG_W8_WGMMA 1
#endif

namespace dg {
namespace {

constexpr int W8_BM = 128, W8_BN = 128, W8_BK = 128, W8_STAGES = 6;
constexpr int W8_THREADS = 384;                 /* warpgroup 0 producer, 1 and 2 consumers */
constexpr int W8_A_BYTES = W8_BM * W8_BK;       /* 16384: q tile, 128 rows of 128 bytes */
constexpr int W8_B_BYTES = W8_BN * W8_BK;       /* 16384: W tile */
constexpr int W8_S_BYTES = W8_BM * 4;           /* 512: the tile's token scales of one k-block */
constexpr int W8_STAGE_TX = W8_A_BYTES + W8_B_BYTES + W8_S_BYTES;
constexpr int W8_CONSUMER_WARPS = 8;
constexpr int W8_SMEM = 1024 + W8_STAGES * (W8_A_BYTES + W8_B_BYTES + W8_S_BYTES) + 2 * W8_STAGES * 8;
static_assert(W8_A_BYTES % 1024 == 0 && W8_B_BYTES % 1024 == 0, "swizzled tiles must stay 1024-byte aligned");
static_assert(W8_STAGE_TX % 16 == 0 && W8_CONSUMER_WARPS * 32 == W8_THREADS - 128, "stage bytes, consumer warps");

constexpr int W8_QUANT_THREADS = 128;          /* 8 k-blocks of one token per quantisation block */
constexpr int W8_QUANT_PER = 8;                 /* channels per thread: 16 lanes per 128-channel block */
constexpr int W8_PART_FLOATS = 2 * 128 * 64;    /* one partial tile: 256 consumer threads x 64 f32 */
constexpr int W8_MIN_RANGE = 8;                 /* stream-K: at least this many k-blocks per group */

int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

/* ---------------------------------------------------------------------------------------------
 * Activation quantisation: 16 lanes per (token, k-block), 8 channels per lane (one 16-byte load of
 * bf16, two of f32), blockIdx.y the token (strided past 65535), blockIdx.x a run of 8 k-blocks: no
 * integer division. Same arithmetic as act_quant_kernel: amax of |x| (max is exact in any order),
 * s = amax / 448, q = e4m3(x / s) (cvt.rn.satfinite in pairs: the same rounding as one at a time).
 * Block (0, 0) also clears the stream-K flags the GEMM that follows sets (stream order).
 * ------------------------------------------------------------------------------------------- */
template <typename XT>
__global__ void __launch_bounds__(W8_QUANT_THREADS)
    w8a8_quant_kernel(const XT *__restrict__ x, int64_t ld_x, int64_t m, int nkb, uint8_t *__restrict__ q,
                      float *__restrict__ s, int64_t ld_s, int vec, unsigned *__restrict__ flags, int nflags) {
    if (blockIdx.x == 0 && blockIdx.y == 0)
        for (int i = threadIdx.x; i < nflags; i += W8_QUANT_THREADS) flags[i] = 0u;
    const int kb = blockIdx.x * (W8_QUANT_THREADS / 16) + (threadIdx.x >> 4);
    const int l16 = threadIdx.x & 15;
    /* whole 16-lane groups leave together, so act_quant8's shuffles see only live lanes of a group */
    if (kb >= nkb) return;
    const int64_t K = (int64_t)nkb * W8_BK;
    const int64_t k0 = (int64_t)kb * W8_BK + l16 * W8_QUANT_PER;
    for (int64_t t = blockIdx.y; t < m; t += gridDim.y) {
        const XT *src = x + t * ld_x + k0;
        float v[W8_QUANT_PER];
        if (vec) { /* x 16-byte aligned, ld_x % 8 == 0 */
            if constexpr (sizeof(XT) == 2) {
                const uint4 r = __ldg((const uint4 *)src);
                const XT *e = (const XT *)&r;
#pragma unroll
                for (int i = 0; i < W8_QUANT_PER; i++) v[i] = to_f32(e[i]);
            } else {
                const float4 r0 = __ldg((const float4 *)src), r1 = __ldg((const float4 *)src + 1);
                v[0] = r0.x, v[1] = r0.y, v[2] = r0.z, v[3] = r0.w, v[4] = r1.x, v[5] = r1.y, v[6] = r1.z, v[7] = r1.w;
            }
        } else {
#pragma unroll
            for (int i = 0; i < W8_QUANT_PER; i++) v[i] = to_f32(src[i]);
        }
        float sc;
        const uint2 packed = act_quant8(v, &sc);
        *(uint2 *)(q + t * K + k0) = packed;
        if (l16 == 0) s[(int64_t)kb * ld_s + t] = sc;
    }
}

/* ---------------------------------------------------------------------------------------------
 * sm_90a primitives: mbarrier, TMA, wgmma, setmaxnreg.
 * ------------------------------------------------------------------------------------------- */
#ifdef DG_W8_WGMMA
__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* The producer's arrival, announcing the bytes the stage's TMA loads will complete. */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* Wait until the phase of parity `parity` has completed (acquire): a fresh barrier is in phase 0,
 * so waiting for parity 1 returns at once. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile(
            "{\n.reg .pred p;\n"
            "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    } while (!done);
}
/* box of map at coordinates (c0 inner, c1 outer) into shared memory dst, completing on bar. */
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *map, uint32_t bar, int c0, int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
        "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(bar)
        : "memory");
}

/* Shared-memory matrix descriptor of a K-major tile with the 128-byte swizzle: rows of 128 bytes,
 * 8-row groups 1024 bytes apart (stride byte offset), leading byte offset unused (1), base offset 0
 * (tiles are 1024-byte aligned; a k step moves the start address 32 bytes inside the rows).
 * Bits: 0-13 address >> 4, 16-29 LBO >> 4, 32-45 SBO >> 4, 62-63 layout (1 = 128B swizzle). */
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* Stream-K hand-over between blocks: a release store / acquire load of a flag at GPU scope, and a
 * named barrier over the two consumer warpgroups (id 1; __syncthreads is id 0). */
__device__ __forceinline__ void st_release_gpu(unsigned *p, unsigned v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ unsigned ld_acquire_gpu(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, 256;\n" ::: "memory"); }
/* Pins a register at this point of the program: the compiler may not move its uses across. */
__device__ __forceinline__ void reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }

/* D (+)= A . B^T for a 64 x 128 f32 tile; A [64 x 32] and B [128 x 32] e4m3 in shared memory.
 * scale_d 0: D = A . B^T (the accumulators' old values are ignored). */
__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
        "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "
        "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
}

/* Two adjacent outputs (n, n + 1) of row r; n is even. vec: y and ld_y allow a paired store. */
template <typename YT>
__device__ __forceinline__ void w8_store2(YT *y, int64_t ld_y, int64_t r, int64_t n, int64_t N, float v0, float v1,
                                          int accumulate, int vec) {
    YT *p = y + r * ld_y + n;
    if (vec && n + 1 < N) {
        if constexpr (sizeof(YT) == 4) {
            float2 o = make_float2(v0, v1);
            if (accumulate) {
                const float2 old = *(const float2 *)p;
                o.x += old.x, o.y += old.y;
            }
            *(float2 *)p = o;
        } else {
            if (accumulate) {
                const __nv_bfloat162 old = *(const __nv_bfloat162 *)p;
                v0 += __bfloat162float(old.x), v1 += __bfloat162float(old.y);
            }
            __nv_bfloat162 o;
            o.x = __float2bfloat16_rn(v0), o.y = __float2bfloat16_rn(v1);
            *(__nv_bfloat162 *)p = o;
        }
        return;
    }
    if (accumulate) v0 += to_f32(p[0]);
    p[0] = from_f32<YT>(v0);
    if (n + 1 < N) {
        if (accumulate) v1 += to_f32(p[1]);
        p[1] = from_f32<YT>(v1);
    }
}
#endif  // DG_W8_WGMMA

/* ---------------------------------------------------------------------------------------------
 * The schedule. A unit is k-blocks [kb0, kb1) of the output tile (token block mb, weight block nb).
 * split 0 (DEEPGO_W8A8_GEMM=nosplit): block b takes whole tiles b, b + grid, ... (tile t: mb = t % mt,
 *   nb = t / mt). split 1 (stream-K): the grid is ng groups of mt blocks (block b: mb = b % mt,
 *   group j = b / mt); the weight blocks' k-blocks in a row, T = nt * nkb "W iterations" (nb major),
 *   are cut into ng contiguous ranges [j T / ng, (j + 1) T / ng), and each block of group j runs its
 *   range for its own token block: the mt blocks of a group read the same W k-blocks at the same
 *   time (W comes from DRAM once, as with the tile order above), and every block runs the same
 *   number of k-blocks to within one.
 * ------------------------------------------------------------------------------------------- */
#ifdef DG_W8_WGMMA
struct W8Cursor {
    int64_t pos, end; /* split: this group's next and end W iteration */
    int tile;         /* nosplit: the next tile */
};

__device__ __forceinline__ int64_t w8_range_start(int j, int64_t T, int ng) { return (int64_t)j * T / ng; }

__device__ __forceinline__ void w8_cursor_init(W8Cursor &c, int split, int mt, int64_t T, int ng) {
    if (split) {
        const int j = (int)blockIdx.x / mt;
        c.pos = w8_range_start(j, T, ng), c.end = w8_range_start(j + 1, T, ng);
    } else {
        c.tile = (int)blockIdx.x;
    }
}

/* The next unit of this block; false when it has none left. */
__device__ __forceinline__ bool w8_next(W8Cursor &c, int split, int mt, int tiles, int nkb, int &mb, int &nb,
                                        int &kb0, int &kb1) {
    if (split) {
        if (c.pos >= c.end) return false;
        mb = (int)blockIdx.x % mt;
        nb = (int)(c.pos / nkb), kb0 = (int)(c.pos % nkb);
        kb1 = (int)min((int64_t)nkb, (int64_t)kb0 + (c.end - c.pos));
        c.pos += kb1 - kb0;
        return true;
    }
    if (c.tile >= tiles) return false;
    mb = c.tile % mt, nb = c.tile / mt, kb0 = 0, kb1 = nkb;
    c.tile += (int)gridDim.x;
    return true;
}
#endif  // DG_W8_WGMMA

/* ---------------------------------------------------------------------------------------------
 * The GEMM. tm_q: q [m, cols] u8, box 128 x 128, swizzle 128B. tm_w: W [rows, cols] u8, box
 * 128 x 128, swizzle 128B. tm_s: s^T [nkb, m] f32 (row stride lds), box 128 x 1.
 * split 1: parts [grid][W8_PART_FLOATS] f32 and flags [grid] (zeroed by the quantisation kernel).
 * ------------------------------------------------------------------------------------------- */
template <typename YT>
__global__ void __launch_bounds__(W8_THREADS, 1)
    w8a8_wgmma_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_w,
                      const __grid_constant__ CUtensorMap tm_s, YT *__restrict__ y, const float *__restrict__ wscale,
                      int M, int N, int nkb, int64_t ld_y, int accumulate, int yvec, int split, int ng,
                      float *__restrict__ parts, unsigned *__restrict__ flags) {
#ifdef DG_W8_WGMMA
    extern __shared__ uint8_t w8_smem[];
    /* the swizzle atoms (8 rows x 128 bytes) must start on 1024-byte boundaries: align by hand */
    const uint32_t raw = smem_u32(w8_smem);
    const uint32_t base = (raw + 1023u) & ~1023u;
    const uint32_t sA = base;                              /* W8_STAGES q tiles */
    const uint32_t sB = sA + W8_STAGES * W8_A_BYTES;       /* W8_STAGES W tiles */
    const uint32_t sS = sB + W8_STAGES * W8_B_BYTES;       /* W8_STAGES x 128 token scales */
    const uint32_t sBar = sS + W8_STAGES * W8_S_BYTES;     /* full[W8_STAGES], empty[W8_STAGES] */
    const float *xs_smem = (const float *)(w8_smem + (sS - raw));
    auto full_bar = [&](int s) { return sBar + 8u * (uint32_t)s; };
    auto empty_bar = [&](int s) { return sBar + 8u * (uint32_t)(W8_STAGES + s); };

    const int tid = threadIdx.x;
    const int wg = tid >> 7;
    if (tid == 0) {
        asm volatile("prefetch.tensormap [%0];\n" ::"l"((uint64_t)&tm_q) : "memory");
        asm volatile("prefetch.tensormap [%0];\n" ::"l"((uint64_t)&tm_w) : "memory");
        asm volatile("prefetch.tensormap [%0];\n" ::"l"((uint64_t)&tm_s) : "memory");
#pragma unroll
        for (int s = 0; s < W8_STAGES; s++) {
            mbar_init(full_bar(s), 1);                    /* the producer's arrive.expect_tx */
            mbar_init(empty_bar(s), W8_CONSUMER_WARPS);   /* one arrive per consumer warp */
        }
        /* make the initialised barriers visible to the async proxy (TMA complete_tx) */
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    const int mt = (M + W8_BM - 1) / W8_BM;
    const int nt = (N + W8_BN - 1) / W8_BN;
    const int tiles = mt * nt;
    const int64_t T = (int64_t)nt * nkb;
    W8Cursor cur;
    w8_cursor_init(cur, split, mt, T, ng);
    int mb, nb, kb0, kb1;

    if (wg == 0) {
        /* ---- producer ---- */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (tid == 0) {
            uint32_t it = 0; /* k-blocks issued so far, over all units: stage it % S, use it / S */
            while (w8_next(cur, split, mt, tiles, nkb, mb, nb, kb0, kb1)) {
                const int m0 = mb * W8_BM, n0 = nb * W8_BN;
                for (int kb = kb0; kb < kb1; kb++, it++) {
                    const int s = (int)(it % W8_STAGES);
                    const uint32_t ph = (it / W8_STAGES) & 1u;
                    mbar_wait(empty_bar(s), ph ^ 1u); /* the consumers freed this stage's last use */
                    mbar_arrive_expect_tx(full_bar(s), W8_STAGE_TX);
                    tma_load_2d(sA + s * W8_A_BYTES, &tm_q, full_bar(s), kb * W8_BK, m0);
                    tma_load_2d(sB + s * W8_B_BYTES, &tm_w, full_bar(s), kb * W8_BK, n0);
                    tma_load_2d(sS + s * W8_S_BYTES, &tm_s, full_bar(s), m0, kb);
                }
            }
        }
    } else {
        /* ---- consumers ---- */
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
        const int c = wg - 1;                     /* tokens 64c .. 64c + 63 of the tile */
        const int ctid = tid - 128;               /* 0 .. 255 over both consumer warpgroups */
        const int wq = (tid >> 5) & 3, lane = tid & 31;
        const int g = lane >> 2, t4 = lane & 3;
        const int rl = 64 * c + 16 * wq + g;      /* this thread's rows: rl and rl + 8 */
        float acc[64], blk[64];
#pragma unroll
        for (int i = 0; i < 64; i++) blk[i] = 0.f;
        uint32_t it = 0;
        while (w8_next(cur, split, mt, tiles, nkb, mb, nb, kb0, kb1)) {
            const int m0 = mb * W8_BM, n0 = nb * W8_BN;
            const float *wsrow = wscale + (int64_t)nb * nkb; /* BN == block_rows == 128 */
#pragma unroll
            for (int i = 0; i < 64; i++) acc[i] = 0.f;
            for (int kb = kb0; kb < kb1; kb++, it++) {
                const int s = (int)(it % W8_STAGES);
                const uint32_t ph = (it / W8_STAGES) & 1u;
                const float sw = __ldg(wsrow + kb); /* in flight during the wait and the MMAs */
                mbar_wait(full_bar(s), ph);
                const float sx0 = xs_smem[s * W8_BM + rl], sx1 = xs_smem[s * W8_BM + rl + 8];
#pragma unroll
                for (int i = 0; i < 64; i++) reg_fence(blk[i]);
                wgmma_fence();
                const uint32_t a0 = sA + s * W8_A_BYTES + c * (64 * W8_BK), b0 = sB + s * W8_B_BYTES;
#pragma unroll
                for (int k = 0; k < W8_BK / 32; k++)
                    wgmma_m64n128k32_e4m3(blk, sw128_desc(a0 + 32 * k), sw128_desc(b0 + 32 * k), k > 0 ? 1 : 0);
                wgmma_commit();
                wgmma_wait_all();
#pragma unroll
                for (int i = 0; i < 64; i++) reg_fence(blk[i]);
                /* the scales are in registers and the MMAs done: release the stage */
                const float sc0 = sx0 * sw, sc1 = sx1 * sw;
                __syncwarp();
                if (lane == 0) mbar_arrive(empty_bar(s));
#pragma unroll
                for (int j = 0; j < 16; j++) {
                    acc[4 * j + 0] = fmaf(blk[4 * j + 0], sc0, acc[4 * j + 0]);
                    acc[4 * j + 1] = fmaf(blk[4 * j + 1], sc0, acc[4 * j + 1]);
                    acc[4 * j + 2] = fmaf(blk[4 * j + 2], sc1, acc[4 * j + 2]);
                    acc[4 * j + 3] = fmaf(blk[4 * j + 3], sc1, acc[4 * j + 3]);
                }
            }
            if (kb0 > 0) {
                /* stream-K, a later part of the tile (only ever this block's first unit): hand the f32
                 * partial to the block holding the tile's first k-block, which adds it and stores y.
                 * Fragment order, the same thread position reads it back: 16-byte, coalesced. */
                float4 *dst = (float4 *)(parts + (int64_t)blockIdx.x * W8_PART_FLOATS);
#pragma unroll
                for (int i = 0; i < 16; i++)
                    __stcg(dst + i * 256 + ctid,
                           make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]));
                __threadfence();
                consumers_sync(); /* all 256 threads' parts written (and fenced) before the flag */
                if (ctid == 0) st_release_gpu(flags + blockIdx.x, 1u);
                continue;
            }
            if (kb1 < nkb) {
                /* stream-K, the tile's first part (this block's last unit): the later parts are the
                 * first units of the next groups whose ranges start inside this tile; add them in
                 * group order (deterministic), waiting for each one's flag. */
                const int j0 = (int)blockIdx.x / mt;
                const int64_t tile_end = (int64_t)(nb + 1) * nkb;
                for (int j = j0 + 1; j < ng && w8_range_start(j, T, ng) < tile_end; j++) {
                    const int b2 = j * mt + mb;
                    while (ld_acquire_gpu(flags + b2) == 0u) {
                    }
                    const float4 *src = (const float4 *)(parts + (int64_t)b2 * W8_PART_FLOATS);
#pragma unroll
                    for (int i = 0; i < 16; i++) {
                        const float4 v = __ldcg(src + i * 256 + ctid);
                        acc[4 * i] += v.x, acc[4 * i + 1] += v.y, acc[4 * i + 2] += v.z, acc[4 * i + 3] += v.w;
                    }
                }
            }
            /* epilogue: rows m0 + rl and m0 + rl + 8, columns n0 + 8j + 2t4 (+1) */
            const int64_t r0 = (int64_t)m0 + rl, r1 = r0 + 8;
#pragma unroll
            for (int j = 0; j < 16; j++) {
                const int64_t n = (int64_t)n0 + 8 * j + 2 * t4;
                if (n < N) {
                    if (r0 < M) w8_store2(y, ld_y, r0, n, N, acc[4 * j + 0], acc[4 * j + 1], accumulate, yvec);
                    if (r1 < M) w8_store2(y, ld_y, r1, n, N, acc[4 * j + 2], acc[4 * j + 3], accumulate, yvec);
                }
            }
        }
    }
#else
    /* Built for an architecture without wgmma: never launched (w8a8_wgmma_ok checks the device). */
    __trap();
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Host side
 * ------------------------------------------------------------------------------------------- */
using EncodeTiledFn = PFN_cuTensorMapEncodeTiled_v12000;

EncodeTiledFn encode_tiled() {
    static const EncodeTiledFn fn = [] {
        void *p = nullptr;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) !=
                cudaSuccess ||
            q != cudaDriverEntryPointSuccess) {
            (void)cudaGetLastError();
            return (EncodeTiledFn) nullptr;
        }
        return (EncodeTiledFn)p;
    }();
    return fn;
}

/* A 2-D tensor map: inner x outer elements, row stride stride_bytes, box box_in x box_out. */
bool make_map(CUtensorMap *map, CUtensorMapDataType dt, const void *base, uint64_t inner, uint64_t outer,
              uint64_t stride_bytes, uint32_t box_in, uint32_t box_out, CUtensorMapSwizzle swizzle) {
    const cuuint64_t dims[2] = {inner, outer};
    const cuuint64_t strides[1] = {stride_bytes};
    const cuuint32_t box[2] = {box_in, box_out};
    const cuuint32_t estr[2] = {1, 1};
    return encode_tiled()(map, dt, 2, const_cast<void *>(base), dims, strides, box, estr,
                          CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* Both kernels' real sm_90a code loaded on a cc 9.0 device with the shared memory (sm90a_kernel_ok:
 * the real kernel holds 168 registers at entry, the trap stub a handful), and the driver's
 * tensor-map encoder. Once per process. */
bool w8a8_device_ok() {
    static const bool ok = sm90a_kernel_ok((const void *)w8a8_wgmma_kernel<float>, W8_SMEM) &&
                           sm90a_kernel_ok((const void *)w8a8_wgmma_kernel<__nv_bfloat16>, W8_SMEM) &&
                           encode_tiled() != nullptr;
    return ok;
}

/* DEEPGO_W8A8_GEMM, read once: "emulate" (f32 emulation), "nosplit" (whole tiles, no stream-K). */
const char *w8a8_env() {
    static const char *e = getenv("DEEPGO_W8A8_GEMM");
    return e;
}
bool w8a8_emulate_forced() {
    static const bool forced = w8a8_env() != nullptr && strcmp(w8a8_env(), "emulate") == 0;
    return forced;
}
bool w8a8_nosplit() {
    static const bool ns = w8a8_env() != nullptr && strcmp(w8a8_env(), "nosplit") == 0;
    return ns;
}

int w8_sms() {
    static const int sms = device_attr(cudaDevAttrMultiProcessorCount, 132);
    return sms;
}

/* The grid and schedule (see w8_next). Stream-K takes ng = min(sms / mt, max(nt, T / 8)) groups
 * of mt blocks (grid <= sms, all resident at once: one block per SM, so a block's wait for a later
 * group's partial always ends); nosplit, or more token blocks than SMs, runs whole tiles. So do
 * shapes whose whole tiles leave the last wave at least 95% full: there stream-K only adds its
 * partial writes (H100, m=512: kv_b 1,024 tiles 57.7 us whole vs 62.6 split; q_b 768 tiles 70.0
 * vs 70.3; o_proj 224 tiles 161.3 vs 145.6). */
struct W8Plan {
    int split, ng;
    unsigned grid;
};
W8Plan w8_plan(int64_t m, int64_t rows, int nkb) {
    const int64_t mt = ceil_div(m, W8_BM), nt = ceil_div(rows, W8_BN), sms = w8_sms();
    const int64_t T = nt * nkb;
    const int64_t tiles = mt * nt, waves = ceil_div(tiles, sms);
    const bool full = 100 * tiles >= 95 * waves * sms; /* the last wave >= 95% full */
    if (!w8a8_nosplit() && mt <= sms && !full) {
        /* ranges of >= W8_MIN_RANGE k-blocks, or whole tiles (ng = nt: no cut) where that is more */
        const int64_t ng = std::max<int64_t>(1, std::min<int64_t>(sms / mt, std::max<int64_t>(nt, T / W8_MIN_RANGE)));
        return {1, (int)ng, (unsigned)(ng * mt)};
    }
    return {0, 0, (unsigned)std::min<int64_t>(mt * nt, sms)};
}

/* Workspace offsets (from the 256-aligned base): q, s^T, the stream-K parts (one 64 KB slot per
 * block, sms of them whatever the plan, so the size grows with m only), the flags. */
struct W8Layout {
    int64_t s, parts, flags, end;
};
W8Layout w8_layout(int64_t m, int64_t K) {
    W8Layout l;
    l.s = round_up(m * K, 256);
    l.parts = l.s + round_up((K / W8_BK) * round_up(m, 4) * 4, 256);
    l.flags = l.parts + (int64_t)w8_sms() * W8_PART_FLOATS * 4;
    l.end = l.flags + round_up((int64_t)w8_sms() * 4, 256);
    return l;
}

template <typename XT, typename YT>
dg_status w8a8_run(const dg_linear_args *a, cudaStream_t st) {
    const int64_t m = a->m, K = a->w.cols;
    const int nkb = (int)(K / W8_BK);
    const int64_t lds = round_up(m, 4);
    const W8Layout lay = w8_layout(m, K);
    const W8Plan plan = w8_plan(m, a->w.rows, nkb);
    uint8_t *ws = (uint8_t *)(((uintptr_t)a->workspace + 255) & ~(uintptr_t)255);
    uint8_t *q = ws;
    float *s = (float *)(ws + lay.s);
    float *parts = (float *)(ws + lay.parts);
    unsigned *flags = (unsigned *)(ws + lay.flags);

    /* 1. x -> q, s^T; clears the flags */
    const XT *x = (const XT *)a->x;
    const int vec = ((uintptr_t)x % 16 == 0) && (a->ld_x % 8 == 0);
    const dim3 qgrid((unsigned)ceil_div(nkb, W8_QUANT_THREADS / 16), (unsigned)std::min<int64_t>(m, 65535));
    w8a8_quant_kernel<XT><<<qgrid, W8_QUANT_THREADS, 0, st>>>(x, a->ld_x, m, nkb, q, s, lds, vec, flags,
                                                                plan.split ? (int)plan.grid : 0);
    DG_LAUNCHED("w8a8_quant_kernel");

    /* 2. the GEMM */
    CUtensorMap tq, tw, ts;
    if (!make_map(&tq, CU_TENSOR_MAP_DATA_TYPE_UINT8, q, (uint64_t)K, (uint64_t)m, (uint64_t)K, W8_BK, W8_BM,
                  CU_TENSOR_MAP_SWIZZLE_128B) ||
        !make_map(&tw, CU_TENSOR_MAP_DATA_TYPE_UINT8, a->w.data, (uint64_t)K, (uint64_t)a->w.rows, (uint64_t)a->w.ld,
                  W8_BK, W8_BN, CU_TENSOR_MAP_SWIZZLE_128B) ||
        !make_map(&ts, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, s, (uint64_t)m, (uint64_t)nkb, (uint64_t)lds * 4, W8_BM, 1,
                  CU_TENSOR_MAP_SWIZZLE_NONE))
        return fail(DG_ERR_DEVICE, "dg_linear: cuTensorMapEncodeTiled failed (m %lld, rows %lld, cols %lld, ld %lld)",
                    (long long)m, (long long)a->w.rows, (long long)K, (long long)a->w.ld);
    dg_status e = opt_in_smem<w8a8_wgmma_kernel<YT>>(W8_SMEM, "w8a8_wgmma_kernel");
    if (e) return e;
    const int yvec = ((uintptr_t)a->y % (2 * sizeof(YT)) == 0) && (a->ld_y % 2 == 0);
    w8a8_wgmma_kernel<YT><<<plan.grid, W8_THREADS, W8_SMEM, st>>>(tq, tw, ts, (YT *)a->y, a->w.scale, (int)m,
                                                                    (int)a->w.rows, nkb, a->ld_y, a->accumulate, yvec,
                                                                    plan.split, plan.ng, parts, flags);
    DG_LAUNCHED("w8a8_wgmma_kernel");
    return DG_OK;
}

}  // namespace

bool w8a8_wgmma_ok(const dg_linear_args *a) {
    if (!a || a->mode != DG_LINEAR_W8A8) return false;
    const dg_weight &w = a->w;
    if (w.dtype != DG_F8E4M3 || w.block_rows != 128 || w.block_cols != 128) return false;
    if (!is_act_dtype(a->x_dtype) || !is_act_dtype(a->y_dtype)) return false;
    /* 1..8 rows take gemv_w8a8.cu; 9..32 (batched decode) come here too: the emulation they took
     * before is a SIMT f32 GEMV on dequantised x */
    if (a->m <= 8 || a->m > INT32_MAX - 2 * W8_BM) return false;
    if (w.rows <= 0 || w.rows > INT32_MAX - 2 * W8_BN || w.cols <= 0 || w.cols % W8_BK != 0 || w.cols > INT32_MAX)
        return false;
    if ((uintptr_t)w.data % 16 != 0 || w.ld % 16 != 0 || w.ld < w.cols) return false;
    if (ceil_div(a->m, W8_BM) * ceil_div(w.rows, W8_BN) > INT32_MAX) return false;
    return !w8a8_emulate_forced() && w8a8_device_ok();
}

int64_t w8a8_wgmma_workspace_size(const dg_linear_args *a) {
    return 256 + w8_layout(a->m, a->w.cols).end;
}

dg_status w8a8_wgmma(const dg_linear_args *a, cudaStream_t st) {
    if (a->x_dtype == DG_F32) {
        if (a->y_dtype == DG_F32) return w8a8_run<float, float>(a, st);
        return w8a8_run<float, __nv_bfloat16>(a, st);
    }
    if (a->y_dtype == DG_F32) return w8a8_run<__nv_bfloat16, float>(a, st);
    return w8a8_run<__nv_bfloat16, __nv_bfloat16>(a, st);
}

}  // namespace dg
