/*
 * mla_prep.c: MLA's prologue after the q_a | kv_a projection, for each token t:
 *   q[t, :q_dim]        = rmsnorm(q[t, :q_dim]) * q_weight      (skipped when q_dim is 0)
 *   kv[t, :latent]      = rmsnorm(kv[t, :latent]) * kv_weight
 *   kv[t, latent:width] = rope(kv[t, latent:width], pos[t])
 *   cache[slots[t]]     = kv[t, :width] in cache_dtype          (slots[t] < 0: skipped)
 * The definition is the sequence of the ops it replaces, so it is written as that sequence:
 * dg_rmsnorm (out = x), dg_rmsnorm, dg_rope (one head at offset latent), dg_kv_store. The GPU
 * fuses them into one launch; here the fusion would save nothing but the pool's wake-ups.
 */
#include "internal.h"

static dg_status check_args(const dg_mla_prep_args *a) {
    CHECK(a != NULL, "dg_mla_prep: args is NULL");
    CHECK_PTR(a->kv, "dg_mla_prep");
    CHECK_PTR(a->kv_weight, "dg_mla_prep");
    CHECK_PTR(a->pos, "dg_mla_prep");
    CHECK_PTR(a->inv_freq, "dg_mla_prep");
    CHECK_PTR(a->slots, "dg_mla_prep");
    CHECK_PTR(a->cache, "dg_mla_prep");
    CHECK(a->n > 0, "dg_mla_prep: n = %lld", (long long)a->n);
    CHECK(a->latent > 0, "dg_mla_prep: latent = %lld", (long long)a->latent);
    CHECK(a->rope_dim > 0 && a->rope_dim % 2 == 0, "dg_mla_prep: rope_dim %d (even, > 0)", a->rope_dim);
    CHECK(a->ld_kv >= a->latent + a->rope_dim, "dg_mla_prep: ld_kv %lld < latent + rope_dim %lld",
          (long long)a->ld_kv, (long long)(a->latent + a->rope_dim));
    CHECK(a->q_dim >= 0, "dg_mla_prep: q_dim = %lld", (long long)a->q_dim);
    if (a->q_dim > 0) {
        CHECK_PTR(a->q, "dg_mla_prep");
        CHECK_PTR(a->q_weight, "dg_mla_prep");
        CHECK(a->ld_q >= a->q_dim, "dg_mla_prep: ld_q %lld < q_dim %lld", (long long)a->ld_q, (long long)a->q_dim);
    }
    CHECK(a->eps >= 0, "dg_mla_prep: eps %g < 0", (double)a->eps);
    if (!dg_is_act(a->dtype)) UNSUPPORTED("dg_mla_prep: dtype %s (F32 or BF16)", dg_dtype_name(a->dtype));
    if (!dg_is_act(a->cache_dtype))
        UNSUPPORTED("dg_mla_prep: cache_dtype %s (F32 or BF16)", dg_dtype_name(a->cache_dtype));
    if (a->q_dim > 0 && a->q_w_dtype != DG_F32 && a->q_w_dtype != DG_BF16 && a->q_w_dtype != DG_F16)
        UNSUPPORTED("dg_mla_prep: q_w_dtype %s (F32, BF16 or F16)", dg_dtype_name(a->q_w_dtype));
    if (a->kv_w_dtype != DG_F32 && a->kv_w_dtype != DG_BF16 && a->kv_w_dtype != DG_F16)
        UNSUPPORTED("dg_mla_prep: kv_w_dtype %s (F32, BF16 or F16)", dg_dtype_name(a->kv_w_dtype));
    return DG_OK;
}

/* rmsnorm of n rows of dim elements in place (out = x). */
static dg_status norm_in_place(const dg_mla_prep_args *a, void *x, const void *w, int64_t dim, int64_t ld,
                               int32_t w_dtype) {
    dg_rmsnorm_args r = {.x = x, .weight = w, .out = x, .n = a->n, .dim = dim, .ld_x = ld, .ld_out = ld,
                         .eps = a->eps, .x_dtype = a->dtype, .w_dtype = w_dtype, .out_dtype = a->dtype};
    return dg_rmsnorm(&r, NULL);
}

dg_status dg_mla_prep(const dg_mla_prep_args *a, dg_stream s) {
    (void)s;
    dg_lib_init();
    dg_status st = check_args(a);
    if (st != DG_OK) return st;
    if (a->q_dim > 0) {
        st = norm_in_place(a, a->q, a->q_weight, a->q_dim, a->ld_q, a->q_w_dtype);
        if (st != DG_OK) return st;
    }
    st = norm_in_place(a, a->kv, a->kv_weight, a->latent, a->ld_kv, a->kv_w_dtype);
    if (st != DG_OK) return st;
    dg_rope_args r = {.x = a->kv, .pos = a->pos, .inv_freq = a->inv_freq, .n_tok = a->n, .n_heads = 1,
                      .ld_tok = a->ld_kv, .ld_head = a->ld_kv, .offset = a->latent, .mscale = a->mscale,
                      .rope_dim = a->rope_dim, .dtype = a->dtype};
    st = dg_rope(&r, NULL);
    if (st != DG_OK) return st;
    dg_kv_store_args k = {.src = a->kv, .slots = a->slots, .cache = a->cache, .n = a->n, .ld_src = a->ld_kv,
                          .width = a->latent + a->rope_dim, .src_dtype = a->dtype, .cache_dtype = a->cache_dtype};
    return dg_kv_store(&k, NULL);
}
