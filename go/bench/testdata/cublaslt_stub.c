/*
 * A stand-in for libcublasLt, for TestLtFP8Stub: the functions the fp8 baseline calls, with the
 * prototypes of cublasLt.h (cublasStatus_t and the enums as int, cudaDataType as int, uint64_t
 * rows/cols, int64_t ld, size_t sizes), holding the plan to cuBLASLt's fp8 rules on sm_90 (TN,
 * e4m3 A and B, C = D bf16 or f32, k and m multiples of 16, fp8 leading dimensions multiples of 16)
 * and computing D on the host, so that a CPU backend's buffers (host memory) stand in for device
 * memory. It checks what a wrong Go signature would scramble: argument order and width, attribute
 * sizes, the 96-byte heuristic results, the algorithm passed back.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int cublasStatus_t;
enum { OK = 0, INVALID_VALUE = 7, NOT_SUPPORTED = 15 };
#define HANDLE ((void *)0x1234)

typedef struct {
    int transa, transb, bscale_set;
    const float *bscale;
} desc_t;
typedef struct {
    int type;
    uint64_t rows, cols;
    int64_t ld;
} layout_t;
typedef struct {
    uint64_t ws;
} pref_t;
typedef struct {
    uint64_t data[8];
} algo_t;
typedef struct {
    algo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} result_t;

static int live, matmuls;
static void *last_stream;
int stub_live(void) { return live; }
int stub_matmuls(void) { return matmuls; }
void *stub_last_stream(void) { return last_stream; }

cublasStatus_t cublasLtCreate(void **h) {
    *h = HANDLE;
    return OK;
}
cublasStatus_t cublasLtDestroy(void *h) { return h == HANDLE ? OK : INVALID_VALUE; }
size_t cublasLtGetVersion(void) { return 130002; }
const char *cublasLtGetStatusName(cublasStatus_t s) {
    switch (s) {
    case OK: return "CUBLAS_STATUS_SUCCESS";
    case INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
const char *cublasLtGetStatusString(cublasStatus_t s) { return s == NOT_SUPPORTED ? "the stub says no" : "stub"; }

/* Every descriptor is counted while it lives: the test checks that the plans destroy them all. */
static void *make(size_t n) {
    live++;
    return calloc(1, n);
}
static cublasStatus_t drop(void *p) {
    free(p);
    live--;
    return OK;
}

/* attr stores size bytes of buf into dst when size is what the attribute holds. */
static cublasStatus_t attr(void *dst, size_t want, const void *buf, size_t size) {
    if (size != want) return INVALID_VALUE;
    memcpy(dst, buf, size);
    return OK;
}

cublasStatus_t cublasLtMatmulDescCreate(desc_t **d, int compute, int scale) {
    if (compute != 68 || scale != 0) return INVALID_VALUE; /* CUBLAS_COMPUTE_32F, CUDA_R_32F */
    *d = make(sizeof(desc_t));
    return OK;
}
cublasStatus_t cublasLtMatmulDescDestroy(desc_t *d) { return drop(d); }
cublasStatus_t cublasLtMatmulDescSetAttribute(desc_t *d, int a, const void *buf, size_t size) {
    switch (a) {
    case 3: return attr(&d->transa, sizeof(int), buf, size); /* TRANSA */
    case 4: return attr(&d->transb, sizeof(int), buf, size); /* TRANSB */
    case 18: /* B_SCALE_POINTER */
        d->bscale_set = 1;
        return attr(&d->bscale, sizeof(void *), buf, size);
    }
    return INVALID_VALUE;
}
cublasStatus_t cublasLtMatrixLayoutCreate(layout_t **l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
    if (ld < (int64_t)rows) return INVALID_VALUE;
    *l = make(sizeof(layout_t));
    **l = (layout_t){type, rows, cols, ld};
    return OK;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(layout_t *l) { return drop(l); }
cublasStatus_t cublasLtMatmulPreferenceCreate(pref_t **p) {
    *p = make(sizeof(pref_t));
    return OK;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(pref_t *p) { return drop(p); }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(pref_t *p, int a, const void *buf, size_t size) {
    return a == 1 ? attr(&p->ws, sizeof(uint64_t), buf, size) : INVALID_VALUE; /* MAX_WORKSPACE_BYTES */
}

static int fp8_ok(const desc_t *d, const layout_t *a, const layout_t *b, const layout_t *c, const layout_t *dd) {
    return d->transa == 1 && d->transb == 0 && a->type == 28 && b->type == 28 && c == dd &&
           (dd->type == 14 || dd->type == 0) && a->rows == b->rows && dd->rows == a->cols && dd->cols == b->cols &&
           a->rows % 16 == 0 && a->cols % 16 == 0 && a->ld % 16 == 0 && b->ld % 16 == 0 && dd->ld >= (int64_t)dd->rows;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(void *h, desc_t *d, layout_t *a, layout_t *b, layout_t *c, layout_t *dd,
                                              pref_t *p, int requested, result_t *res, int *returned) {
    if (h != HANDLE || requested <= 0) return INVALID_VALUE;
    if (!fp8_ok(d, a, b, c, dd)) return INVALID_VALUE;
    if (b->cols == 7) return NOT_SUPPORTED; /* the test's way to see an error named */
    for (int i = 0; i < requested; i++) {
        memset(&res[i], 0, sizeof res[i]);
        res[i].state = NOT_SUPPORTED;
    }
    /* The first answer wants more workspace than allowed; the second is the one to run. */
    res[0].state = OK;
    res[0].workspaceSize = p->ws + 1;
    res[0].algo.data[0] = 1;
    if (requested > 1) {
        res[1].state = OK;
        res[1].workspaceSize = 1024;
        res[1].algo.data[0] = 42;
        res[1].wavesCount = 1.5f;
    }
    *returned = requested < 3 ? requested : 3;
    return OK;
}

static float e4m3(uint8_t v) {
    int e = (v >> 3) & 15, m = v & 7;
    float x = e == 15 && m == 7 ? NAN : e == 0 ? m / 512.0f : ldexpf(1.0f + m / 8.0f, e - 7);
    return v & 0x80 ? -x : x;
}

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

cublasStatus_t cublasLtMatmul(void *h, desc_t *d, const float *alpha, const uint8_t *a, layout_t *al, const uint8_t *b,
                              layout_t *bl, const float *beta, const void *c, layout_t *cl, void *dp, layout_t *dl,
                              const algo_t *algo, void *ws, size_t ws_size, void *stream) {
    if (h != HANDLE || !fp8_ok(d, al, bl, cl, dl)) return INVALID_VALUE;
    if (algo == NULL || algo->data[0] != 42 || ws == NULL || ws_size < 1024 || c != dp || *beta != 0.0f) {
        return INVALID_VALUE;
    }
    last_stream = stream;
    matmuls++;
    float s = *alpha * (d->bscale_set && d->bscale ? *d->bscale : 1.0f);
    for (uint64_t j = 0; j < dl->cols; j++) {
        for (uint64_t i = 0; i < dl->rows; i++) {
            double acc = 0;
            for (uint64_t l = 0; l < al->rows; l++) { /* op(A) = T: A stored k x m */
                acc += (double)e4m3(a[l + i * al->ld]) * e4m3(b[l + j * bl->ld]);
            }
            float v = s * (float)acc;
            if (dl->type == 14) {
                ((uint16_t *)dp)[i + j * dl->ld] = bf16(v);
            } else {
                ((float *)dp)[i + j * dl->ld] = v;
            }
        }
    }
    return OK;
}
