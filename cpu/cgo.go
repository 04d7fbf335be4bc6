// Package cpu is the CPU kernel library of deepgo (the C sources beside this file, compiled by
// cgo) seen from Go: one thin function per dg_<op> of include/deepgo_kernels.h, taking a pointer
// to the op's args struct (the Go mirror in go/backend has the same layout) and returning the
// status. go/backend/cpu wraps these into backend.Backend.
//
// The args structs hold only uintptr, integer and float fields, so passing unsafe.Pointer(&args)
// to C breaks no cgo pointer rule.
package cpu

/*
#cgo CFLAGS: -O3 -std=c11 -I${SRCDIR}/../include -Wall -Wno-unused-function
#cgo LDFLAGS: -lm -lpthread
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "deepgo_kernels.h"

#define DG_OFF(T, f) if (strcmp(field, #f) == 0) return (long long)offsetof(T, f)
static long long dg_cpu_offsetof(const char *st, const char *field) {
    if (strcmp(st, "dg_weight") == 0) {
        DG_OFF(dg_weight, data);
        DG_OFF(dg_weight, scale);
        DG_OFF(dg_weight, rows);
        DG_OFF(dg_weight, cols);
        DG_OFF(dg_weight, ld);
        DG_OFF(dg_weight, dtype);
        DG_OFF(dg_weight, block_rows);
        DG_OFF(dg_weight, block_cols);
        DG_OFF(dg_weight, pad_);
        return -1;
    }
    if (strcmp(st, "dg_linear_args") == 0) {
        DG_OFF(dg_linear_args, x);
        DG_OFF(dg_linear_args, y);
        DG_OFF(dg_linear_args, workspace);
        DG_OFF(dg_linear_args, w);
        DG_OFF(dg_linear_args, m);
        DG_OFF(dg_linear_args, ld_x);
        DG_OFF(dg_linear_args, ld_y);
        DG_OFF(dg_linear_args, x_dtype);
        DG_OFF(dg_linear_args, y_dtype);
        DG_OFF(dg_linear_args, accumulate);
        DG_OFF(dg_linear_args, mode);
        return -1;
    }
    if (strcmp(st, "dg_mla_decode_args") == 0) {
        DG_OFF(dg_mla_decode_args, q_lat);
        DG_OFF(dg_mla_decode_args, q_pe);
        DG_OFF(dg_mla_decode_args, cache);
        DG_OFF(dg_mla_decode_args, block_table);
        DG_OFF(dg_mla_decode_args, seq_lens);
        DG_OFF(dg_mla_decode_args, out);
        DG_OFF(dg_mla_decode_args, workspace);
        DG_OFF(dg_mla_decode_args, batch);
        DG_OFF(dg_mla_decode_args, n_heads);
        DG_OFF(dg_mla_decode_args, max_blocks);
        DG_OFF(dg_mla_decode_args, max_seq_len);
        DG_OFF(dg_mla_decode_args, ld_q_tok);
        DG_OFF(dg_mla_decode_args, ld_q_head);
        DG_OFF(dg_mla_decode_args, ld_qpe_tok);
        DG_OFF(dg_mla_decode_args, ld_qpe_head);
        DG_OFF(dg_mla_decode_args, ld_out_tok);
        DG_OFF(dg_mla_decode_args, ld_out_head);
        DG_OFF(dg_mla_decode_args, scale);
        DG_OFF(dg_mla_decode_args, latent);
        DG_OFF(dg_mla_decode_args, rope);
        DG_OFF(dg_mla_decode_args, block_size);
        DG_OFF(dg_mla_decode_args, q_per_seq);
        DG_OFF(dg_mla_decode_args, dtype);
        DG_OFF(dg_mla_decode_args, cache_dtype);
        DG_OFF(dg_mla_decode_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_mla_prefill_args") == 0) {
        DG_OFF(dg_mla_prefill_args, q);
        DG_OFF(dg_mla_prefill_args, kv);
        DG_OFF(dg_mla_prefill_args, k_pe);
        DG_OFF(dg_mla_prefill_args, out);
        DG_OFF(dg_mla_prefill_args, cu_q);
        DG_OFF(dg_mla_prefill_args, cu_k);
        DG_OFF(dg_mla_prefill_args, workspace);
        DG_OFF(dg_mla_prefill_args, n_seqs);
        DG_OFF(dg_mla_prefill_args, n_heads);
        DG_OFF(dg_mla_prefill_args, max_q);
        DG_OFF(dg_mla_prefill_args, max_k);
        DG_OFF(dg_mla_prefill_args, ld_q_tok);
        DG_OFF(dg_mla_prefill_args, ld_q_head);
        DG_OFF(dg_mla_prefill_args, ld_kv_tok);
        DG_OFF(dg_mla_prefill_args, ld_kv_head);
        DG_OFF(dg_mla_prefill_args, ld_kpe);
        DG_OFF(dg_mla_prefill_args, ld_out_tok);
        DG_OFF(dg_mla_prefill_args, ld_out_head);
        DG_OFF(dg_mla_prefill_args, scale);
        DG_OFF(dg_mla_prefill_args, nope);
        DG_OFF(dg_mla_prefill_args, rope);
        DG_OFF(dg_mla_prefill_args, v);
        DG_OFF(dg_mla_prefill_args, dtype);
        DG_OFF(dg_mla_prefill_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_moe_ffn_args") == 0) {
        DG_OFF(dg_moe_ffn_args, x);
        DG_OFF(dg_moe_ffn_args, ids);
        DG_OFF(dg_moe_ffn_args, weights);
        DG_OFF(dg_moe_ffn_args, gate);
        DG_OFF(dg_moe_ffn_args, up);
        DG_OFF(dg_moe_ffn_args, down);
        DG_OFF(dg_moe_ffn_args, y);
        DG_OFF(dg_moe_ffn_args, workspace);
        DG_OFF(dg_moe_ffn_args, n);
        DG_OFF(dg_moe_ffn_args, hidden);
        DG_OFF(dg_moe_ffn_args, inter);
        DG_OFF(dg_moe_ffn_args, ld_x);
        DG_OFF(dg_moe_ffn_args, ld_y);
        DG_OFF(dg_moe_ffn_args, n_experts);
        DG_OFF(dg_moe_ffn_args, top_k);
        DG_OFF(dg_moe_ffn_args, x_dtype);
        DG_OFF(dg_moe_ffn_args, y_dtype);
        DG_OFF(dg_moe_ffn_args, accumulate);
        DG_OFF(dg_moe_ffn_args, mode);
        return -1;
    }
    if (strcmp(st, "dg_moe_gate_args") == 0) {
        DG_OFF(dg_moe_gate_args, logits);
        DG_OFF(dg_moe_gate_args, bias);
        DG_OFF(dg_moe_gate_args, ids);
        DG_OFF(dg_moe_gate_args, weights);
        DG_OFF(dg_moe_gate_args, n);
        DG_OFF(dg_moe_gate_args, ld_logits);
        DG_OFF(dg_moe_gate_args, scaling);
        DG_OFF(dg_moe_gate_args, n_experts);
        DG_OFF(dg_moe_gate_args, top_k);
        DG_OFF(dg_moe_gate_args, n_group);
        DG_OFF(dg_moe_gate_args, topk_group);
        DG_OFF(dg_moe_gate_args, scoring);
        DG_OFF(dg_moe_gate_args, method);
        DG_OFF(dg_moe_gate_args, norm_topk_prob);
        DG_OFF(dg_moe_gate_args, n_shared);
        return -1;
    }
    if (strcmp(st, "dg_rmsnorm_args") == 0) {
        DG_OFF(dg_rmsnorm_args, x);
        DG_OFF(dg_rmsnorm_args, residual);
        DG_OFF(dg_rmsnorm_args, weight);
        DG_OFF(dg_rmsnorm_args, out);
        DG_OFF(dg_rmsnorm_args, n);
        DG_OFF(dg_rmsnorm_args, dim);
        DG_OFF(dg_rmsnorm_args, ld_x);
        DG_OFF(dg_rmsnorm_args, ld_residual);
        DG_OFF(dg_rmsnorm_args, ld_out);
        DG_OFF(dg_rmsnorm_args, eps);
        DG_OFF(dg_rmsnorm_args, x_dtype);
        DG_OFF(dg_rmsnorm_args, w_dtype);
        DG_OFF(dg_rmsnorm_args, out_dtype);
        return -1;
    }
    if (strcmp(st, "dg_head_matmul_args") == 0) {
        DG_OFF(dg_head_matmul_args, x);
        DG_OFF(dg_head_matmul_args, y);
        DG_OFF(dg_head_matmul_args, w);
        DG_OFF(dg_head_matmul_args, n_tok);
        DG_OFF(dg_head_matmul_args, n_heads);
        DG_OFF(dg_head_matmul_args, in_dim);
        DG_OFF(dg_head_matmul_args, out_dim);
        DG_OFF(dg_head_matmul_args, row0);
        DG_OFF(dg_head_matmul_args, head_stride);
        DG_OFF(dg_head_matmul_args, ld_x_tok);
        DG_OFF(dg_head_matmul_args, ld_x_head);
        DG_OFF(dg_head_matmul_args, ld_y_tok);
        DG_OFF(dg_head_matmul_args, ld_y_head);
        DG_OFF(dg_head_matmul_args, trans);
        DG_OFF(dg_head_matmul_args, x_dtype);
        DG_OFF(dg_head_matmul_args, y_dtype);
        DG_OFF(dg_head_matmul_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_sample_args") == 0) {
        DG_OFF(dg_sample_args, logits);
        DG_OFF(dg_sample_args, temperature);
        DG_OFF(dg_sample_args, top_k);
        DG_OFF(dg_sample_args, top_p);
        DG_OFF(dg_sample_args, min_p);
        DG_OFF(dg_sample_args, uniform);
        DG_OFF(dg_sample_args, out);
        DG_OFF(dg_sample_args, workspace);
        DG_OFF(dg_sample_args, n);
        DG_OFF(dg_sample_args, vocab);
        DG_OFF(dg_sample_args, ld);
        return -1;
    }
    if (strcmp(st, "dg_embed_args") == 0) {
        DG_OFF(dg_embed_args, ids);
        DG_OFF(dg_embed_args, out);
        DG_OFF(dg_embed_args, table);
        DG_OFF(dg_embed_args, n);
        DG_OFF(dg_embed_args, ld_out);
        DG_OFF(dg_embed_args, out_dtype);
        DG_OFF(dg_embed_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_rope_args") == 0) {
        DG_OFF(dg_rope_args, x);
        DG_OFF(dg_rope_args, pos);
        DG_OFF(dg_rope_args, inv_freq);
        DG_OFF(dg_rope_args, n_tok);
        DG_OFF(dg_rope_args, n_heads);
        DG_OFF(dg_rope_args, ld_tok);
        DG_OFF(dg_rope_args, ld_head);
        DG_OFF(dg_rope_args, offset);
        DG_OFF(dg_rope_args, mscale);
        DG_OFF(dg_rope_args, rope_dim);
        DG_OFF(dg_rope_args, dtype);
        DG_OFF(dg_rope_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_kv_store_args") == 0) {
        DG_OFF(dg_kv_store_args, src);
        DG_OFF(dg_kv_store_args, slots);
        DG_OFF(dg_kv_store_args, cache);
        DG_OFF(dg_kv_store_args, n);
        DG_OFF(dg_kv_store_args, ld_src);
        DG_OFF(dg_kv_store_args, width);
        DG_OFF(dg_kv_store_args, src_dtype);
        DG_OFF(dg_kv_store_args, cache_dtype);
        return -1;
    }
    if (strcmp(st, "dg_kv_gather_args") == 0) {
        DG_OFF(dg_kv_gather_args, cache);
        DG_OFF(dg_kv_gather_args, block_table);
        DG_OFF(dg_kv_gather_args, dst);
        DG_OFF(dg_kv_gather_args, n);
        DG_OFF(dg_kv_gather_args, width);
        DG_OFF(dg_kv_gather_args, ld_dst);
        DG_OFF(dg_kv_gather_args, block_size);
        DG_OFF(dg_kv_gather_args, cache_dtype);
        DG_OFF(dg_kv_gather_args, dst_dtype);
        DG_OFF(dg_kv_gather_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_mla_prep_args") == 0) {
        DG_OFF(dg_mla_prep_args, q);
        DG_OFF(dg_mla_prep_args, kv);
        DG_OFF(dg_mla_prep_args, q_weight);
        DG_OFF(dg_mla_prep_args, kv_weight);
        DG_OFF(dg_mla_prep_args, pos);
        DG_OFF(dg_mla_prep_args, inv_freq);
        DG_OFF(dg_mla_prep_args, slots);
        DG_OFF(dg_mla_prep_args, cache);
        DG_OFF(dg_mla_prep_args, n);
        DG_OFF(dg_mla_prep_args, q_dim);
        DG_OFF(dg_mla_prep_args, latent);
        DG_OFF(dg_mla_prep_args, ld_q);
        DG_OFF(dg_mla_prep_args, ld_kv);
        DG_OFF(dg_mla_prep_args, eps);
        DG_OFF(dg_mla_prep_args, mscale);
        DG_OFF(dg_mla_prep_args, rope_dim);
        DG_OFF(dg_mla_prep_args, dtype);
        DG_OFF(dg_mla_prep_args, q_w_dtype);
        DG_OFF(dg_mla_prep_args, kv_w_dtype);
        DG_OFF(dg_mla_prep_args, cache_dtype);
        DG_OFF(dg_mla_prep_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_silu_mul_args") == 0) {
        DG_OFF(dg_silu_mul_args, gate);
        DG_OFF(dg_silu_mul_args, up);
        DG_OFF(dg_silu_mul_args, out);
        DG_OFF(dg_silu_mul_args, n);
        DG_OFF(dg_silu_mul_args, dim);
        DG_OFF(dg_silu_mul_args, ld_gate);
        DG_OFF(dg_silu_mul_args, ld_up);
        DG_OFF(dg_silu_mul_args, ld_out);
        DG_OFF(dg_silu_mul_args, dtype);
        DG_OFF(dg_silu_mul_args, pad_);
        return -1;
    }
    if (strcmp(st, "dg_argmax_args") == 0) {
        DG_OFF(dg_argmax_args, logits);
        DG_OFF(dg_argmax_args, out);
        DG_OFF(dg_argmax_args, n);
        DG_OFF(dg_argmax_args, vocab);
        DG_OFF(dg_argmax_args, ld);
        return -1;
    }
    if (strcmp(st, "dg_convert_args") == 0) {
        DG_OFF(dg_convert_args, src);
        DG_OFF(dg_convert_args, dst);
        DG_OFF(dg_convert_args, n);
        DG_OFF(dg_convert_args, src_dtype);
        DG_OFF(dg_convert_args, dst_dtype);
        return -1;
    }
    return -1;
}

static dg_status dg_cpu_free_u(uintptr_t p) { return dg_free((void *)p); }
static dg_status dg_cpu_copy_to(uintptr_t dst, const void *src, int64_t n) {
    return dg_memcpy((void *)dst, src, n, DG_COPY_H2D, NULL);
}
static dg_status dg_cpu_copy_from(void *dst, uintptr_t src, int64_t n) {
    return dg_memcpy(dst, (const void *)src, n, DG_COPY_D2H, NULL);
}
static dg_status dg_cpu_copy_addr(uintptr_t dst, uintptr_t src, int64_t n) {
    return dg_memcpy((void *)dst, (const void *)src, n, DG_COPY_D2D, NULL);
}
static dg_status dg_cpu_memset_u(uintptr_t dst, int32_t v, int64_t n) { return dg_memset((void *)dst, v, n, NULL); }

static long long dg_cpu_sizeof(const char *st) {
    if (strcmp(st, "dg_weight") == 0) return (long long)sizeof(dg_weight);
    if (strcmp(st, "dg_linear_args") == 0) return (long long)sizeof(dg_linear_args);
    if (strcmp(st, "dg_mla_decode_args") == 0) return (long long)sizeof(dg_mla_decode_args);
    if (strcmp(st, "dg_mla_prefill_args") == 0) return (long long)sizeof(dg_mla_prefill_args);
    if (strcmp(st, "dg_moe_ffn_args") == 0) return (long long)sizeof(dg_moe_ffn_args);
    if (strcmp(st, "dg_moe_gate_args") == 0) return (long long)sizeof(dg_moe_gate_args);
    if (strcmp(st, "dg_rmsnorm_args") == 0) return (long long)sizeof(dg_rmsnorm_args);
    if (strcmp(st, "dg_head_matmul_args") == 0) return (long long)sizeof(dg_head_matmul_args);
    if (strcmp(st, "dg_sample_args") == 0) return (long long)sizeof(dg_sample_args);
    if (strcmp(st, "dg_embed_args") == 0) return (long long)sizeof(dg_embed_args);
    if (strcmp(st, "dg_rope_args") == 0) return (long long)sizeof(dg_rope_args);
    if (strcmp(st, "dg_kv_store_args") == 0) return (long long)sizeof(dg_kv_store_args);
    if (strcmp(st, "dg_kv_gather_args") == 0) return (long long)sizeof(dg_kv_gather_args);
    if (strcmp(st, "dg_mla_prep_args") == 0) return (long long)sizeof(dg_mla_prep_args);
    if (strcmp(st, "dg_silu_mul_args") == 0) return (long long)sizeof(dg_silu_mul_args);
    if (strcmp(st, "dg_argmax_args") == 0) return (long long)sizeof(dg_argmax_args);
    if (strcmp(st, "dg_convert_args") == 0) return (long long)sizeof(dg_convert_args);
    return -1;
}
*/
import "C"

import "unsafe"

// Sizeof is C's sizeof of an args struct or dg_weight, by its C name ("dg_linear_args"); 0 if unknown.
func Sizeof(name string) uintptr {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	n := C.dg_cpu_sizeof(cs)
	if n < 0 {
		return 0
	}
	return uintptr(n)
}

// Offsetof is C's offsetof(struct, field) by names; -1 if unknown.
func Offsetof(structName, field string) int64 {
	cs, cf := C.CString(structName), C.CString(field)
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cf))
	return int64(C.dg_cpu_offsetof(cs, cf))
}

// StructNames lists the structs Sizeof and Offsetof know.
func StructNames() []string {
	return []string{"dg_weight", "dg_linear_args", "dg_mla_decode_args", "dg_mla_prefill_args", "dg_moe_ffn_args", "dg_moe_gate_args", "dg_rmsnorm_args", "dg_head_matmul_args", "dg_sample_args", "dg_embed_args", "dg_rope_args", "dg_kv_store_args", "dg_kv_gather_args", "dg_mla_prep_args", "dg_silu_mul_args", "dg_argmax_args", "dg_convert_args"}
}

// FieldNames lists the C field names of a struct known to Offsetof, in declaration order.
func FieldNames(structName string) []string {
	switch structName {
	case "dg_weight":
		return []string{"data", "scale", "rows", "cols", "ld", "dtype", "block_rows", "block_cols", "pad_"}
	case "dg_linear_args":
		return []string{"x", "y", "workspace", "w", "m", "ld_x", "ld_y", "x_dtype", "y_dtype", "accumulate", "mode"}
	case "dg_mla_decode_args":
		return []string{"q_lat", "q_pe", "cache", "block_table", "seq_lens", "out", "workspace", "batch", "n_heads", "max_blocks", "max_seq_len", "ld_q_tok", "ld_q_head", "ld_qpe_tok", "ld_qpe_head", "ld_out_tok", "ld_out_head", "scale", "latent", "rope", "block_size", "q_per_seq", "dtype", "cache_dtype", "pad_"}
	case "dg_mla_prefill_args":
		return []string{"q", "kv", "k_pe", "out", "cu_q", "cu_k", "workspace", "n_seqs", "n_heads", "max_q", "max_k", "ld_q_tok", "ld_q_head", "ld_kv_tok", "ld_kv_head", "ld_kpe", "ld_out_tok", "ld_out_head", "scale", "nope", "rope", "v", "dtype", "pad_"}
	case "dg_moe_ffn_args":
		return []string{"x", "ids", "weights", "gate", "up", "down", "y", "workspace", "n", "hidden", "inter", "ld_x", "ld_y", "n_experts", "top_k", "x_dtype", "y_dtype", "accumulate", "mode"}
	case "dg_moe_gate_args":
		return []string{"logits", "bias", "ids", "weights", "n", "ld_logits", "scaling", "n_experts", "top_k", "n_group", "topk_group", "scoring", "method", "norm_topk_prob", "n_shared"}
	case "dg_rmsnorm_args":
		return []string{"x", "residual", "weight", "out", "n", "dim", "ld_x", "ld_residual", "ld_out", "eps", "x_dtype", "w_dtype", "out_dtype"}
	case "dg_head_matmul_args":
		return []string{"x", "y", "w", "n_tok", "n_heads", "in_dim", "out_dim", "row0", "head_stride", "ld_x_tok", "ld_x_head", "ld_y_tok", "ld_y_head", "trans", "x_dtype", "y_dtype", "pad_"}
	case "dg_sample_args":
		return []string{"logits", "temperature", "top_k", "top_p", "min_p", "uniform", "out", "workspace", "n", "vocab", "ld"}
	case "dg_embed_args":
		return []string{"ids", "out", "table", "n", "ld_out", "out_dtype", "pad_"}
	case "dg_rope_args":
		return []string{"x", "pos", "inv_freq", "n_tok", "n_heads", "ld_tok", "ld_head", "offset", "mscale", "rope_dim", "dtype", "pad_"}
	case "dg_kv_store_args":
		return []string{"src", "slots", "cache", "n", "ld_src", "width", "src_dtype", "cache_dtype"}
	case "dg_kv_gather_args":
		return []string{"cache", "block_table", "dst", "n", "width", "ld_dst", "block_size", "cache_dtype", "dst_dtype", "pad_"}
	case "dg_mla_prep_args":
		return []string{"q", "kv", "q_weight", "kv_weight", "pos", "inv_freq", "slots", "cache", "n", "q_dim", "latent", "ld_q", "ld_kv", "eps", "mscale", "rope_dim", "dtype", "q_w_dtype", "kv_w_dtype", "cache_dtype", "pad_"}
	case "dg_silu_mul_args":
		return []string{"gate", "up", "out", "n", "dim", "ld_gate", "ld_up", "ld_out", "dtype", "pad_"}
	case "dg_argmax_args":
		return []string{"logits", "out", "n", "vocab", "ld"}
	case "dg_convert_args":
		return []string{"src", "dst", "n", "src_dtype", "dst_dtype"}
	}
	return nil
}

// APIVersion is DG_KERNELS_API_VERSION of the compiled library.
func APIVersion() int32 { return int32(C.dg_api_version()) }

// LastError is dg_last_error() of the calling OS thread: lock the goroutine to its thread
// around the call and this.
func LastError() string { return C.GoString(C.dg_last_error()) }

// Init initialises the library (device 0).
func Init() int32 { return int32(C.dg_init(0)) }

// SetThreads sets the pool size; 0 = online CPUs.
func SetThreads(n int32) int32 { return int32(C.dg_set_threads(C.int32_t(n))) }

// DeviceName describes the CPU and the SIMD level chosen.
func DeviceName() string {
	var buf [256]C.char
	if C.dg_device_name(0, &buf[0], C.int64_t(len(buf))) != 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

// MemInfo returns free and total bytes of host memory.
func MemInfo() (free, total int64, status int32) {
	var f, t C.int64_t
	st := C.dg_mem_info(&f, &t)
	return int64(f), int64(t), int32(st)
}

// Malloc returns 64-byte aligned memory (dg_malloc); Free releases it.
func Malloc(bytes int64) (unsafe.Pointer, int32) {
	var p unsafe.Pointer
	st := C.dg_malloc(&p, C.int64_t(bytes))
	return p, int32(st)
}

// Free releases memory from Malloc, by address.
func Free(p uintptr) int32 { return int32(C.dg_cpu_free_u(C.uintptr_t(p))) }

// CopyToAddr copies bytes from Go memory to an address (upload).
func CopyToAddr(dst uintptr, src unsafe.Pointer, bytes int64) int32 {
	return int32(C.dg_cpu_copy_to(C.uintptr_t(dst), src, C.int64_t(bytes)))
}

// CopyFromAddr copies bytes from an address to Go memory (download).
func CopyFromAddr(dst unsafe.Pointer, src uintptr, bytes int64) int32 {
	return int32(C.dg_cpu_copy_from(dst, C.uintptr_t(src), C.int64_t(bytes)))
}

// CopyAddr copies bytes between two addresses.
func CopyAddr(dst, src uintptr, bytes int64) int32 {
	return int32(C.dg_cpu_copy_addr(C.uintptr_t(dst), C.uintptr_t(src), C.int64_t(bytes)))
}

// Memset fills bytes at an address (dg_memset).
func Memset(dst uintptr, value int32, bytes int64) int32 {
	return int32(C.dg_cpu_memset_u(C.uintptr_t(dst), C.int32_t(value), C.int64_t(bytes)))
}

// Embed calls dg_embed with a pointer to a dg_embed_args.
func Embed(args unsafe.Pointer) int32 {
	return int32(C.dg_embed((*C.dg_embed_args)(args), nil))
}

// RMSNorm calls dg_rmsnorm with a pointer to a dg_rmsnorm_args.
func RMSNorm(args unsafe.Pointer) int32 {
	return int32(C.dg_rmsnorm((*C.dg_rmsnorm_args)(args), nil))
}

// Linear calls dg_linear with a pointer to a dg_linear_args.
func Linear(args unsafe.Pointer) int32 {
	return int32(C.dg_linear((*C.dg_linear_args)(args), nil))
}

// HeadMatmul calls dg_head_matmul with a pointer to a dg_head_matmul_args.
func HeadMatmul(args unsafe.Pointer) int32 {
	return int32(C.dg_head_matmul((*C.dg_head_matmul_args)(args), nil))
}

// Rope calls dg_rope with a pointer to a dg_rope_args.
func Rope(args unsafe.Pointer) int32 {
	return int32(C.dg_rope((*C.dg_rope_args)(args), nil))
}

// KVStore calls dg_kv_store with a pointer to a dg_kv_store_args.
func KVStore(args unsafe.Pointer) int32 {
	return int32(C.dg_kv_store((*C.dg_kv_store_args)(args), nil))
}

// KVGather calls dg_kv_gather with a pointer to a dg_kv_gather_args.
func KVGather(args unsafe.Pointer) int32 {
	return int32(C.dg_kv_gather((*C.dg_kv_gather_args)(args), nil))
}

// MLAPrep calls dg_mla_prep with a pointer to a dg_mla_prep_args.
func MLAPrep(args unsafe.Pointer) int32 {
	return int32(C.dg_mla_prep((*C.dg_mla_prep_args)(args), nil))
}

// MLAPrefill calls dg_mla_prefill with a pointer to a dg_mla_prefill_args.
func MLAPrefill(args unsafe.Pointer) int32 {
	return int32(C.dg_mla_prefill((*C.dg_mla_prefill_args)(args), nil))
}

// MLADecode calls dg_mla_decode with a pointer to a dg_mla_decode_args.
func MLADecode(args unsafe.Pointer) int32 {
	return int32(C.dg_mla_decode((*C.dg_mla_decode_args)(args), nil))
}

// SiluMul calls dg_silu_mul with a pointer to a dg_silu_mul_args.
func SiluMul(args unsafe.Pointer) int32 {
	return int32(C.dg_silu_mul((*C.dg_silu_mul_args)(args), nil))
}

// MoEGate calls dg_moe_gate with a pointer to a dg_moe_gate_args.
func MoEGate(args unsafe.Pointer) int32 {
	return int32(C.dg_moe_gate((*C.dg_moe_gate_args)(args), nil))
}

// MoEFFN calls dg_moe_ffn with a pointer to a dg_moe_ffn_args.
func MoEFFN(args unsafe.Pointer) int32 {
	return int32(C.dg_moe_ffn((*C.dg_moe_ffn_args)(args), nil))
}

// Argmax calls dg_argmax with a pointer to a dg_argmax_args.
func Argmax(args unsafe.Pointer) int32 {
	return int32(C.dg_argmax((*C.dg_argmax_args)(args), nil))
}

// Sample calls dg_sample with a pointer to a dg_sample_args.
func Sample(args unsafe.Pointer) int32 {
	return int32(C.dg_sample((*C.dg_sample_args)(args), nil))
}

// Convert calls dg_convert with a pointer to a dg_convert_args.
func Convert(args unsafe.Pointer) int32 {
	return int32(C.dg_convert((*C.dg_convert_args)(args), nil))
}

// LinearWorkspaceSize calls dg_linear_workspace_size.
func LinearWorkspaceSize(args unsafe.Pointer) int64 {
	return int64(C.dg_linear_workspace_size((*C.dg_linear_args)(args)))
}

// MLAPrefillWorkspaceSize calls dg_mla_prefill_workspace_size.
func MLAPrefillWorkspaceSize(args unsafe.Pointer) int64 {
	return int64(C.dg_mla_prefill_workspace_size((*C.dg_mla_prefill_args)(args)))
}

// MLADecodeWorkspaceSize calls dg_mla_decode_workspace_size.
func MLADecodeWorkspaceSize(args unsafe.Pointer) int64 {
	return int64(C.dg_mla_decode_workspace_size((*C.dg_mla_decode_args)(args)))
}

// MoEFFNWorkspaceSize calls dg_moe_ffn_workspace_size.
func MoEFFNWorkspaceSize(args unsafe.Pointer) int64 {
	return int64(C.dg_moe_ffn_workspace_size((*C.dg_moe_ffn_args)(args)))
}

// SampleWorkspaceSize calls dg_sample_workspace_size.
func SampleWorkspaceSize(args unsafe.Pointer) int64 {
	return int64(C.dg_sample_workspace_size((*C.dg_sample_args)(args)))
}

// LinearSupported calls dg_linear_supported.
func LinearSupported(args unsafe.Pointer) bool {
	return C.dg_linear_supported((*C.dg_linear_args)(args)) != 0
}
