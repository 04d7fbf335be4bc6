/*
 * deepgo_kernels.h: the one kernel contract of deepgo.
 *
 * Every operation is declared once here, in plain C, and implemented three times:
 * cpu/ (C11 + SIMD, the readable definition of each operation), cuda/ and metal/.
 * Go reaches the CPU library through cgo and the GPU libraries through purego, so:
 *   - every kernel is `dg_status dg_<op>(const dg_<op>_args *args, dg_stream stream)`;
 *   - args structs hold only pointers, int64 and int32/float fields, pointers and int64s first,
 *     so that the Go mirror in go/backend/contract.go has the same layout on every platform;
 *   - where a variant may not apply there is `dg_<op>_supported(args)`, and where scratch is
 *     needed `dg_<op>_workspace_size(args)` (bytes; the caller allocates it once, at load).
 *
 * Conventions
 *   - Matrices are row-major; `ld*` fields are row strides in elements (not bytes).
 *   - "device memory" means memory from dg_malloc of the same library (host memory for the CPU
 *     library). Every pointer in an args struct is device memory unless a field says otherwise.
 *   - A weight W has `rows` outputs and `cols` inputs, like a torch nn.Linear weight [out, in].
 *   - F8E4M3 weights carry float32 block scales: W[i,j] = e4m3(q[i,j]) * scale[i/br][j/bc] with
 *     scale row-major [ceil(rows/br), ceil(cols/bc)], br = block_rows, bc = block_cols (128, 128
 *     in DeepSeek's checkpoints).
 *   - Accumulation is in float32 in every implementation.
 *   - A kernel never allocates, never copies to the host and never synchronises: everything it
 *     needs is in its args (workspace included), so a step can be captured in a CUDA graph.
 *   - Status: 0 is success; on failure dg_last_error() returns a message for the calling thread.
 */
#ifndef DEEPGO_KERNELS_H
#define DEEPGO_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DG_KERNELS_API_VERSION 1

#if defined(_WIN32)
#define DG_API __declspec(dllexport)
#else
#define DG_API __attribute__((visibility("default")))
#endif

typedef int32_t dg_status;
enum {
    DG_OK = 0,
    DG_ERR_INVALID = 1,     /* an argument is out of range or inconsistent */
    DG_ERR_UNSUPPORTED = 2, /* a valid combination this library does not implement */
    DG_ERR_DEVICE = 3,      /* the device runtime failed (the message names the call) */
    DG_ERR_NOMEM = 4,       /* allocation failed */
};

/* Element types. The numbers are part of the ABI (Go mirrors them). */
typedef enum {
    DG_F32 = 0,
    DG_BF16 = 1,
    DG_F16 = 2,
    DG_F8E4M3 = 3, /* float8 e4m3fn: bias 7, no infinities, max 448 */
    DG_I32 = 4,
} dg_dtype;

/* cudaStream_t for CUDA, id<MTLCommandQueue> for Metal, ignored (NULL) on the CPU. */
typedef void *dg_stream;

/* ---------------------------------------------------------------------------------------------
 * Library and device runtime. The CPU library implements these over malloc/memcpy, so Go drives
 * every backend through the same calls.
 * ------------------------------------------------------------------------------------------- */

DG_API int32_t dg_api_version(void);
/* "cpu", "cuda" or "metal". */
DG_API const char *dg_backend_name(void);
/* The last error message of the calling thread ("" when none). */
DG_API const char *dg_last_error(void);

/* Number of usable devices (1 for the CPU library). */
DG_API dg_status dg_device_count(int32_t *count);
/* Select the device for the calling thread and initialise the library for it. */
DG_API dg_status dg_init(int32_t device);
/* Free and total bytes of device memory. */
DG_API dg_status dg_mem_info(int64_t *free_bytes, int64_t *total_bytes);
/* Human-readable description of the device (name, compute capability); writes at most len bytes. */
DG_API dg_status dg_device_name(int32_t device, char *buf, int64_t len);

DG_API dg_status dg_malloc(void **ptr, int64_t bytes);
DG_API dg_status dg_free(void *ptr);
/* Page-locked host memory for staging uploads (plain aligned memory on the CPU). */
DG_API dg_status dg_host_alloc(void **ptr, int64_t bytes);
DG_API dg_status dg_host_free(void *ptr);

enum { DG_COPY_H2D = 0, DG_COPY_D2H = 1, DG_COPY_D2D = 2 };
DG_API dg_status dg_memcpy(void *dst, const void *src, int64_t bytes, int32_t kind, dg_stream stream);
DG_API dg_status dg_memset(void *dst, int32_t value, int64_t bytes, dg_stream stream);

DG_API dg_status dg_stream_create(dg_stream *stream);
DG_API dg_status dg_stream_destroy(dg_stream stream);
DG_API dg_status dg_stream_sync(dg_stream stream);

/* Set the number of worker threads (CPU library; ignored elsewhere). 0 = one per core. */
DG_API dg_status dg_set_threads(int32_t n);

/* ---------------------------------------------------------------------------------------------
 * Weights
 * ------------------------------------------------------------------------------------------- */

/* A weight matrix [rows, cols] (outputs x inputs). */
typedef struct {
    const void *data;   /* dtype elements, row stride ld */
    const float *scale; /* F8E4M3 only: [ceil(rows/block_rows), ceil(cols/block_cols)] */
    int64_t rows;
    int64_t cols;
    int64_t ld;         /* row stride in elements, >= cols */
    int32_t dtype;      /* DG_F32, DG_BF16, DG_F16 or DG_F8E4M3 */
    int32_t block_rows; /* F8E4M3: scale block (128); 0 otherwise */
    int32_t block_cols;
    int32_t pad_;
} dg_weight;

/* ---------------------------------------------------------------------------------------------
 * embed: out[t, :] = table[ids[t], :] converted to out_dtype.
 * An id outside [0, table.rows) writes a row of zeros (callers validate ids beforehand).
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const int32_t *ids; /* [n] */
    void *out;          /* [n, table.cols], row stride ld_out */
    dg_weight table;    /* [vocab, hidden]; F32, BF16 or F16 */
    int64_t n;
    int64_t ld_out;
    int32_t out_dtype;
    int32_t pad_;
} dg_embed_args;
DG_API dg_status dg_embed(const dg_embed_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * rmsnorm, fused with the residual add:
 *   if residual: x[t, :] += residual[t, :]          (x updated in place: the residual stream)
 *   out[t, :] = weight * round_x(x[t, :] * rsqrt(mean(x[t, :]^2) + eps))
 * Sum of squares and rsqrt in float32; round_x rounds the normalised value to x_dtype before the
 * multiply, as transformers does. out may alias x (same pointer and stride).
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    void *x;              /* [n, dim], stride ld_x */
    const void *residual; /* NULL or [n, dim], stride ld_residual, dtype x_dtype */
    const void *weight;   /* [dim], dtype w_dtype */
    void *out;            /* [n, dim], stride ld_out, dtype out_dtype */
    int64_t n;
    int64_t dim;
    int64_t ld_x;
    int64_t ld_residual;
    int64_t ld_out;
    float eps;
    int32_t x_dtype;      /* F32 or BF16 */
    int32_t w_dtype;      /* F32, BF16 or F16 */
    int32_t out_dtype;    /* F32 or BF16 */
} dg_rmsnorm_args;
DG_API dg_status dg_rmsnorm(const dg_rmsnorm_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * linear: y[m, :] (+)= x[m, :] . W^T       x [m, w.cols], y [m, w.rows]
 * mode DG_LINEAR_W8A8 (F8E4M3 weights only): x is first quantised per token per block_cols
 * input channels to e4m3 with scale amax/448 (the official kernel.py act_quant), and
 * y = sum over blocks of (x_q . w_q) * x_scale * w_scale. The default mode computes with the
 * dequantised weight and x as given (W8A16 for fp8 weights).
 * ------------------------------------------------------------------------------------------- */
enum { DG_LINEAR_DEFAULT = 0, DG_LINEAR_W8A8 = 1 };
typedef struct {
    const void *x;
    void *y;
    void *workspace;    /* dg_linear_workspace_size bytes, or NULL when that is 0 */
    dg_weight w;
    int64_t m;
    int64_t ld_x;
    int64_t ld_y;
    int32_t x_dtype;    /* F32 or BF16 */
    int32_t y_dtype;    /* F32 or BF16 */
    int32_t accumulate; /* 1: y += x W^T, 0: y = x W^T */
    int32_t mode;       /* DG_LINEAR_* */
} dg_linear_args;
DG_API dg_status dg_linear(const dg_linear_args *a, dg_stream s);
DG_API int32_t dg_linear_supported(const dg_linear_args *a);
DG_API int64_t dg_linear_workspace_size(const dg_linear_args *a);

/* ---------------------------------------------------------------------------------------------
 * head_matmul: one small matrix per head, taken from rows of one weight (MLA's absorbed kv_b).
 * Head h uses rows r_h = row0 + h*head_stride of w.
 *   trans = 0:  y[t,h,j] = sum_i x[t,h,i] * W[r_h + i, j]     i < in_dim,  j < out_dim = w.cols
 *   trans = 1:  y[t,h,j] = sum_i x[t,h,i] * W[r_h + j, i]     i < in_dim = w.cols, j < out_dim
 * (trans 0 with W_uk gives q_lat = q_nope . W_uk; trans 1 with W_uv gives out = o_lat . W_uv^T.)
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const void *x;
    void *y;
    dg_weight w;
    int64_t n_tok;
    int64_t n_heads;
    int64_t in_dim;
    int64_t out_dim;
    int64_t row0;
    int64_t head_stride;  /* rows of w between consecutive heads */
    int64_t ld_x_tok;     /* elements between tokens of x */
    int64_t ld_x_head;    /* elements between heads of x */
    int64_t ld_y_tok;
    int64_t ld_y_head;
    int32_t trans;
    int32_t x_dtype;      /* F32 or BF16 */
    int32_t y_dtype;      /* F32 or BF16 */
    int32_t pad_;
} dg_head_matmul_args;
DG_API dg_status dg_head_matmul(const dg_head_matmul_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * rope, interleaved pairs, in place: for each token t, head h and pair i < rope_dim/2,
 *   p = x + t*ld_tok + h*ld_head + offset;  angle = (float)pos[t] * inv_freq[i]  (float32)
 *   (p[2i], p[2i+1]) <- (p[2i]*c - p[2i+1]*s, p[2i]*s + p[2i+1]*c),  c = cos(angle)*mscale,
 *   s = sin(angle)*mscale.
 * inv_freq carries YaRN's frequency blend (computed by the caller); mscale is transformers'
 * "attention factor" (1 for DeepSeek-V3, whose softmax scale carries the YaRN correction).
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    void *x;
    const int32_t *pos;      /* [n_tok] */
    const float *inv_freq;   /* [rope_dim/2] */
    int64_t n_tok;
    int64_t n_heads;
    int64_t ld_tok;
    int64_t ld_head;
    int64_t offset;          /* element offset of the rope part inside a head */
    float mscale;
    int32_t rope_dim;
    int32_t dtype;           /* F32 or BF16 */
    int32_t pad_;
} dg_rope_args;
DG_API dg_status dg_rope(const dg_rope_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * The paged latent cache. One cache per layer: [num_blocks, block_size, width] of cache_dtype,
 * width = kv_lora_rank + qk_rope_head_dim (512 + 64 = 576 for DeepSeek-V3): the normalised latent
 * c, then the roped key k_pe. Token p of a sequence lives in block block_table[p / block_size],
 * row p % block_size. A slot is block * block_size + row.
 *
 * kv_store: cache[slots[t]] = src[t, :width] converted to cache_dtype (slots[t] < 0: skipped).
 * kv_gather: dst[p, :width] = cache row of position p, for p < n, through one block table.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const void *src;       /* [n, width], stride ld_src */
    const int32_t *slots;  /* [n] */
    void *cache;
    int64_t n;
    int64_t ld_src;
    int64_t width;
    int32_t src_dtype;
    int32_t cache_dtype;   /* F32 or BF16 */
} dg_kv_store_args;
DG_API dg_status dg_kv_store(const dg_kv_store_args *a, dg_stream s);

typedef struct {
    const void *cache;
    const int32_t *block_table; /* [ceil(n/block_size)] */
    void *dst;                  /* [n, width], stride ld_dst */
    int64_t n;
    int64_t width;
    int64_t ld_dst;
    int32_t block_size;
    int32_t cache_dtype;
    int32_t dst_dtype;
    int32_t pad_;
} dg_kv_gather_args;
DG_API dg_status dg_kv_gather(const dg_kv_gather_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * mla_prep: what MLA does with the q_a | kv_a projection before q_b and attention, in one call.
 * For each token t < n, with width = latent + rope_dim:
 *   if q_dim > 0: q[t, :q_dim] = rmsnorm(q[t, :q_dim]) * q_weight            (q_a_layernorm)
 *   kv[t, :latent] = rmsnorm(kv[t, :latent]) * kv_weight                        (kv_a_layernorm)
 *   kv[t, latent:width] = rope(kv[t, latent:width], pos[t])                     (k_pe)
 *   cache[slots[t], :width] = kv[t, :width] converted to cache_dtype (slots[t] < 0: skipped)
 * all in place, each step exactly the op it replaces: dg_rmsnorm with out = x (the normalised
 * value rounded to dtype before the weight multiply), dg_rope with one head at offset latent, and
 * dg_kv_store of the values kv then holds. An implementation gives bit for bit what that sequence
 * gives on the same library. q and kv may share rows ([q_a | kv_a] of one stacked projection,
 * ld_q == ld_kv) but must not overlap. The cache is one layer's [num_blocks, block_size, width].
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    void *q;                /* [n, q_dim], stride ld_q; unused when q_dim is 0 */
    void *kv;               /* [n, width], stride ld_kv */
    const void *q_weight;   /* [q_dim], dtype q_w_dtype; unused when q_dim is 0 */
    const void *kv_weight;  /* [latent], dtype kv_w_dtype */
    const int32_t *pos;     /* [n] */
    const float *inv_freq;  /* [rope_dim/2] */
    const int32_t *slots;   /* [n] */
    void *cache;
    int64_t n;
    int64_t q_dim;          /* 0: no q norm (q_lora_rank null, or q normalised elsewhere) */
    int64_t latent;
    int64_t ld_q;
    int64_t ld_kv;
    float eps;              /* of both norms */
    float mscale;           /* rope's cos/sin factor, as dg_rope */
    int32_t rope_dim;
    int32_t dtype;          /* of q and kv: F32 or BF16 */
    int32_t q_w_dtype;      /* F32, BF16 or F16 */
    int32_t kv_w_dtype;     /* F32, BF16 or F16 */
    int32_t cache_dtype;    /* F32 or BF16 */
    int32_t pad_;
} dg_mla_prep_args;
DG_API dg_status dg_mla_prep(const dg_mla_prep_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * mla_prefill: causal attention in MLA's plain form, for several sequences of varying length
 * (flash-attention "varlen" layout). Sequence b owns query rows [cu_q[b], cu_q[b+1]) and key rows
 * [cu_k[b], cu_k[b+1]); its queries are the last (qlen) positions of its keys, so query i sees
 * keys j <= klen - qlen + i. For head h:
 *   score(i,j) = scale * ( q[i,h,:nope] . kv[j,h,:nope]  +  q[i,h,nope:nope+rope] . k_pe[j,:rope] )
 *   out[i,h,:] = sum_j softmax_j(score(i,j)) * kv[j,h,nope:nope+v]
 * kv holds kv_b_proj's output (k_nope | v per head); k_pe is shared by all heads.
 * The full score matrix is never materialised (online softmax over key tiles).
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const void *q;        /* [rows, heads, nope+rope]: ld_q_tok, ld_q_head */
    const void *kv;       /* [keys, heads, nope+v]: ld_kv_tok, ld_kv_head */
    const void *k_pe;     /* [keys, rope]: ld_kpe */
    void *out;            /* [rows, heads, v]: ld_out_tok, ld_out_head */
    const int32_t *cu_q;  /* [n_seqs+1], device memory */
    const int32_t *cu_k;  /* [n_seqs+1], device memory */
    void *workspace;
    int64_t n_seqs;
    int64_t n_heads;
    int64_t max_q;        /* largest qlen, for launch shapes */
    int64_t max_k;        /* largest klen */
    int64_t ld_q_tok, ld_q_head;
    int64_t ld_kv_tok, ld_kv_head;
    int64_t ld_kpe;
    int64_t ld_out_tok, ld_out_head;
    float scale;
    int32_t nope;
    int32_t rope;
    int32_t v;
    int32_t dtype;        /* of q, kv, k_pe and out: F32 or BF16 */
    int32_t pad_;
} dg_mla_prefill_args;
DG_API dg_status dg_mla_prefill(const dg_mla_prefill_args *a, dg_stream s);
DG_API int64_t dg_mla_prefill_workspace_size(const dg_mla_prefill_args *a);

/* ---------------------------------------------------------------------------------------------
 * mla_decode: attention in MLA's absorbed form over the paged latent cache, for a batch of
 * sequences with q_per_seq new tokens each (1 normally; more for MTP drafts). Query row
 * r = b*q_per_seq + i of sequence b sees cache positions p < seq_lens[b] - (q_per_seq - 1 - i).
 *   score(r,h,p) = scale * ( q_lat[r,h,:] . c[p,:latent]  +  q_pe[r,h,:] . c[p,latent:latent+rope] )
 *   o_lat[r,h,:] = sum_p softmax_p(score) * c[p,:latent]
 * The new tokens' rows must already be in the cache (kv_store before this call).
 * Implementations may split the key range (split-K) through the workspace.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const void *q_lat;          /* [rows, heads, latent]: ld_q_tok, ld_q_head */
    const void *q_pe;           /* [rows, heads, rope]: ld_qpe_tok, ld_qpe_head */
    const void *cache;          /* [num_blocks, block_size, latent+rope] */
    const int32_t *block_table; /* [batch, max_blocks], device memory */
    const int32_t *seq_lens;    /* [batch], device memory: tokens in the cache, new ones included */
    void *out;                  /* [rows, heads, latent]: ld_out_tok, ld_out_head */
    void *workspace;
    int64_t batch;
    int64_t n_heads;
    int64_t max_blocks;         /* columns of block_table */
    int64_t max_seq_len;        /* an upper bound of seq_lens, for launch shapes */
    int64_t ld_q_tok, ld_q_head;
    int64_t ld_qpe_tok, ld_qpe_head;
    int64_t ld_out_tok, ld_out_head;
    float scale;
    int32_t latent;
    int32_t rope;
    int32_t block_size;
    int32_t q_per_seq;
    int32_t dtype;              /* of q_lat, q_pe, out: F32 or BF16 */
    int32_t cache_dtype;        /* F32 or BF16 */
    int32_t pad_;
} dg_mla_decode_args;
DG_API dg_status dg_mla_decode(const dg_mla_decode_args *a, dg_stream s);
DG_API int64_t dg_mla_decode_workspace_size(const dg_mla_decode_args *a);

/* ---------------------------------------------------------------------------------------------
 * silu_mul: out[t, i] = silu(gate[t, i]) * up[t, i], silu(x) = x / (1 + exp(-x)).
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const void *gate;
    const void *up;
    void *out;
    int64_t n;
    int64_t dim;
    int64_t ld_gate, ld_up, ld_out;
    int32_t dtype;        /* F32 or BF16, all three */
    int32_t pad_;
} dg_silu_mul_args;
DG_API dg_status dg_silu_mul(const dg_silu_mul_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * moe_gate: the DeepSeek-V3 router on precomputed logits (x . W_gate^T, float32), per token:
 *   s = sigmoid(logits)  (scoring DG_SCORE_SOFTMAX: softmax over experts)
 *   b = s + bias  (bias NULL: b = s)                               used only to choose
 *   method NOAUX_TC: group score = sum of the top-2 b in each of n_group groups;
 *   method GROUP_LIMITED_GREEDY: group score = max s in the group;
 *   keep the topk_group best groups (others -inf); choose top_k experts by b (GREEDY: by s,
 *   no groups); ties go to the lower index.
 *   w = s[chosen]; if norm_topk_prob: w /= (sum w + 1e-20); w *= scaling.
 * ids are written in descending order of the choosing score.
 * n_shared > 0: each token's row of ids/weights is top_k + n_shared long; after the chosen experts
 * come ids n_experts .. n_experts + n_shared - 1 with weight 1 (unscaled). DeepSeek's shared
 * experts, bound as extra experts of moe_ffn's tables, then run in the same launches.
 * ------------------------------------------------------------------------------------------- */
enum { DG_SCORE_SIGMOID = 0, DG_SCORE_SOFTMAX = 1 };
enum { DG_TOPK_NOAUX_TC = 0, DG_TOPK_GREEDY = 1, DG_TOPK_GROUP_LIMITED_GREEDY = 2 };
typedef struct {
    const float *logits; /* [n, n_experts], stride ld_logits */
    const float *bias;   /* [n_experts] or NULL */
    int32_t *ids;        /* [n, top_k + n_shared] */
    float *weights;      /* [n, top_k + n_shared] */
    int64_t n;
    int64_t ld_logits;
    float scaling;
    int32_t n_experts;
    int32_t top_k;
    int32_t n_group;
    int32_t topk_group;
    int32_t scoring;
    int32_t method;
    int32_t norm_topk_prob;
    int32_t n_shared;    /* 0, or fixed entries after the top_k (above) */
} dg_moe_gate_args;
DG_API dg_status dg_moe_gate(const dg_moe_gate_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * moe_ffn: the routed experts of one MoE layer, in one call:
 *   y[t, :] (+)= sum_k weights[t,k] * down_e( silu(gate_e(x[t])) * up_e(x[t]) ),  e = ids[t,k]
 * gate/up/down point to arrays of n_experts weight descriptors in device memory (gate_e, up_e:
 * [inter, hidden]; down_e: [hidden, inter]). Implementations sort tokens by expert, run grouped
 * GEMMs and combine; only the chosen experts' weights are read. ids < 0 are skipped.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const void *x;            /* [n, hidden], stride ld_x */
    const int32_t *ids;       /* [n, top_k] */
    const float *weights;     /* [n, top_k] */
    const dg_weight *gate;    /* [n_experts] */
    const dg_weight *up;      /* [n_experts] */
    const dg_weight *down;    /* [n_experts] */
    void *y;                  /* [n, hidden], stride ld_y */
    void *workspace;
    int64_t n;
    int64_t hidden;
    int64_t inter;
    int64_t ld_x;
    int64_t ld_y;
    int32_t n_experts;
    int32_t top_k;
    int32_t x_dtype;          /* F32 or BF16 */
    int32_t y_dtype;          /* F32 or BF16 */
    int32_t accumulate;
    int32_t mode;             /* DG_LINEAR_* for the expert GEMMs */
} dg_moe_ffn_args;
DG_API dg_status dg_moe_ffn(const dg_moe_ffn_args *a, dg_stream s);
DG_API int64_t dg_moe_ffn_workspace_size(const dg_moe_ffn_args *a);

/* ---------------------------------------------------------------------------------------------
 * argmax over each row (ties: the lowest index). NaN rows give -1.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const float *logits;  /* [n, vocab], stride ld */
    int32_t *out;         /* [n] */
    int64_t n;
    int64_t vocab;
    int64_t ld;
} dg_argmax_args;
DG_API dg_status dg_argmax(const dg_argmax_args *a, dg_stream s);

/* ---------------------------------------------------------------------------------------------
 * sample: one token per row, by the rules of go/sampling (its doc is the specification):
 *   temperature[r] == 0: argmax. Otherwise z = logits / temperature; keep the top_k largest
 *   (top_k <= 0: all); p = softmax(z) over the kept set in canonical order (descending p, ties
 *   by lower id); keep the shortest prefix whose mass >= top_p (at least one token); drop tokens
 *   with p < min_p * p_max; renormalise; the token is the first in canonical order whose
 *   cumulative probability exceeds uniform[r] (the last kept one if none does).
 * Penalties are applied to the logits beforehand (by the caller).
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const float *logits;      /* [n, vocab], stride ld */
    const float *temperature; /* [n] */
    const int32_t *top_k;     /* [n] */
    const float *top_p;       /* [n] */
    const float *min_p;       /* [n] */
    const float *uniform;     /* [n], in [0, 1) */
    int32_t *out;             /* [n] */
    void *workspace;
    int64_t n;
    int64_t vocab;
    int64_t ld;
} dg_sample_args;
DG_API dg_status dg_sample(const dg_sample_args *a, dg_stream s);
DG_API int64_t dg_sample_workspace_size(const dg_sample_args *a);

/* ---------------------------------------------------------------------------------------------
 * convert: dst[i] = src[i] converted (F32, BF16, F16 both ways; F8E4M3 to F32/BF16).
 * Rounding to BF16/F16 is to nearest even.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const void *src;
    void *dst;
    int64_t n;
    int32_t src_dtype;
    int32_t dst_dtype;
} dg_convert_args;
DG_API dg_status dg_convert(const dg_convert_args *a, dg_stream s);

#ifdef __cplusplus
}
#endif
#endif /* DEEPGO_KERNELS_H */
