/*
 * moe_gate.c: the DeepSeek-V3 router on precomputed float32 logits (x . W_gate^T), per token:
 *   s = sigmoid(logits)                (DG_SCORE_SOFTMAX: softmax over the experts)
 *   b = s + bias (bias NULL: b = s)    used only to choose
 *   NOAUX_TC:             group score = sum of the top-2 b of each of n_group groups
 *   GROUP_LIMITED_GREEDY: group score = max s of the group
 *   keep the topk_group best groups (the others' experts get -inf), then choose top_k experts by
 *   b (GREEDY: by s over all experts, no groups). Ties go to the lower index (groups and experts).
 *   w = s[chosen]; if norm_topk_prob: w /= (sum w + 1e-20); w *= scaling.
 * ids are written in descending order of the choosing score. All in float32, one token per task.
 * n_shared > 0: each row then holds n_experts + j, weight 1, for j < n_shared (the shared experts
 * as extra experts of moe_ffn's tables).
 * Layout: logits [n, n_experts] stride ld_logits; ids, weights [n, top_k + n_shared].
 */
#include "internal.h"

#define MAXE 4096

static void gate_task(void *ctx, int64_t i0, int64_t i1) {
    const dg_moe_gate_args *a = (const dg_moe_gate_args *)ctx;
    int E = a->n_experts, K = a->top_k, W = a->top_k + a->n_shared;
    float s[MAXE], c[MAXE], gsc[MAXE];
    unsigned char used[MAXE];
    for (int64_t t = i0; t < i1; t++) {
        const float *x = a->logits + t * a->ld_logits;
        if (a->scoring == DG_SCORE_SIGMOID) {
            for (int e = 0; e < E; e++) s[e] = 1.0f / (1.0f + expf(-x[e]));
        } else {
            float mx = x[0];
            for (int e = 1; e < E; e++) mx = x[e] > mx ? x[e] : mx;
            float sum = 0;
            for (int e = 0; e < E; e++) sum += (s[e] = expf(x[e] - mx));
            for (int e = 0; e < E; e++) s[e] /= sum;
        }
        for (int e = 0; e < E; e++) c[e] = (a->method != DG_TOPK_GREEDY && a->bias) ? s[e] + a->bias[e] : s[e];
        if (a->method != DG_TOPK_GREEDY) {
            int G = a->n_group, gs = E / G;
            for (int g = 0; g < G; g++) {
                const float *v = (a->method == DG_TOPK_NOAUX_TC ? c : s) + g * gs;
                if (a->method == DG_TOPK_NOAUX_TC) {
                    float m1 = -INFINITY, m2 = -INFINITY;
                    for (int e = 0; e < gs; e++) {
                        if (v[e] > m1) {
                            m2 = m1;
                            m1 = v[e];
                        } else if (v[e] > m2) {
                            m2 = v[e];
                        }
                    }
                    gsc[g] = gs >= 2 ? m1 + m2 : m1;
                } else {
                    float m1 = -INFINITY;
                    for (int e = 0; e < gs; e++) m1 = v[e] > m1 ? v[e] : m1;
                    gsc[g] = m1;
                }
            }
            for (int g = 0; g < G; g++) used[g] = 0;
            for (int k = 0; k < a->topk_group; k++) {
                int best = -1;
                for (int g = 0; g < G; g++)
                    if (!used[g] && (best < 0 || gsc[g] > gsc[best])) best = g;
                used[best] = 1;
            }
            for (int g = 0; g < G; g++)
                if (!used[g])
                    for (int e = 0; e < gs; e++) c[g * gs + e] = -INFINITY;
        }
        for (int e = 0; e < E; e++) used[e] = 0;
        int32_t *ids = a->ids + t * W;
        float *w = a->weights + t * W;
        float sum = 0;
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++)
                if (!used[e] && (best < 0 || c[e] > c[best])) best = e;
            used[best] = 1;
            ids[k] = best;
            w[k] = s[best];
            sum += s[best];
        }
        for (int k = 0; k < K; k++) {
            if (a->norm_topk_prob) w[k] /= (sum + 1e-20f);
            w[k] *= a->scaling;
        }
        for (int j = 0; j < a->n_shared; j++) {
            ids[K + j] = E + j;
            w[K + j] = 1.0f;
        }
    }
}

dg_status dg_moe_gate(const dg_moe_gate_args *a, dg_stream s) {
    (void)s;
    dg_lib_init();
    CHECK(a != NULL, "dg_moe_gate: args is NULL");
    CHECK_PTR(a->logits, "dg_moe_gate");
    CHECK_PTR(a->ids, "dg_moe_gate");
    CHECK_PTR(a->weights, "dg_moe_gate");
    CHECK(a->n > 0, "dg_moe_gate: n = %lld", (long long)a->n);
    CHECK(a->n_experts > 0 && a->n_experts <= MAXE, "dg_moe_gate: n_experts %d (1..%d)", a->n_experts, MAXE);
    CHECK(a->ld_logits >= a->n_experts, "dg_moe_gate: ld_logits %lld < n_experts", (long long)a->ld_logits);
    CHECK(a->top_k > 0 && a->top_k <= a->n_experts, "dg_moe_gate: top_k %d", a->top_k);
    CHECK(a->n_shared >= 0 && a->n_shared <= MAXE, "dg_moe_gate: n_shared %d", a->n_shared);
    CHECK(a->scoring == DG_SCORE_SIGMOID || a->scoring == DG_SCORE_SOFTMAX, "dg_moe_gate: scoring %d", a->scoring);
    CHECK(a->method == DG_TOPK_NOAUX_TC || a->method == DG_TOPK_GREEDY || a->method == DG_TOPK_GROUP_LIMITED_GREEDY,
          "dg_moe_gate: method %d", a->method);
    if (a->method != DG_TOPK_GREEDY) {
        CHECK(a->n_group > 0 && a->n_experts % a->n_group == 0, "dg_moe_gate: n_group %d does not divide %d experts",
              a->n_group, a->n_experts);
        CHECK(a->topk_group > 0 && a->topk_group <= a->n_group, "dg_moe_gate: topk_group %d (n_group %d)",
              a->topk_group, a->n_group);
        CHECK(a->top_k <= a->topk_group * (a->n_experts / a->n_group),
              "dg_moe_gate: top_k %d > experts in the %d kept groups", a->top_k, a->topk_group);
    }
    dg_parallel_for(a->n, 4, gate_task, (void *)a);
    return DG_OK;
}
