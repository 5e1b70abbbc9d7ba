/* DiT session: the rolling KV cache, the activation arena and the RoPE tables, all on the
 * backend and sized at open from the largest chunk (max_tokens), so that a step never
 * allocates (STYLE D, "memory after N chunks equals memory after 2N"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_internal.h"

static size_t align_up(size_t v) { return (v + INFVSR_TENSOR_ALIGN - 1) / INFVSR_TENSOR_ALIGN * INFVSR_TENSOR_ALIGN; }

enum infvsr_status infvsr_dit_session_open(struct infvsr_dit * dit, int64_t max_tokens,
                                           struct infvsr_dit_session ** out, struct infvsr_err * err) {
    *out = NULL;
    const struct infvsr_dit_config * cfg = &dit->cfg;
    struct infvsr_backend * be = dit->be;
    if (max_tokens <= 0 || max_tokens > ((int64_t)1 << 31) / (cfg->ffn_dim > cfg->dim ? cfg->ffn_dim : cfg->dim))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit session: max_tokens %lld out of range",
                              (long long)max_tokens);
    if (dit->head_dim > 256)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "dit session: head dim %d > 256", dit->head_dim);

    struct infvsr_dit_session * s = calloc(1, sizeof *s);
    if (!s) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit session: no memory");
    s->dit = dit;
    s->max_tokens = max_tokens;
    enum infvsr_status st = INFVSR_OK;
    const enum infvsr_dtype act = dit->act;
    const size_t es = infvsr_dtype_size(act);
    int L = cfg->num_layers;
    int64_t dim = cfg->dim, N = max_tokens;
    int64_t pcols = (cfg->in_dim > cfg->out_dim ? cfg->in_dim : cfg->out_dim) * 4;
    int64_t s2[2] = { N, dim };

    s->cache_k = calloc((size_t)L, sizeof *s->cache_k);
    s->cache_v = calloc((size_t)L, sizeof *s->cache_v);
    if (!s->cache_k || !s->cache_v) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit session: no memory");
        goto fail;
    }
    /* Named slots: "dit.blocks.7.self_attn.k" (the storage behind a slot rotates). */
    for (int l = 0; l < L; l++) {
        char name[64];
        snprintf(name, sizeof name, "dit.blocks.%d.self_attn.k", l);
        if ((st = dit_alloc(be, &s->cache_k[l], name, act, 2, s2, err)) != INFVSR_OK) goto fail;
        snprintf(name, sizeof name, "dit.blocks.%d.self_attn.v", l);
        if ((st = dit_alloc(be, &s->cache_v[l], name, act, 2, s2, err)) != INFVSR_OK) goto fail;
    }
    if ((st = dit_alloc(be, &s->spare_k, "dit.self_attn.k_new", act, 2, s2, err)) != INFVSR_OK) goto fail;
    if ((st = dit_alloc(be, &s->spare_v, "dit.self_attn.v_new", act, 2, s2, err)) != INFVSR_OK) goto fail;

    /* Arena layout: x, a, q, o, d [N, dim]; h [min(N, DIT_FFN_ROWS), ffn_dim];
     * patch [N, 4*max(in,out)], all in the activation dtype. */
    size_t o_x = 0;
    size_t o_a = o_x + align_up((size_t)(N * dim) * es);
    size_t o_q = o_a + align_up((size_t)(N * dim) * es);
    size_t o_o = o_q + align_up((size_t)(N * dim) * es);
    size_t o_d = o_o + align_up((size_t)(N * dim) * es);
    size_t o_h = o_d + align_up((size_t)(N * dim) * es);
    int64_t ffn_rows = N < DIT_FFN_ROWS ? N : DIT_FFN_ROWS;
    size_t o_p = o_h + align_up((size_t)(ffn_rows * cfg->ffn_dim) * es);
    size_t total = o_p + align_up((size_t)(N * pcols) * es);
    int64_t sa[1] = { (int64_t)(total / es) };
    if ((st = dit_alloc(be, &s->arena, "dit.arena", act, 1, sa, err)) != INFVSR_OK) goto fail;
    dit_view(&s->s.x, &s->arena, o_x, "dit.x", act, 2, s2);
    dit_view(&s->s.a, &s->arena, o_a, "dit.a", act, 2, s2);
    dit_view(&s->s.q, &s->arena, o_q, "dit.q", act, 2, s2);
    dit_view(&s->s.o, &s->arena, o_o, "dit.o", act, 2, s2);
    dit_view(&s->s.d, &s->arena, o_d, "dit.d", act, 2, s2);
    int64_t sh[2] = { ffn_rows, cfg->ffn_dim };
    dit_view(&s->s.h, &s->arena, o_h, "dit.h", act, 2, sh);
    int64_t sp[2] = { N, pcols };
    dit_view(&s->s.patch, &s->arena, o_p, "dit.patch", act, 2, sp);

    if ((st = dit_rope_open(s, err)) != INFVSR_OK) goto fail;
    s->nbytes = (size_t)(2 * L + 2) * (size_t)(N * dim) * es + total + infvsr_tensor_nbytes(&s->rope.freqs) +
                infvsr_tensor_nbytes(&s->rope.axes);
    infvsr_dit_session_reset(s);
    *out = s;
    return INFVSR_OK;
fail:
    infvsr_err_prefix(err, "dit session (max_tokens %lld)", (long long)max_tokens);
    infvsr_dit_session_close(s);
    return st;
}

void infvsr_dit_session_close(struct infvsr_dit_session * s) {
    if (!s) return;
    struct infvsr_backend * be = s->dit->be;
    for (int l = 0; l < s->dit->cfg.num_layers; l++) {
        if (s->cache_k) infvsr_backend_tensor_free(be, &s->cache_k[l]);
        if (s->cache_v) infvsr_backend_tensor_free(be, &s->cache_v[l]);
    }
    free(s->cache_k);
    free(s->cache_v);
    infvsr_backend_tensor_free(be, &s->spare_k);
    infvsr_backend_tensor_free(be, &s->spare_v);
    infvsr_backend_tensor_free(be, &s->arena);
    dit_rope_close(s);
    free(s);
}

void infvsr_dit_session_reset(struct infvsr_dit_session * s) {
    s->n_cached = 0;
    s->cached_gh = s->cached_gw = 0;
    s->position = 0;
}

void infvsr_dit_session_set_abort(struct infvsr_dit_session * s, infvsr_abort_cb should_abort, void * user) {
    s->should_abort = should_abort;
    s->abort_user = user;
}

int64_t infvsr_dit_session_position(const struct infvsr_dit_session * s) { return s->position; }
int64_t infvsr_dit_session_cached_tokens(const struct infvsr_dit_session * s) { return s->n_cached; }
size_t  infvsr_dit_session_nbytes(const struct infvsr_dit_session * s) { return s->nbytes; }
