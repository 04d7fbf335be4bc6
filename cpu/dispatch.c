/*
 * dispatch.c: run-time SIMD dispatch of the inner loops every CPU kernel is built from.
 *
 * The level is chosen once (dg_dispatch_init) with __builtin_cpu_supports on x86-64:
 *   avx512   AVX-512F/BW/VL (+ avx512_bf16's vdpbf16ps for bf16 x bf16 linears only: both operands
 *            already bf16; f32 activations are never rounded to bf16 to use it)
 *   avx2     AVX2 + FMA + F16C
 *   neon     arm64 (always present there)
 *   scalar   anything else, and the reference the others are tested against.
 * Each vector function is compiled with __attribute__((target(...))) so the library itself is
 * built for baseline x86-64 and runs on any machine. DG_SIMD=scalar|avx2|avx512-nobf16|avx512 in
 * the environment caps the level (for tests and benchmarks of each variant; read once, at init).
 *
 * Functions (table dg_k, see internal.h):
 *   to_f32(dst, src, n, dtype)      row conversion (F8: e4m3 value, unscaled)
 *   dot(a_f32, b, n, dtype)         float32 dot product, per-lane accumulators reduced at the end
 *   axpy(y, alpha, x, n, dtype)     y += alpha * x
 *   lin_tile(w, nr, xs, nt, k0, k1, acc)        the linear micro-kernel: up to 4 weight rows x
 *                                               4 tokens, weight converted in registers (F8
 *                                               dequantised block by block with its scale)
 *   lin_tile_bf16(...)              the same for bf16 weights x bf16 activations (vdpbf16ps)
 *   gemm_8x32(...)                  packed-GEMM micro-kernel: 8 broadcast weight rows x 32 tokens
 *                                   along the lanes (AVX-512 only; NULL elsewhere)
 *   act_quant(dst, x, n, bc)        W8A8 activation quantisation (kernel.py act_quant), as values
 *   attn_pv(O, ..., P, ..., V, ...) attention P.V, 4 heads x 64 columns of accumulators
 * E4M3 in vectors: the 7 magnitude bits moved to an f16's bits 13..7 and the sign to bit 15 give
 * an f16 equal to the e4m3 value / 256 (normals and subnormals alike; the NaN code 0x7f is not
 * preserved); vcvtph2ps then converts, and the 256 is folded into the block scale.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(DG_X86)
#include <immintrin.h>
#endif
#if defined(DG_ARM64)
#include <arm_neon.h>
#endif

dg_kernels_t dg_k;

/* ------------------------------------------------------------------------------------------ */
/* scalar                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void to_f32_scalar(float *dst, const void *src, int64_t n, int32_t dtype) {
    switch (dtype) {
    case DG_F32: memcpy(dst, src, (size_t)n * 4); break;
    case DG_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = dg_bf16_to_f32(((const uint16_t *)src)[i]);
        break;
    case DG_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = dg_f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case DG_F8E4M3:
        for (int64_t i = 0; i < n; i++) dst[i] = dg_e4m3_table[((const uint8_t *)src)[i]];
        break;
    }
}

static float dot_scalar(const float *a, const void *b, int64_t n, int32_t dtype) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * dg_load(b, i + j, dtype);
    for (; i < n; i++) acc[0] += a[i] * dg_load(b, i, dtype);
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void axpy_scalar(float *y, float alpha, const void *x, int64_t n, int32_t dtype) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * dg_load(x, i, dtype);
}

static void attn_pv_scalar(float *O, int64_t ldo, int nh, const float *P, int64_t ldp, int nk, const float *V,
                           int64_t ldv, int64_t L) {
    for (int h = 0; h < nh; h++)
        for (int k = 0; k < nk; k++) {
            float p = P[h * ldp + k];
            const float *v = V + k * ldv;
            float *o = O + h * ldo;
            for (int64_t c = 0; c < L; c++) o[c] += p * v[c];
        }
}

void dg_lin_tile_scalar(const dg_wrows *w, int nr, const float *const *xs, int nt, int64_t k0,
                        int64_t k1, float *acc) {
    int es = dg_dtype_size(w->dtype);
    for (int r = 0; r < nr; r++) {
        const char *row = (const char *)w->w + (int64_t)r * w->ldw * es;
        for (int t = 0; t < nt; t++) {
            const float *x = xs[t];
            float s = 0;
            if (w->dtype == DG_F8E4M3) {
                const uint8_t *q = (const uint8_t *)row;
                int64_t k = k0;
                while (k < k1) {
                    int64_t kb = (k / w->bc + 1) * w->bc;
                    if (kb > k1) kb = k1;
                    float p = 0;
                    for (; k < kb; k++) p += dg_e4m3_table[q[k]] * x[k];
                    s += p * w->srow[r][(k - 1) / w->bc];
                }
            } else {
                for (int64_t k = k0; k < k1; k++) s += dg_load(row, k, w->dtype) * x[k];
            }
            acc[r * 4 + t] += s;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* AVX2 + FMA + F16C                                                                          */
/* ------------------------------------------------------------------------------------------ */
#if defined(DG_X86)
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

AVX2_TARGET static inline __m256 avx2_load8(const void *p, int64_t i, int32_t dtype) {
    switch (dtype) {
    case DG_F32: return _mm256_loadu_ps((const float *)p + i);
    case DG_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case DG_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    default: { /* F8E4M3, value / 256 */
        __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)p + i));
        __m128i w = _mm_cvtepu8_epi16(b);
        __m128i h = _mm_or_si128(_mm_and_si128(_mm_slli_epi16(w, 8), _mm_set1_epi16((short)0x8000)),
                                 _mm_and_si128(_mm_slli_epi16(w, 7), _mm_set1_epi16(0x3f80)));
        return _mm256_cvtph_ps(h);
    }
    }
}

AVX2_TARGET static inline float avx2_hsum(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

AVX2_TARGET static void to_f32_avx2(float *dst, const void *src, int64_t n, int32_t dtype) {
    int64_t i = 0;
    __m256 k256 = _mm256_set1_ps(256.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = avx2_load8(src, i, dtype);
        if (dtype == DG_F8E4M3) v = _mm256_mul_ps(v, k256);
        _mm256_storeu_ps(dst + i, v);
    }
    if (i < n) {
        if (dtype == DG_F8E4M3) {
            for (; i < n; i++) dst[i] = dg_e4m3_table[((const uint8_t *)src)[i]];
        } else {
            for (; i < n; i++) dst[i] = dg_load(src, i, dtype);
        }
    }
}

AVX2_TARGET static float dot_avx2(const float *a, const void *b, int64_t n, int32_t dtype) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), avx2_load8(b, i, dtype), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), avx2_load8(b, i + 8, dtype), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), avx2_load8(b, i, dtype), s0);
    float s = avx2_hsum(_mm256_add_ps(s0, s1));
    if (dtype == DG_F8E4M3) s *= 256.0f;
    for (; i < n; i++) s += a[i] * dg_load(b, i, dtype);
    return s;
}

AVX2_TARGET static void axpy_avx2(float *y, float alpha, const void *x, int64_t n, int32_t dtype) {
    __m256 va = _mm256_set1_ps(dtype == DG_F8E4M3 ? alpha * 256.0f : alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, avx2_load8(x, i, dtype), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * dg_load(x, i, dtype);
}

/* nr x nt register tile; columns in steps of 8; F8 handled per block segment. */
AVX2_TARGET static void lin_tile_avx2(const dg_wrows *w, int nr, const float *const *xs, int nt,
                                      int64_t k0, int64_t k1, float *acc) {
    if (nr != 4 || (nt != 1 && nt != 2)) {
        /* general shapes: split into rows of up to 4 x tokens of up to 2 */
        if (nt > 2) {
            for (int t = 0; t < nt; t += 2) {
                float a2[16] = {0};
                int n2 = DG_MIN(2, nt - t);
                if (nr == 4) {
                    lin_tile_avx2(w, 4, xs + t, n2, k0, k1, a2);
                } else {
                    for (int r = 0; r < nr; r++) {
                        dg_wrows w1 = *w;
                        w1.w = (const char *)w->w + (int64_t)r * w->ldw * dg_dtype_size(w->dtype);
                        w1.srow[0] = w->srow[r];
                        float a1[16] = {0};
                        lin_tile_avx2(&w1, 1, xs + t, n2, k0, k1, a1);
                        for (int j = 0; j < n2; j++) a2[r * 4 + j] = a1[j];
                    }
                }
                for (int r = 0; r < nr; r++)
                    for (int j = 0; j < n2; j++) acc[r * 4 + t + j] += a2[r * 4 + j];
            }
            return;
        }
        if (nr != 4) {
            /* 1..3 rows, 1..2 tokens: one row at a time */
            int es = dg_dtype_size(w->dtype);
            for (int r = 0; r < nr; r++) {
                const char *row = (const char *)w->w + (int64_t)r * w->ldw * es;
                for (int t = 0; t < nt; t++) {
                    float s = 0;
                    if (w->dtype == DG_F8E4M3) {
                        int64_t k = k0;
                        while (k < k1) {
                            int64_t kb = DG_MIN((k / w->bc + 1) * w->bc, k1);
                            s += dot_avx2(xs[t] + k, row + k, kb - k, DG_F8E4M3) * w->srow[r][k / w->bc];
                            k = kb;
                        }
                    } else {
                        s = dot_avx2(xs[t] + k0, row + k0 * es, k1 - k0, w->dtype);
                    }
                    acc[r * 4 + t] += s;
                }
            }
            return;
        }
    }
    /* 4 rows x nt (1 or 2) tokens */
    int es = dg_dtype_size(w->dtype);
    const char *r0 = (const char *)w->w;
    int64_t ldb = w->ldw * es;
    int32_t dt = w->dtype;
    int64_t bc = dt == DG_F8E4M3 ? w->bc : (k1 - k0);
    __m256 tot[8];
    for (int j = 0; j < 8; j++) tot[j] = _mm256_setzero_ps();
    float tail[8] = {0};
    int64_t k = k0;
    while (k < k1) {
        int64_t kb = dt == DG_F8E4M3 ? DG_MIN((k / bc + 1) * bc, k1) : k1;
        __m256 a[8];
        for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
        int64_t kk = k;
        if (nt == 2) {
            for (; kk + 8 <= kb; kk += 8) {
                __m256 x0 = _mm256_loadu_ps(xs[0] + kk), x1 = _mm256_loadu_ps(xs[1] + kk);
                __m256 w0 = avx2_load8(r0, kk, dt), w1 = avx2_load8(r0 + ldb, kk, dt);
                __m256 w2 = avx2_load8(r0 + 2 * ldb, kk, dt), w3 = avx2_load8(r0 + 3 * ldb, kk, dt);
                a[0] = _mm256_fmadd_ps(w0, x0, a[0]);
                a[1] = _mm256_fmadd_ps(w0, x1, a[1]);
                a[2] = _mm256_fmadd_ps(w1, x0, a[2]);
                a[3] = _mm256_fmadd_ps(w1, x1, a[3]);
                a[4] = _mm256_fmadd_ps(w2, x0, a[4]);
                a[5] = _mm256_fmadd_ps(w2, x1, a[5]);
                a[6] = _mm256_fmadd_ps(w3, x0, a[6]);
                a[7] = _mm256_fmadd_ps(w3, x1, a[7]);
            }
        } else {
            for (; kk + 16 <= kb; kk += 16) {
                __m256 x0 = _mm256_loadu_ps(xs[0] + kk), x1 = _mm256_loadu_ps(xs[0] + kk + 8);
                a[0] = _mm256_fmadd_ps(avx2_load8(r0, kk, dt), x0, a[0]);
                a[1] = _mm256_fmadd_ps(avx2_load8(r0, kk + 8, dt), x1, a[1]);
                a[2] = _mm256_fmadd_ps(avx2_load8(r0 + ldb, kk, dt), x0, a[2]);
                a[3] = _mm256_fmadd_ps(avx2_load8(r0 + ldb, kk + 8, dt), x1, a[3]);
                a[4] = _mm256_fmadd_ps(avx2_load8(r0 + 2 * ldb, kk, dt), x0, a[4]);
                a[5] = _mm256_fmadd_ps(avx2_load8(r0 + 2 * ldb, kk + 8, dt), x1, a[5]);
                a[6] = _mm256_fmadd_ps(avx2_load8(r0 + 3 * ldb, kk, dt), x0, a[6]);
                a[7] = _mm256_fmadd_ps(avx2_load8(r0 + 3 * ldb, kk + 8, dt), x1, a[7]);
            }
            for (; kk + 8 <= kb; kk += 8) {
                __m256 x0 = _mm256_loadu_ps(xs[0] + kk);
                a[0] = _mm256_fmadd_ps(avx2_load8(r0, kk, dt), x0, a[0]);
                a[2] = _mm256_fmadd_ps(avx2_load8(r0 + ldb, kk, dt), x0, a[2]);
                a[4] = _mm256_fmadd_ps(avx2_load8(r0 + 2 * ldb, kk, dt), x0, a[4]);
                a[6] = _mm256_fmadd_ps(avx2_load8(r0 + 3 * ldb, kk, dt), x0, a[6]);
            }
            a[0] = _mm256_add_ps(a[0], a[1]);
            a[2] = _mm256_add_ps(a[2], a[3]);
            a[4] = _mm256_add_ps(a[4], a[5]);
            a[6] = _mm256_add_ps(a[6], a[7]);
            a[1] = a[3] = a[5] = a[7] = _mm256_setzero_ps();
        }
        /* scalar tail of this segment (exact e4m3 values, so 1/256 applied below) */
        float ts[8] = {0};
        for (; kk < kb; kk++)
            for (int r = 0; r < 4; r++) {
                float wv = dg_load(r0 + r * ldb, kk, dt);
                if (dt == DG_F8E4M3) wv *= (1.0f / 256.0f);
                for (int t = 0; t < nt; t++) ts[r * 2 + t] += wv * xs[t][kk];
            }
        for (int r = 0; r < 4; r++) {
            float sc = dt == DG_F8E4M3 ? w->srow[r][k / bc] * 256.0f : 1.0f;
            __m256 vs = _mm256_set1_ps(sc);
            for (int t = 0; t < 2; t++) {
                int j = nt == 2 ? r * 2 + t : r * 2;
                if (t >= nt) continue;
                tot[r * 2 + t] = _mm256_fmadd_ps(a[j], vs, tot[r * 2 + t]);
                tail[r * 2 + t] += ts[r * 2 + t] * sc;
            }
        }
        k = kb;
    }
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < nt; t++) acc[r * 4 + t] += avx2_hsum(tot[r * 2 + t]) + tail[r * 2 + t];
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* init                                                                                        */
/* ------------------------------------------------------------------------------------------ */


/* ------------------------------------------------------------------------------------------ */
/* AVX-512 (F, BW, VL; + BF16 for lin_tile_bf16)                                              */
/* ------------------------------------------------------------------------------------------ */
#if defined(DG_X86)
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define AVX512BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

/* 16 elements (mask m) at p + i as f32; F8 gives value / 256 (sign-extend the byte, shift the
 * 7 magnitude bits to f16 bits 13..7, keep the sign at bit 15). */
AVX512_TARGET static inline __m512 z_load16(const void *p, int64_t i, int32_t dtype, __mmask16 m) {
    switch (dtype) {
    case DG_F32: return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    case DG_BF16: {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case DG_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
    default: {
        __m128i b = _mm_maskz_loadu_epi8(m, (const uint8_t *)p + i);
        __m256i w = _mm256_cvtepi8_epi16(b);
        __m256i h = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xbf80));
        return _mm512_cvtph_ps(h);
    }
    }
}

AVX512_TARGET static inline __m512 z_full16(const void *p, int64_t i, int32_t dtype) {
    switch (dtype) {
    case DG_F32: return _mm512_loadu_ps((const float *)p + i);
    case DG_BF16: {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case DG_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
    default: {
        __m128i b = _mm_loadu_si128((const __m128i *)((const uint8_t *)p + i));
        __m256i w = _mm256_cvtepi8_epi16(b);
        __m256i h = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xbf80));
        return _mm512_cvtph_ps(h);
    }
    }
}

static inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

AVX512_TARGET static void to_f32_avx512(float *dst, const void *src, int64_t n, int32_t dtype) {
    __m512 k = _mm512_set1_ps(dtype == DG_F8E4M3 ? 256.0f : 1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = z_full16(src, i, dtype);
        if (dtype == DG_F8E4M3) v = _mm512_mul_ps(v, k);
        _mm512_storeu_ps(dst + i, v);
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = z_load16(src, i, dtype, m);
        if (dtype == DG_F8E4M3) v = _mm512_mul_ps(v, k);
        _mm512_mask_storeu_ps(dst + i, m, v);
    }
}

AVX512_TARGET static float dot_avx512(const float *a, const void *b, int64_t n, int32_t dtype) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), z_full16(b, i, dtype), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), z_full16(b, i + 16, dtype), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), z_load16(b, i, dtype, m), s0);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    return dtype == DG_F8E4M3 ? s * 256.0f : s;
}

AVX512_TARGET static void axpy_avx512(float *y, float alpha, const void *x, int64_t n, int32_t dtype) {
    __m512 va = _mm512_set1_ps(dtype == DG_F8E4M3 ? alpha * 256.0f : alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, z_full16(x, i, dtype), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, z_load16(x, i, dtype, m), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

/* The micro-kernel: NR rows x NT tokens of accumulators, templated by macro. Over each segment
 * (an F8 scale block, or the whole range) the weight vector of row r is converted once, multiplied
 * by the row's block scale (F8) and used for the NT tokens. */
#define LIN_TILE_512(NR, NT, DTC, SFX)                                                              \
    AVX512_TARGET static void lin_tile_512_##NR##x##NT##SFX(const dg_wrows *w, const float *const *xs, \
                                                       int64_t k0, int64_t k1, float *acc) {        \
        const int32_t dt = DTC;                                                                     \
        const int es = dg_dtype_size(dt);                                                           \
        const char *rp[NR];                                                                         \
        for (int r = 0; r < NR; r++) rp[r] = (const char *)w->w + (int64_t)r * w->ldw * es;        \
        __m512 a[NR][NT];                                                                           \
        for (int r = 0; r < NR; r++)                                                                \
            for (int t = 0; t < NT; t++) a[r][t] = _mm512_setzero_ps();                             \
        const int64_t bc = dt == DG_F8E4M3 ? w->bc : (k1 - k0);                                     \
        int64_t k = k0;                                                                             \
        while (k < k1) {                                                                            \
            int64_t kb = dt == DG_F8E4M3 ? DG_MIN((k / bc + 1) * bc, k1) : k1;                      \
            __m512 sc[NR];                                                                          \
            for (int r = 0; r < NR; r++)                                                            \
                sc[r] = _mm512_set1_ps(dt == DG_F8E4M3 ? w->srow[r][k / bc] * 256.0f : 1.0f);      \
            int64_t kk = k;                                                                         \
            if (dt == DG_F8E4M3 && NT <= 2) {                                                       \
                /* few tokens: block accumulators, the scale applied once per block */             \
                __m512 p[NR][NT];                                                                   \
                for (int r = 0; r < NR; r++)                                                        \
                    for (int t = 0; t < NT; t++) p[r][t] = _mm512_setzero_ps();                     \
                for (; kk + 16 <= kb; kk += 16) {                                                   \
                    __m512 xv[NT];                                                                  \
                    for (int t = 0; t < NT; t++) xv[t] = _mm512_loadu_ps(xs[t] + kk);               \
                    for (int r = 0; r < NR; r++) {                                                  \
                        __m512 wv = z_full16(rp[r], kk, dt);                                        \
                        for (int t = 0; t < NT; t++) p[r][t] = _mm512_fmadd_ps(wv, xv[t], p[r][t]); \
                    }                                                                               \
                }                                                                                   \
                for (int r = 0; r < NR; r++)                                                        \
                    for (int t = 0; t < NT; t++) a[r][t] = _mm512_fmadd_ps(p[r][t], sc[r], a[r][t]); \
            }                                                                                       \
            for (; kk + 16 <= kb; kk += 16) {                                                       \
                __m512 xv[NT];                                                                      \
                for (int t = 0; t < NT; t++) xv[t] = _mm512_loadu_ps(xs[t] + kk);                   \
                for (int r = 0; r < NR; r++) {                                                      \
                    __m512 wv = z_full16(rp[r], kk, dt);                                            \
                    if (dt == DG_F8E4M3) wv = _mm512_mul_ps(wv, sc[r]);                             \
                    for (int t = 0; t < NT; t++) a[r][t] = _mm512_fmadd_ps(wv, xv[t], a[r][t]);     \
                }                                                                                   \
            }                                                                                       \
            if (kk < kb) {                                                                          \
                __mmask16 m = tail_mask(kb - kk);                                                   \
                __m512 xv[NT];                                                                      \
                for (int t = 0; t < NT; t++) xv[t] = _mm512_maskz_loadu_ps(m, xs[t] + kk);          \
                for (int r = 0; r < NR; r++) {                                                      \
                    __m512 wv = z_load16(rp[r], kk, dt, m);                                         \
                    if (dt == DG_F8E4M3) wv = _mm512_mul_ps(wv, sc[r]);                             \
                    for (int t = 0; t < NT; t++) a[r][t] = _mm512_fmadd_ps(wv, xv[t], a[r][t]);     \
                }                                                                                   \
            }                                                                                       \
            k = kb;                                                                                 \
        }                                                                                           \
        for (int r = 0; r < NR; r++)                                                                \
            for (int t = 0; t < NT; t++) acc[r * 4 + t] += _mm512_reduce_add_ps(a[r][t]);           \
    }

LIN_TILE_512(4, 4, DG_F32, _f32)
LIN_TILE_512(4, 3, DG_F32, _f32)
LIN_TILE_512(4, 2, DG_F32, _f32)
LIN_TILE_512(4, 1, DG_F32, _f32)
LIN_TILE_512(1, 4, DG_F32, _f32)
LIN_TILE_512(1, 3, DG_F32, _f32)
LIN_TILE_512(1, 2, DG_F32, _f32)
LIN_TILE_512(1, 1, DG_F32, _f32)
LIN_TILE_512(4, 4, DG_BF16, _bf16)
LIN_TILE_512(4, 3, DG_BF16, _bf16)
LIN_TILE_512(4, 2, DG_BF16, _bf16)
LIN_TILE_512(4, 1, DG_BF16, _bf16)
LIN_TILE_512(1, 4, DG_BF16, _bf16)
LIN_TILE_512(1, 3, DG_BF16, _bf16)
LIN_TILE_512(1, 2, DG_BF16, _bf16)
LIN_TILE_512(1, 1, DG_BF16, _bf16)
LIN_TILE_512(4, 4, DG_F16, _f16)
LIN_TILE_512(4, 3, DG_F16, _f16)
LIN_TILE_512(4, 2, DG_F16, _f16)
LIN_TILE_512(4, 1, DG_F16, _f16)
LIN_TILE_512(1, 4, DG_F16, _f16)
LIN_TILE_512(1, 3, DG_F16, _f16)
LIN_TILE_512(1, 2, DG_F16, _f16)
LIN_TILE_512(1, 1, DG_F16, _f16)
LIN_TILE_512(4, 4, DG_F8E4M3, _f8)
LIN_TILE_512(4, 3, DG_F8E4M3, _f8)
LIN_TILE_512(4, 2, DG_F8E4M3, _f8)
LIN_TILE_512(4, 1, DG_F8E4M3, _f8)
LIN_TILE_512(1, 4, DG_F8E4M3, _f8)
LIN_TILE_512(1, 3, DG_F8E4M3, _f8)
LIN_TILE_512(1, 2, DG_F8E4M3, _f8)
LIN_TILE_512(1, 1, DG_F8E4M3, _f8)

typedef void (*lin512_fn)(const dg_wrows *, const float *const *, int64_t, int64_t, float *);
#define FNS(SFX)                                                                                    \
    {lin_tile_512_1x1##SFX, lin_tile_512_1x2##SFX, lin_tile_512_1x3##SFX, lin_tile_512_1x4##SFX,    \
     lin_tile_512_4x1##SFX, lin_tile_512_4x2##SFX, lin_tile_512_4x3##SFX, lin_tile_512_4x4##SFX}
static const lin512_fn lin512_table[4][8] = {FNS(_f32), FNS(_bf16), FNS(_f16), FNS(_f8)};

AVX512_TARGET static void lin_tile_avx512(const dg_wrows *w, int nr, const float *const *xs, int nt, int64_t k0,
                                          int64_t k1, float *acc) {
    const lin512_fn *tab = lin512_table[w->dtype];
    if (nr == 4) {
        tab[4 + nt - 1](w, xs, k0, k1, acc);
        return;
    }
    int es = dg_dtype_size(w->dtype);
    for (int r = 0; r < nr; r++) {
        dg_wrows w1 = *w;
        w1.w = (const char *)w->w + (int64_t)r * w->ldw * es;
        w1.srow[0] = w->srow[r];
        float a1[16] = {0};
        tab[nt - 1](&w1, xs, k0, k1, a1);
        for (int t = 0; t < nt; t++) acc[r * 4 + t] += a1[t];
    }
}

/* bf16 weights x bf16 activations: vdpbf16ps on the raw operands, 32 columns per step. */
#define LIN_TILE_BF16(NR, NT)                                                                       \
    AVX512BF16_TARGET static void lin_bf16_##NR##x##NT(const dg_wrows *w, const uint16_t *const *xs, \
                                                       int64_t k0, int64_t k1, float *acc) {        \
        const uint16_t *rp[NR];                                                                     \
        for (int r = 0; r < NR; r++) rp[r] = (const uint16_t *)w->w + (int64_t)r * w->ldw;         \
        __m512 a[NR][NT];                                                                           \
        for (int r = 0; r < NR; r++)                                                                \
            for (int t = 0; t < NT; t++) a[r][t] = _mm512_setzero_ps();                             \
        int64_t k = k0;                                                                             \
        for (; k + 32 <= k1; k += 32) {                                                             \
            __m512i xv[NT];                                                                         \
            for (int t = 0; t < NT; t++) xv[t] = _mm512_loadu_si512((const void *)(xs[t] + k));     \
            for (int r = 0; r < NR; r++) {                                                          \
                __m512i wv = _mm512_loadu_si512((const void *)(rp[r] + k));                         \
                for (int t = 0; t < NT; t++)                                                        \
                    a[r][t] = _mm512_dpbf16_ps(a[r][t], (__m512bh)xv[t], (__m512bh)wv);             \
            }                                                                                       \
        }                                                                                           \
        if (k < k1) {                                                                               \
            int64_t n = k1 - k;                                                                     \
            __mmask32 m = (__mmask32)((1ull << n) - 1);                                             \
            __m512i xv[NT];                                                                         \
            for (int t = 0; t < NT; t++) xv[t] = _mm512_maskz_loadu_epi16(m, xs[t] + k);           \
            for (int r = 0; r < NR; r++) {                                                          \
                __m512i wv = _mm512_maskz_loadu_epi16(m, rp[r] + k);                                \
                for (int t = 0; t < NT; t++)                                                        \
                    a[r][t] = _mm512_dpbf16_ps(a[r][t], (__m512bh)xv[t], (__m512bh)wv);             \
            }                                                                                       \
        }                                                                                           \
        for (int r = 0; r < NR; r++)                                                                \
            for (int t = 0; t < NT; t++) acc[r * 4 + t] += _mm512_reduce_add_ps(a[r][t]);           \
    }

LIN_TILE_BF16(4, 4)
LIN_TILE_BF16(4, 3)
LIN_TILE_BF16(4, 2)
LIN_TILE_BF16(4, 1)
LIN_TILE_BF16(1, 4)
LIN_TILE_BF16(1, 3)
LIN_TILE_BF16(1, 2)
LIN_TILE_BF16(1, 1)

AVX512BF16_TARGET static void lin_tile_bf16_avx512(const dg_wrows *w, int nr, const uint16_t *const *xs, int nt,
                                                   int64_t k0, int64_t k1, float *acc) {
    if (nr == 4) {
        switch (nt) {
        case 4: lin_bf16_4x4(w, xs, k0, k1, acc); return;
        case 3: lin_bf16_4x3(w, xs, k0, k1, acc); return;
        case 2: lin_bf16_4x2(w, xs, k0, k1, acc); return;
        default: lin_bf16_4x1(w, xs, k0, k1, acc); return;
        }
    }
    for (int r = 0; r < nr; r++) {
        dg_wrows w1 = *w;
        w1.w = (const uint16_t *)w->w + (int64_t)r * w->ldw;
        float a1[16] = {0};
        switch (nt) {
        case 4: lin_bf16_1x4(&w1, xs, k0, k1, a1); break;
        case 3: lin_bf16_1x3(&w1, xs, k0, k1, a1); break;
        case 2: lin_bf16_1x2(&w1, xs, k0, k1, a1); break;
        default: lin_bf16_1x1(&w1, xs, k0, k1, a1); break;
        }
        for (int t = 0; t < nt; t++) acc[r * 4 + t] += a1[t];
    }
}

/* kernel.py's act_quant per block of bc: s = amax/448, x/s rounded to the e4m3 grid (nearest
 * even, saturating at 448), times s. Same results as the scalar dg_f32_to_e4m3 path. */
AVX512_TARGET static void act_quant_avx512(float *dst, const float *x, int64_t n, int32_t bc) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t k0 = 0; k0 < n; k0 += bc) {
        int64_t k1 = DG_MIN(n, k0 + bc);
        __m512 mx = _mm512_setzero_ps();
        for (int64_t i = k0; i < k1; i += 16) {
            __mmask16 m = tail_mask(k1 - i);
            mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + i)));
        }
        float amax = _mm512_reduce_max_ps(mx);
        if (amax == 0) {
            for (int64_t i = k0; i < k1; i++) dst[i] = 0;
            continue;
        }
        float s = amax / 448.0f;
        __m512 vs = _mm512_set1_ps(s);
        for (int64_t i = k0; i < k1; i += 16) {
            __mmask16 m = tail_mask(k1 - i);
            __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
            __m512 a = _mm512_abs_ps(v);
            __m512i u = _mm512_castps_si512(a);
            __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7ffff),
                                                             _mm512_and_si512(_mm512_srli_epi32(u, 20), _mm512_set1_epi32(1))));
            __m512 qn = _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32((int)0xfff00000u)));
            __m512 qs = _mm512_mul_ps(_mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(512.0f)),
                                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                      _mm512_set1_ps(1.0f / 512.0f));
            __mmask16 sub = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.015625f), _CMP_LT_OQ);
            __m512 q = _mm512_min_ps(_mm512_mask_blend_ps(sub, qn, qs), _mm512_set1_ps(448.0f));
            q = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(q), /* sign */
                                                    _mm512_andnot_si512(_mm512_castps_si512(absmask), _mm512_castps_si512(v))));
            _mm512_mask_storeu_ps(dst + i, m, _mm512_mul_ps(q, vs));
        }
    }
}

/* P.V for up to 4 heads x 64 columns of accumulators at a time: each V vector is loaded once
 * for the 4 heads. */
AVX512_TARGET static void attn_pv_avx512(float *O, int64_t ldo, int nh, const float *P, int64_t ldp, int nk,
                                         const float *V, int64_t ldv, int64_t L) {
    for (int h0 = 0; h0 < nh; h0 += 4) {
        int hn = nh - h0 < 4 ? nh - h0 : 4;
        for (int64_t c = 0; c < L; c += 64) {
            __mmask16 m[4];
            for (int j = 0; j < 4; j++) m[j] = c + 16 * j < L ? tail_mask(L - c - 16 * j) : 0;
            __m512 acc[4][4];
            for (int h = 0; h < 4; h++)
                for (int j = 0; j < 4; j++)
                    acc[h][j] = h < hn ? _mm512_maskz_loadu_ps(m[j], O + (h0 + h) * ldo + c + 16 * j) : _mm512_setzero_ps();
            for (int k = 0; k < nk; k++) {
                __m512 v[4];
                for (int j = 0; j < 4; j++) v[j] = _mm512_maskz_loadu_ps(m[j], V + k * ldv + c + 16 * j);
                for (int h = 0; h < hn; h++) {
                    __m512 p = _mm512_set1_ps(P[(h0 + h) * ldp + k]);
                    for (int j = 0; j < 4; j++) acc[h][j] = _mm512_fmadd_ps(p, v[j], acc[h][j]);
                }
            }
            for (int h = 0; h < hn; h++)
                for (int j = 0; j < 4; j++) _mm512_mask_storeu_ps(O + (h0 + h) * ldo + c + 16 * j, m[j], acc[h][j]);
        }
    }
}

AVX512_TARGET static void gemm_8x32_avx512(const float *w, int64_t ldw, const float *xp, int64_t ldxp, int64_t kc,
                                           float *out, int64_t ldo) {
    __m512 a[8][2];
    for (int r = 0; r < 8; r++) {
        a[r][0] = _mm512_loadu_ps(out + r * ldo);
        a[r][1] = _mm512_loadu_ps(out + r * ldo + 16);
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 x0 = _mm512_loadu_ps(xp + k * ldxp), x1 = _mm512_loadu_ps(xp + k * ldxp + 16);
        for (int r = 0; r < 8; r++) {
            __m512 wv = _mm512_set1_ps(w[r * ldw + k]);
            a[r][0] = _mm512_fmadd_ps(wv, x0, a[r][0]);
            a[r][1] = _mm512_fmadd_ps(wv, x1, a[r][1]);
        }
    }
    for (int r = 0; r < 8; r++) {
        _mm512_storeu_ps(out + r * ldo, a[r][0]);
        _mm512_storeu_ps(out + r * ldo + 16, a[r][1]);
    }
}

static void dg_avx512_install(int no_bf16) {
    dg_k.gemm_8x32 = gemm_8x32_avx512;
    dg_k.attn_pv = attn_pv_avx512;
    dg_k.act_quant = act_quant_avx512;
    dg_k.name = "avx512";
    dg_k.level = DG_SIMD_AVX512;
    dg_k.to_f32 = to_f32_avx512;
    dg_k.dot = dot_avx512;
    dg_k.axpy = axpy_avx512;
    dg_k.lin_tile = lin_tile_avx512;
    if (!no_bf16 && __builtin_cpu_supports("avx512bf16")) {
        dg_k.name = "avx512+bf16";
        dg_k.has_bf16dot = 1;
        dg_k.lin_tile_bf16 = lin_tile_bf16_avx512;
    }
}
#endif
#if defined(DG_ARM64)
/* NEON (arm64): f32 FMA with 4 lanes x 4 accumulators; bf16 widened by a 16-bit shift, f16 by
 * vcvt_f32_f16, e4m3 through the table (scalar loads, vector math). */
static inline float32x4_t n_load4(const void *p, int64_t i, int32_t dtype) {
    switch (dtype) {
    case DG_F32: return vld1q_f32((const float *)p + i);
    case DG_BF16: return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)p + i), 16));
    case DG_F16: return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p + i)));
    default: {
        const uint8_t *b = (const uint8_t *)p + i;
        float t[4] = {dg_e4m3_table[b[0]], dg_e4m3_table[b[1]], dg_e4m3_table[b[2]], dg_e4m3_table[b[3]]};
        return vld1q_f32(t);
    }
    }
}

static void to_f32_neon(float *dst, const void *src, int64_t n, int32_t dtype) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, n_load4(src, i, dtype));
    for (; i < n; i++) dst[i] = dg_load(src, i, dtype);
}

static float dot_neon(const float *a, const void *b, int64_t n, int32_t dtype) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0), s2 = vdupq_n_f32(0), s3 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), n_load4(b, i, dtype));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), n_load4(b, i + 4, dtype));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), n_load4(b, i + 8, dtype));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), n_load4(b, i + 12, dtype));
    }
    for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), n_load4(b, i, dtype));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += a[i] * dg_load(b, i, dtype);
    return s;
}

static void axpy_neon(float *y, float alpha, const void *x, int64_t n, int32_t dtype) {
    float32x4_t va = vdupq_n_f32(alpha);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, n_load4(x, i, dtype)));
    for (; i < n; i++) y[i] += alpha * dg_load(x, i, dtype);
}

/* One (row, token) dot at a time over F8 block segments; every row is streamed once per token. */
static void lin_tile_neon(const dg_wrows *w, int nr, const float *const *xs, int nt, int64_t k0, int64_t k1,
                          float *acc) {
    int es = dg_dtype_size(w->dtype);
    for (int r = 0; r < nr; r++) {
        const char *row = (const char *)w->w + (int64_t)r * w->ldw * es;
        for (int t = 0; t < nt; t++) {
            float s = 0;
            if (w->dtype == DG_F8E4M3) {
                for (int64_t k = k0; k < k1;) {
                    int64_t kb = DG_MIN((k / w->bc + 1) * w->bc, k1);
                    s += dot_neon(xs[t] + k, row + k, kb - k, DG_F8E4M3) * w->srow[r][k / w->bc];
                    k = kb;
                }
            } else {
                s = dot_neon(xs[t] + k0, row + k0 * es, k1 - k0, w->dtype);
            }
            acc[r * 4 + t] += s;
        }
    }
}

static void dg_neon_install(void) {
    dg_k.name = "neon";
    dg_k.level = DG_SIMD_NEON;
    dg_k.to_f32 = to_f32_neon;
    dg_k.dot = dot_neon;
    dg_k.axpy = axpy_neon;
    dg_k.lin_tile = lin_tile_neon;
}
#endif

void dg_dispatch_init(void) {
    dg_k.name = "scalar";
    dg_k.level = DG_SIMD_SCALAR;
    dg_k.has_bf16dot = 0;
    dg_k.to_f32 = to_f32_scalar;
    dg_k.dot = dot_scalar;
    dg_k.axpy = axpy_scalar;
    dg_k.lin_tile = dg_lin_tile_scalar;
    dg_k.lin_tile_bf16 = NULL;
    dg_k.act_quant = dg_act_quant_row_scalar;
    dg_k.attn_pv = attn_pv_scalar;
    dg_k.gemm_8x32 = NULL;
    const char *cap = getenv("DG_SIMD");
    int max_level = 99, no_bf16 = 0;
    if (cap) {
        if (!strcmp(cap, "scalar")) max_level = DG_SIMD_SCALAR;
        else if (!strcmp(cap, "avx2") || !strcmp(cap, "neon")) max_level = DG_SIMD_AVX2;
        else if (!strcmp(cap, "avx512")) max_level = DG_SIMD_AVX512;
        else if (!strcmp(cap, "avx512-nobf16")) max_level = DG_SIMD_AVX512, no_bf16 = 1;
    }
    (void)max_level;
    (void)no_bf16; /* x86 only */
#if defined(DG_X86)
    __builtin_cpu_init();
    if (max_level >= DG_SIMD_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        dg_k.name = "avx2";
        dg_k.level = DG_SIMD_AVX2;
        dg_k.to_f32 = to_f32_avx2;
        dg_k.dot = dot_avx2;
        dg_k.axpy = axpy_avx2;
        dg_k.lin_tile = lin_tile_avx2;
    }
    if (max_level >= DG_SIMD_AVX512 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        dg_avx512_install(no_bf16);
    }
#elif defined(DG_ARM64)
    if (max_level >= DG_SIMD_NEON) dg_neon_install();
#endif
}
