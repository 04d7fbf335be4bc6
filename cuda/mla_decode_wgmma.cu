/*
 * mla_decode_wgmma.cu: pass 1 of dg_mla_decode on Hopper's warpgroup tensor cores (wgmma, sm_90a),
 * for bf16 queries over a bf16 latent cache with DeepSeek's widths (latent 512, rope 64) and
 * heads % 64 == 0. mla.cu dispatches here first on H100/H200; mla_decode_mma.cu (mma.sync) and the
 * SIMT kernel remain for everything else (DEEPGO_MLA_DECODE=mma / simt force them).
 *
 * Math (the absorbed form, per query row r and head h; K = the cache rows c | k_pe, V = c):
 *   S[64 heads, 64 keys] = Q[64, 576] . K[64, 576]^T       (wgmma m64n64k16, A and B from shared memory)
 *   P = bf16(exp(scale * S - m)),  m, l: the online softmax in f32 (l counts the rounded P, as
 *       mla_decode_mma.cu does: O / l stays a convex sum of cache rows), computed in base 2
 *       (ex2.approx of scale * log2(e) * S - m2; the workspace gets m = m2 * ln 2)
 *   O[64, 512] = O * e^(m_old - m) + P[64, 64] . V[64, 512] (wgmma m64n256k16, two warpgroups)
 * Why: at DeepSeek-V3's 128 heads a decode step does 64 * 4096 * 128 * 2176 = 73 GFLOP over 0.3 GB of
 * cache; the mma.sync kernel (ldmatrix + HMMA, 16-head tiles) ran 1,016 us at batch 64 / 4k on an
 * H100, issue bound. wgmma reads both operands from shared memory itself and a block shares each
 * cache tile between 64 heads.
 *
 * Block: 256 threads, one (64-head group, key range = split, query row); blockIdx.x is the head
 * group, so the two groups of a row's range (128 heads) run side by side and read the same cache
 * tiles, the second mostly from L2. Key tiles of 64 cache rows.
 *   - all 256 threads load: Q once (the block's 64 heads x 576), then each key tile through the
 *     block table (cp.async 16 bytes, rows past the range zero-filled), two stages;
 *   - warpgroup 0: S = Q K^T (36 wgmma k16 steps), the online softmax on the f32 fragment, P to
 *     shared memory (bf16) with the per-head rescale factors, then O[:, 0:256] += P V with P from
 *     registers (the m64n64 accumulator fragment is the k16 A fragment, no shuffles);
 *   - warpgroup 1: waits for P (named barrier 1), O[:, 256:512] += P V with P from shared memory.
 *   One __syncthreads per tile separates the stages (the copy of tile i + 1 is in flight during
 *   tile i's math).
 * Shared memory (1024-byte aligned by hand): Q 9 x 8 KB, 2 stages of K 9 x 8 KB, P 8 KB, the rescale
 *   factors and l (512 B): 229,888 + 1,024 bytes, one block per SM. ptxas (nvcc 13.0): 208 registers,
 *   no spills; SASS: 36 HGMMA.64x64x16 + 2 x 4 HGMMA.64x256x16 (.tnspB) per tile. Every operand is stored as
 *   K-major 128-byte-swizzled sub-tiles of [64 rows x 64 bf16]: row i at 128 i, its 16-byte chunk j
 *   at ((j ^ (i & 7)) << 4) (the hardware's swizzle on address bits 4-6 ^ 7-9, hence the alignment).
 *   Descriptors: K-major (Q, K, P): SBO 1024 (8-row groups), LBO unused, a k16 step 32 bytes into the
 *   rows. V is the same bytes read MN-major (imm-trans-b): the 64 columns of a sub-tile are the
 *   swizzle atom's width, LBO 8192 (the next 64 columns: the next sub-tile), SBO 1024 (the next 8
 *   keys), a k16 step 2048 bytes.
 * Fragments (m64nN f32, thread t of warp w of the warpgroup, g = t / 4, q = t % 4):
 *   d[4j + {0, 1}] = D[16w + g, 8j + 2q + {0, 1}],  d[4j + {2, 3}] = D[16w + g + 8, 8j + 2q + {0, 1}];
 *   the k16 A fragment of keys 16k..16k+15: {P(g, 16k + 2q), P(g + 8, 16k + 2q), P(g, 16k + 8 + 2q),
 *   P(g + 8, 16k + 8 + 2q)} as bf16 pairs, = S's d[8k + 0..7] in order.
 * Output: with splits > 1, mla.cu's workspace [rows, heads, splits, latent + 2] f32 (o unnormalised,
 *   m, l; a split without keys writes nothing and the combine skips it); with one split (the
 *   decode batch fills the GPU by itself) the block normalises and writes bf16 out directly and
 *   mla.cu skips the combine (a row without keys gets zeros, as the combine writes).
 * Splits: the fewest that fill the SMs in whole waves (mla_decode_wgmma_splits).
 * Where: compute capability 9.0 with the sm_90a code loaded; other builds keep a trap stub that the
 *   host never launches (mla_decode_wgmma_ok checks the device and the kernel's registers).
 *
 * Test:  go test ./tests/kernels -run 'MLADecode' -v   (128- and 64-head cases take this path)
 * Bench: deepgo bench kernels --backend cuda --shapes deepseek-v3 --filter mla_decode
 */
#include "mla_decode_wgmma.cuh"

#include "gemm.cuh"
#include <stdlib.h>
#include <string.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DG_MLA_WGMMA 1
#endif

namespace dg {
namespace {

typedef __nv_bfloat16 bf;
constexpr int MW_LAT = 512, MW_ROPE = 64, MW_D = MW_LAT + MW_ROPE;
constexpr int MW_HEADS = 64;                  /* heads per block: wgmma's M */
constexpr int MW_TK = 64;                     /* keys per tile */
constexpr int MW_THREADS = 256;
constexpr int MW_SUB = 64 * 128;              /* one [64 rows x 64 bf16] swizzled sub-tile: 8 KB */
constexpr int MW_NSUB = MW_D / 64;            /* 9 sub-tiles per 576-wide operand */
constexpr int MW_TILE = MW_NSUB * MW_SUB;     /* 73,728 bytes: Q, or one K stage */
constexpr int MW_OFF_K = MW_TILE;             /* 2 stages */
constexpr int MW_OFF_P = MW_OFF_K + 2 * MW_TILE;
constexpr int MW_OFF_CORR = MW_OFF_P + MW_SUB; /* 64 f32 */
constexpr int MW_OFF_L = MW_OFF_CORR + 256;    /* 64 f32 */
constexpr int MW_SMEM = MW_OFF_L + 256 + 1024; /* + the slack for aligning the base to 1024 */
constexpr int MW_CHUNKS = MW_D / 8;            /* 72 16-byte chunks per row */
static_assert(MW_CHUNKS % 4 == 0 && MW_THREADS == 4 * MW_TK && MW_TK == MW_HEADS, "loader mapping");
static_assert(MW_SMEM <= 232448, "one block per SM on sm_90");

#ifdef DG_MLA_WGMMA
__device__ __forceinline__ uint32_t mw_smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* A shared-memory matrix descriptor with the 128-byte swizzle: bits 0-13 address >> 4, 16-29 LBO >> 4,
 * 32-45 SBO >> 4, 62-63 layout (1 = 128B swizzle); base offset 0 (sub-tiles are 1024-byte aligned). */
__device__ __forceinline__ uint64_t mw_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           ((uint64_t)1 << 62);
}
/* K-major operand (Q, K, P): rows of 128 bytes, 8-row groups 1024 bytes apart. */
__device__ __forceinline__ uint64_t mw_desc_k(uint32_t saddr) { return mw_desc(saddr, 16, 1024); }
/* MN-major operand (V = the K tile read transposed): 64-column blocks 8 KB apart, 8-key groups 1 KB. */
__device__ __forceinline__ uint64_t mw_desc_mn(uint32_t saddr) { return mw_desc(saddr, MW_SUB, 1024); }

__device__ __forceinline__ void mw_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void mw_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void mw_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* Shared memory written by this thread's ordinary stores or cp.async, read next by wgmma. */
__device__ __forceinline__ void mw_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
/* Pins a register at this point: the compiler may not move its uses across (wgmma writes it late). */
__device__ __forceinline__ void mw_reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }
/* Named barrier 1 over both warpgroups: warpgroup 0 arrives (P is ready), warpgroup 1 waits. */
__device__ __forceinline__ void mw_bar_arrive() { asm volatile("bar.arrive 1, 256;\n" ::: "memory"); }
__device__ __forceinline__ void mw_bar_sync() { asm volatile("bar.sync 1, 256;\n" ::: "memory"); }

/* 2^x (MUFU.EX2, flush to zero; 2^-inf = 0) */
__device__ __forceinline__ float mw_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ uint32_t mw_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* S (+)= Q . K^T: A [64 x 16] and B [64 x 16] K-major bf16 in shared memory; scale_d 0 ignores d. */
__device__ __forceinline__ void wgmma_s_m64n64(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
}

/* O += P . V: A = P [64 x 16] bf16 from registers (the mma.sync m16n8k16 A fragment per warp),
 * B = V [16 keys x 256 columns] from shared memory, MN-major (imm-trans-b 1). */
__device__ __forceinline__ void wgmma_pv_rs(float (&d)[128], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                            uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %133, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "{%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(db), "r"(1));
}

/* O += P . V: A = P [64 x 16] K-major in shared memory, B as in wgmma_pv_rs. */
__device__ __forceinline__ void wgmma_pv_ss(float (&d)[128], uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "setp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, 0, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "r"(1));
}
#endif  // DG_MLA_WGMMA

#ifdef DG_MLA_WGMMA
__device__ __forceinline__ void mw_cp_async16(uint32_t dst, const void *src, bool pred) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(pred ? 16 : 0)
                 : "memory");
}
#endif

/* Pass 1 for (head group blockIdx.x, split blockIdx.y, query row blockIdx.z). direct (one split):
 * write bf16 out normalised instead of the workspace. */
__global__ void __launch_bounds__(MW_THREADS, 1)
    mla_decode_wgmma_kernel(dg_mla_decode_args a, int n_splits, int64_t chunk, int direct) {
#ifdef DG_MLA_WGMMA
    extern __shared__ __align__(1024) uint8_t mw_smem[];
    /* the swizzle atoms (8 rows x 128 bytes) must start on 1024-byte boundaries: align by hand */
    const uint32_t raw = mw_smem_u32(mw_smem);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t *sm = mw_smem + (base - raw);
    const uint32_t sQ = base, sK = base + MW_OFF_K, sP = base + MW_OFF_P;
    float *corr_s = (float *)(sm + MW_OFF_CORR);
    float *l_s = (float *)(sm + MW_OFF_L);

    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31, w = (tid >> 5) & 3;
    const int g = lane >> 2, q = lane & 3;
    const int row0 = 16 * w + g; /* this thread's fragment rows (heads of the group): row0, row0 + 8 */
    const int64_t h0 = (int64_t)blockIdx.x * MW_HEADS;
    const int split = blockIdx.y;
    const int64_t r = blockIdx.z;
    const int64_t b = r / a.q_per_seq, qi = r % a.q_per_seq;
    pdl_enter();
    const int64_t L = (int64_t)a.seq_lens[b] - (a.q_per_seq - 1 - qi);
    const int64_t k0 = (int64_t)split * chunk;
    const int64_t k1 = min(L, k0 + chunk);
    if (k0 >= k1) {
        if (direct) { /* one split: a row without keys gets zeros, as the combine writes */
            bf *out = (bf *)a.out + r * a.ld_out_tok;
            for (int i = tid; i < MW_HEADS * MW_LAT / 2; i += MW_THREADS) {
                const int hh = i / (MW_LAT / 2), c = 2 * (i % (MW_LAT / 2));
                *(uint32_t *)(out + (h0 + hh) * a.ld_out_head + c) = 0u;
            }
        }
        return;
    }

    /* loader: thread tid copies row tid / 4 (a head of Q, a key of a tile), chunks tid % 4 + 4i */
    const int lrow = tid >> 2, lq = tid & 3, lsw = lrow & 7;
    const uint32_t lrow_off = (uint32_t)lrow * 128u;
    const bf *cache = (const bf *)a.cache;
    const int32_t *bt = a.block_table + b * a.max_blocks;
    {
        const int64_t h = h0 + lrow;
        const bf *ql = (const bf *)a.q_lat + r * a.ld_q_tok + h * a.ld_q_head;
        const bf *qp = (const bf *)a.q_pe + r * a.ld_qpe_tok + h * a.ld_qpe_head;
#pragma unroll
        for (int i = 0; i < MW_CHUNKS / 4; i++) {
            const int c = 4 * i + lq; /* chunk c: sub-tile i / 2, 16-byte column 4 (i % 2) + lq */
            const bf *src = c < MW_LAT / 8 ? ql + c * 8 : qp + (c - MW_LAT / 8) * 8;
            mw_cp_async16(sQ + (i >> 1) * MW_SUB + lrow_off + ((uint32_t)((4 * (i & 1) + lq) ^ lsw) << 4), src, true);
        }
    }
    auto load_tile = [&](int stage, int64_t kt) {
        const int64_t p = kt + lrow;
        const bool ok = p < k1; /* rows past the range: zeros (P . V must not see stale or NaN rows) */
        const bf *src = cache;
        if (ok) src = cache + ((int64_t)bt[p / a.block_size] * a.block_size + p % a.block_size) * MW_D;
        const uint32_t dst = sK + (uint32_t)stage * MW_TILE + lrow_off;
#pragma unroll
        for (int i = 0; i < MW_CHUNKS / 4; i++) {
            const int c = 4 * i + lq;
            mw_cp_async16(dst + (i >> 1) * MW_SUB + ((uint32_t)((4 * (i & 1) + lq) ^ lsw) << 4), ok ? src + c * 8 : src,
                          ok);
        }
    };
    load_tile(0, k0);
    cp_async_commit();

    float o[128]; /* O[row0 (+8), 256 wg + 8j + 2q + {0, 1}]: the m64n256 fragment */
#pragma unroll
    for (int i = 0; i < 128; i++) o[i] = 0.f;
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f}; /* warpgroup 0's rows; m in base 2 */
    const float sl2 = a.scale * 1.4426950408889634f;                /* scale * log2(e) */

    const int ntiles = (int)((k1 - k0 + MW_TK - 1) / MW_TK);
    for (int it = 0; it < ntiles; it++) {
        /* tile it (and Q) landed for every thread; everyone is done with tile it - 1, P and corr */
        cp_async_wait<0>();
        mw_proxy_fence();
        __syncthreads();
        if (it + 1 < ntiles) load_tile((it + 1) & 1, k0 + (int64_t)(it + 1) * MW_TK);
        cp_async_commit();
        const uint32_t sk = sK + (uint32_t)(it & 1) * MW_TILE;
        if (wg == 0) {
            /* S = Q K^T over the 576 columns: 36 k16 steps, 4 per sub-tile */
            float s[32];
#pragma unroll
            for (int i = 0; i < 32; i++) s[i] = 0.f;
#pragma unroll
            for (int i = 0; i < 32; i++) mw_reg_fence(s[i]);
            mw_fence();
#pragma unroll
            for (int ks = 0; ks < MW_D / 16; ks++) {
                const uint32_t off = (uint32_t)(ks >> 2) * MW_SUB + (uint32_t)(ks & 3) * 32u;
                wgmma_s_m64n64(s, mw_desc_k(sQ + off), mw_desc_k(sk + off), ks > 0 ? 1 : 0);
            }
            mw_commit();
            mw_wait0();
#pragma unroll
            for (int i = 0; i < 32; i++) mw_reg_fence(s[i]);

            /* the online softmax of rows row0 (rr 0: s[4j + e]) and row0 + 8 (rr 1: s[4j + 2 + e]), in
             * base 2 (scores times scale * log2(e); m_r likewise, turned natural for the workspace): the
             * 64 keys of a row are spread over the quad's 4 threads. ex2(-inf) = 0 covers the masked
             * keys and the first tile's rescale without branches. */
            const int nvalid = (int)min((int64_t)MW_TK, k1 - (k0 + (int64_t)it * MW_TK));
            float corr[2];
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                float mx = -INFINITY;
#pragma unroll
                for (int j = 0; j < 8; j++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float &v = s[4 * j + 2 * rr + e];
                        v = 8 * j + 2 * q + e < nvalid ? v * sl2 : -INFINITY;
                        mx = fmaxf(mx, v);
                    }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_new = fmaxf(m_r[rr], mx); /* finite: a tile has at least one key */
                corr[rr] = mw_ex2(m_r[rr] - m_new);
                float sum = 0.f;
#pragma unroll
                for (int j = 0; j < 8; j++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float &v = s[4 * j + 2 * rr + e];
                        /* the weight the MMA sees (bf16) is the one l counts */
                        v = __bfloat162float(__float2bfloat16(mw_ex2(v - m_new)));
                        sum += v;
                    }
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                l_r[rr] = l_r[rr] * corr[rr] + sum;
                m_r[rr] = m_new;
            }
            /* P as bf16: pa[2j] = row0, pa[2j + 1] = row0 + 8, columns 8j + 2q + {0, 1}; also to shared
             * memory (swizzled K-major [64 x 64]) for warpgroup 1 */
            uint32_t pa[16];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                pa[2 * j] = mw_pack(s[4 * j], s[4 * j + 1]);
                pa[2 * j + 1] = mw_pack(s[4 * j + 2], s[4 * j + 3]);
                const uint32_t cofs = ((uint32_t)(j ^ g) << 4) + 4u * (uint32_t)q; /* (row0 + 8) & 7 == row0 & 7 == g */
                *(uint32_t *)(sm + MW_OFF_P + row0 * 128 + cofs) = pa[2 * j];
                *(uint32_t *)(sm + MW_OFF_P + (row0 + 8) * 128 + cofs) = pa[2 * j + 1];
            }
            if (q == 0) {
                corr_s[row0] = corr[0];
                corr_s[row0 + 8] = corr[1];
            }
            mw_proxy_fence();
            mw_bar_arrive();
            /* O[:, 0:256] = O * corr + P V[:, 0:256], k16 step kk: keys 16kk.. = pa[4kk .. 4kk + 3] */
            if (!__all_sync(0xffffffffu, corr[0] == 1.f && corr[1] == 1.f)) {
#pragma unroll
                for (int j = 0; j < 32; j++) {
                    o[4 * j] *= corr[0];
                    o[4 * j + 1] *= corr[0];
                    o[4 * j + 2] *= corr[1];
                    o[4 * j + 3] *= corr[1];
                }
            }
#pragma unroll
            for (int i = 0; i < 128; i++) mw_reg_fence(o[i]);
            mw_fence();
#pragma unroll
            for (int kk = 0; kk < MW_TK / 16; kk++)
                wgmma_pv_rs(o, pa[4 * kk], pa[4 * kk + 1], pa[4 * kk + 2], pa[4 * kk + 3],
                            mw_desc_mn(sk + (uint32_t)kk * 2048u));
            mw_commit();
            mw_wait0();
#pragma unroll
            for (int i = 0; i < 128; i++) mw_reg_fence(o[i]);
        } else {
            /* O[:, 256:512] = O * corr + P V[:, 256:512], P from shared memory */
            mw_bar_sync();
            const float c0 = corr_s[row0], c1 = corr_s[row0 + 8];
            if (!__all_sync(0xffffffffu, c0 == 1.f && c1 == 1.f)) {
#pragma unroll
                for (int j = 0; j < 32; j++) {
                    o[4 * j] *= c0;
                    o[4 * j + 1] *= c0;
                    o[4 * j + 2] *= c1;
                    o[4 * j + 3] *= c1;
                }
            }
#pragma unroll
            for (int i = 0; i < 128; i++) mw_reg_fence(o[i]);
            mw_fence();
#pragma unroll
            for (int kk = 0; kk < MW_TK / 16; kk++)
                wgmma_pv_ss(o, mw_desc_k(sP + (uint32_t)kk * 32u), mw_desc_mn(sk + 4u * MW_SUB + (uint32_t)kk * 2048u));
            mw_commit();
            mw_wait0();
#pragma unroll
            for (int i = 0; i < 128; i++) mw_reg_fence(o[i]);
        }
    }
    cp_async_wait<0>();

    const int col0 = 256 * wg + 2 * q;
    if (direct) {
        if (wg == 0 && q == 0) {
            l_s[row0] = l_r[0];
            l_s[row0 + 8] = l_r[1];
        }
        __syncthreads();
        const float l0 = l_s[row0], l1 = l_s[row0 + 8];
        const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
        bf *out0 = (bf *)a.out + r * a.ld_out_tok + (h0 + row0) * a.ld_out_head + col0;
        bf *out1 = out0 + 8 * a.ld_out_head;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            *(uint32_t *)(out0 + 8 * j) = mw_pack(o[4 * j] * i0, o[4 * j + 1] * i0);
            *(uint32_t *)(out1 + 8 * j) = mw_pack(o[4 * j + 2] * i1, o[4 * j + 3] * i1);
        }
    } else {
        const int64_t ld = (int64_t)n_splits * (MW_LAT + 2); /* floats from one head's slot to the next */
        float *ws0 = (float *)a.workspace + ((r * a.n_heads + h0 + row0) * n_splits + split) * (int64_t)(MW_LAT + 2);
        float *ws1 = ws0 + 8 * ld;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            *(float2 *)(ws0 + col0 + 8 * j) = make_float2(o[4 * j], o[4 * j + 1]);
            *(float2 *)(ws1 + col0 + 8 * j) = make_float2(o[4 * j + 2], o[4 * j + 3]);
        }
        if (wg == 0 && q == 0) {
            ws0[MW_LAT] = m_r[0] * 0.6931471805599453f; /* natural units, as the combine reads m */
            ws0[MW_LAT + 1] = l_r[0];
            ws1[MW_LAT] = m_r[1] * 0.6931471805599453f;
            ws1[MW_LAT + 1] = l_r[1];
        }
    }
#else
    /* Built for an architecture without wgmma: never launched (mla_decode_wgmma_ok checks the device). */
    (void)a;
    (void)n_splits;
    (void)chunk;
    (void)direct;
    __trap();
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Host side
 * ------------------------------------------------------------------------------------------- */
int mw_sms() {
    static const int n = device_attr(cudaDevAttrMultiProcessorCount, 132);
    return n;
}

/* The kernel's real sm_90a code on a cc 9.0 device with the shared memory (sm90a_kernel_ok). Once
 * per process. */
bool mw_device_ok() {
    static const bool ok = sm90a_kernel_ok((const void *)mla_decode_wgmma_kernel, MW_SMEM);
    return ok;
}

}  // namespace

bool mla_decode_wgmma_ok(const dg_mla_decode_args *a) {
    static const bool off = [] {
        const char *e = getenv("DEEPGO_MLA_DECODE");
        return e && (strcmp(e, "simt") == 0 || strcmp(e, "mma") == 0);
    }();
    if (off || !a) return false;
    if (a->dtype != DG_BF16 || a->cache_dtype != DG_BF16 || a->latent != MW_LAT || a->rope != MW_ROPE) return false;
    if (a->n_heads <= 0 || a->n_heads % MW_HEADS != 0 || a->n_heads / MW_HEADS > 65535) return false;
    if ((uintptr_t)a->cache % 16 != 0 || !a->workspace || (uintptr_t)a->workspace % 8 != 0) return false;
    if ((uintptr_t)a->q_lat % 16 != 0 || (uintptr_t)a->q_pe % 16 != 0 || a->ld_q_tok % 8 != 0 ||
        a->ld_q_head % 8 != 0 || a->ld_qpe_tok % 8 != 0 || a->ld_qpe_head % 8 != 0)
        return false;
    return mw_device_ok();
}

int mla_decode_wgmma_splits(const dg_mla_decode_args *a, int max_splits) {
    /* cost(s) = waves * (tiles per split + 2): the 2 stands for a split's fixed work (Q, the
     * pipeline's fill, the partial's write and the combine's read) */
    const int64_t blocks1 = a->batch * a->q_per_seq * (a->n_heads / MW_HEADS);
    const int64_t sms = mw_sms();
    const int64_t tiles = std::max<int64_t>(1, ceil_div(a->max_seq_len > 0 ? a->max_seq_len : 1, MW_TK));
    const int64_t cap = std::max<int64_t>(1, std::min<int64_t>(max_splits, tiles));
    int64_t best = 1, best_cost = INT64_MAX;
    for (int64_t s = 1; s <= cap; s++) {
        const int64_t cost = ceil_div(blocks1 * s, sms) * (ceil_div(tiles, s) + 2);
        if (cost < best_cost) best_cost = cost, best = s;
    }
    return (int)best;
}

dg_status mla_decode_wgmma(const dg_mla_decode_args *a, int splits, int64_t chunk, bool *wrote_out,
                           cudaStream_t st) {
    if (dg_status e = opt_in_smem<mla_decode_wgmma_kernel>(MW_SMEM, "mla_decode_wgmma_kernel")) return e;
    const int64_t rows = a->batch * a->q_per_seq;
    const bool direct = splits == 1 && (uintptr_t)a->out % 4 == 0 && a->ld_out_tok % 2 == 0 && a->ld_out_head % 2 == 0;
    const dim3 grid((unsigned)(a->n_heads / MW_HEADS), (unsigned)splits, (unsigned)rows);
    launch_pdl(mla_decode_wgmma_kernel, grid, MW_THREADS, MW_SMEM, st, *a, splits, chunk, direct ? 1 : 0);
    DG_LAUNCHED("mla_decode_wgmma_kernel");
    *wrote_out = direct;
    return DG_OK;
}

}  // namespace dg
