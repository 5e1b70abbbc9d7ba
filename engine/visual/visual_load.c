/* Loading the visual encoder: config checks, the strict key set of MODEL-SPEC.md section 6.4,
 * the DAPE merge (lora_merge.c), the load-time tables (visual_tables.c), the one weight import
 * and the scratch reserved on the backend for encode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/weights.h"
#include "visual_impl.h"

/* Every key the model takes from the RAM file (relative to its prefix), for the strictness check. */
struct key_list {
    char (*keys)[INFVSR__SWIN_KEY_MAX];
    int    n, cap;
};

struct loader {
    const struct infvsr_weights * w;
    const char *                  prefix; /* "model." or "" */
    struct key_list               used;
};

static enum infvsr_status get(struct loader * ld, const char * key, int ndim, const int64_t * shape,
                              struct infvsr_tensor * out, struct infvsr_err * err) {
    if (ld->used.n == ld->used.cap) {
        int    cap  = ld->used.cap ? 2 * ld->used.cap : 512;
        void * keys = realloc(ld->used.keys, (size_t)cap * sizeof *ld->used.keys);
        if (!keys) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "visual load: out of memory");
        ld->used.keys = keys;
        ld->used.cap  = cap;
    }
    if (snprintf(ld->used.keys[ld->used.n], INFVSR__SWIN_KEY_MAX, "%s", key) >= INFVSR__SWIN_KEY_MAX)
        return infvsr_err_set(err, INFVSR_ERR_MODEL, "visual load: weight name too long: %.200s", key);
    ld->used.n++;
    return infvsr_weights_get(ld->w, ld->prefix, key, ndim, shape, out, err);
}

static enum infvsr_status get1(struct loader * ld, const char * pre, const char * key, int64_t d0,
                               struct infvsr_tensor * out, struct infvsr_err * err) {
    char full[2 * INFVSR__SWIN_KEY_MAX];
    snprintf(full, sizeof full, "%s%s", pre, key);
    return get(ld, full, 1, &d0, out, err);
}

static enum infvsr_status get2(struct loader * ld, const char * pre, const char * key, int64_t d0, int64_t d1,
                               struct infvsr_tensor * out, struct infvsr_err * err) {
    char    full[2 * INFVSR__SWIN_KEY_MAX];
    int64_t shape[2] = { d0, d1 };
    snprintf(full, sizeof full, "%s%s", pre, key);
    return get(ld, full, 2, shape, out, err);
}

static bool ends_with(const char * s, const char * suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Strictness: every visual_encoder./image_proj. key of the file (minus recomputed buffers) must
 * be one the model loaded. Missing keys were already reported by get(). */
static enum infvsr_status check_unexpected(const struct loader * ld, struct infvsr_err * err) {
    size_t plen = strlen(ld->prefix);
    for (size_t i = 0; i < infvsr_weights_count(ld->w); i++) {
        const char * key = infvsr_weights_key_at(ld->w, i);
        if (strncmp(key, ld->prefix, plen) != 0) continue;
        const char * rel = key + plen;
        if (strncmp(rel, "visual_encoder.", 15) != 0 && strncmp(rel, "image_proj.", 11) != 0) continue;
        if (ends_with(rel, "relative_position_index") || ends_with(rel, "attn_mask")) continue;
        bool known = false;
        for (int k = 0; k < ld->used.n && !known; k++) known = strcmp(ld->used.keys[k], rel) == 0;
        if (!known) {
            return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s: unexpected tensor '%s' (not part of the Swin/image_proj "
                                  "architecture of this config)", infvsr_weights_path(ld->w), key);
        }
    }
    return INFVSR_OK;
}

static enum infvsr_status check_config(const struct infvsr_visual_config * cfg, struct infvsr_err * err) {
    if (cfg->patch_size <= 0 || cfg->img_size <= 0 || cfg->img_size % cfg->patch_size != 0 ||
        (cfg->img_size / cfg->patch_size) % 8 != 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual config: img_size %d / patch_size %d must give a "
                              "token grid divisible by 8", cfg->img_size, cfg->patch_size);
    }
    if (cfg->embed_dim <= 0 || cfg->window_size <= 0 || cfg->mlp_ratio <= 0 || cfg->lora_rank <= 0 ||
        cfg->out_dim <= 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual config: embed_dim, window_size, mlp_ratio, "
                              "lora_rank and out_dim must be positive");
    }
    if (cfg->window_size * cfg->window_size > INFVSR__SWIN_MAX_WINDOW_TOKENS) {
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "visual config: window_size %d is larger than the "
                              "supported %d tokens per window", cfg->window_size, INFVSR__SWIN_MAX_WINDOW_TOKENS);
    }
    int res = cfg->img_size / cfg->patch_size;
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++, res /= 2) {
        int c = cfg->embed_dim << s;
        if (cfg->depths[s] <= 0 || cfg->num_heads[s] <= 0 || c % cfg->num_heads[s] != 0) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual config: stage %d: depth %d, heads %d for %d "
                                  "channels", s, cfg->depths[s], cfg->num_heads[s], c);
        }
        if (res > cfg->window_size && res % cfg->window_size != 0) {
            return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "visual config: stage %d: resolution %d is not a "
                                  "multiple of window_size %d (padding is not implemented)", s, res, cfg->window_size);
        }
    }
    return INFVSR_OK;
}

static enum infvsr_status load_block(struct loader * ld, const struct infvsr__swin_stage * st, int mlp_ratio,
                                     struct infvsr__swin_block * b, struct infvsr_err * err) {
    const int64_t c = st->c, hidden = st->c * (int64_t)mlp_ratio;
    const int64_t n_table = (int64_t)(2 * st->ws - 1) * (2 * st->ws - 1);
    const char *  p = b->prefix;
    enum infvsr_status r;
    if ((r = get1(ld, p, "norm1.weight", c, &b->norm1_w, err)) ||
        (r = get1(ld, p, "norm1.bias", c, &b->norm1_b, err)) ||
        (r = get2(ld, p, "attn.relative_position_bias_table", n_table, st->heads, &b->rel_table, err)) ||
        (r = get2(ld, p, "attn.qkv.weight", 3 * c, c, &b->qkv_w, err)) ||
        (r = get1(ld, p, "attn.qkv.bias", 3 * c, &b->qkv_b, err)) ||
        (r = get2(ld, p, "attn.proj.weight", c, c, &b->proj_w, err)) ||
        (r = get1(ld, p, "attn.proj.bias", c, &b->proj_b, err)) ||
        (r = get1(ld, p, "norm2.weight", c, &b->norm2_w, err)) ||
        (r = get1(ld, p, "norm2.bias", c, &b->norm2_b, err)) ||
        (r = get2(ld, p, "mlp.fc1.weight", hidden, c, &b->fc1_w, err)) ||
        (r = get1(ld, p, "mlp.fc1.bias", hidden, &b->fc1_b, err)) ||
        (r = get2(ld, p, "mlp.fc2.weight", c, hidden, &b->fc2_w, err)) ||
        (r = get1(ld, p, "mlp.fc2.bias", c, &b->fc2_b, err))) {
        return r;
    }
    enum infvsr_dtype td = b->rel_table.dtype; /* gathered, then converted by the copy op */
    if (td != INFVSR_TYPE_F32 && td != INFVSR_TYPE_BF16 && td != INFVSR_TYPE_F16) {
        return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s: '%sattn.relative_position_bias_table' is %s (f32, bf16 or "
                              "f16 expected)", infvsr_weights_path(ld->w), p, infvsr_dtype_name(td));
    }
    return INFVSR_OK;
}

static enum infvsr_status load_stage(struct loader * ld, const struct infvsr_weights * dape, struct infvsr_visual * v,
                                     int s, struct infvsr_err * err) {
    struct infvsr__swin_stage * st = &v->stages[s];
    const struct infvsr_visual_config * cfg = &v->cfg;
    st->c     = cfg->embed_dim << s;
    st->res   = v->res0 >> s;
    st->depth = cfg->depths[s];
    st->heads = cfg->num_heads[s];
    st->ws    = st->res <= cfg->window_size ? st->res : cfg->window_size; /* window covers the map: no shift */
    st->blocks = calloc((size_t)st->depth, sizeof *st->blocks);
    if (!st->blocks) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "visual load: out of memory");
    for (int i = 0; i < st->depth; i++) {
        struct infvsr__swin_block * b = &st->blocks[i];
        snprintf(b->prefix, sizeof b->prefix, "visual_encoder.layers.%d.blocks.%d.", s, i);
        b->shift = (st->res > cfg->window_size && i % 2 == 1) ? cfg->window_size / 2 : 0;
        enum infvsr_status r = load_block(ld, st, cfg->mlp_ratio, b, err);
        if (r == INFVSR_OK && dape) r = infvsr__swin_block_merge_dape(dape, cfg->lora_rank, b, err);
        if (r != INFVSR_OK) return r;
        if (b->qkv_w.owns_data) v->const_bytes += infvsr_tensor_nbytes(&b->qkv_w); /* the merged bf16 copy */
    }
    st->has_downsample = s + 1 < INFVSR__SWIN_STAGES;
    if (!st->has_downsample) return INFVSR_OK;
    char pre[64];
    snprintf(pre, sizeof pre, "visual_encoder.layers.%d.downsample.", s);
    enum infvsr_status r;
    if ((r = get1(ld, pre, "norm.weight", 4 * st->c, &st->down_norm_w, err)) ||
        (r = get1(ld, pre, "norm.bias", 4 * st->c, &st->down_norm_b, err)) ||
        (r = get2(ld, pre, "reduction.weight", 2 * st->c, 4 * st->c, &st->down_reduction_w, err))) {
        return r;
    }
    return INFVSR_OK;
}

static enum infvsr_status load_fixed(struct loader * ld, struct infvsr_visual * v, struct infvsr_err * err) {
    const int64_t c0 = v->cfg.embed_dim, p = v->cfg.patch_size;
    const int64_t pe_shape[4] = { c0, 3, p, p };
    enum infvsr_status r;
    if ((r = get(ld, "visual_encoder.patch_embed.proj.weight", 4, pe_shape, &v->pe_w, err)) ||
        (r = get1(ld, "visual_encoder.patch_embed.proj.", "bias", c0, &v->pe_b, err)) ||
        (r = get1(ld, "visual_encoder.patch_embed.norm.", "weight", c0, &v->pe_norm_w, err)) ||
        (r = get1(ld, "visual_encoder.patch_embed.norm.", "bias", c0, &v->pe_norm_b, err)) ||
        (r = get1(ld, "visual_encoder.norm.", "weight", v->c_last, &v->norm_w, err)) ||
        (r = get1(ld, "visual_encoder.norm.", "bias", v->c_last, &v->norm_b, err)) ||
        (r = get2(ld, "image_proj.", "weight", v->cfg.out_dim, v->c_last, &v->proj_w, err)) ||
        (r = get1(ld, "image_proj.", "bias", v->cfg.out_dim, &v->proj_b, err))) {
        return r;
    }
    /* The conv of kernel = stride = p is a linear map of each flattened (c, kh, kw) patch. */
    v->pe_w.ndim     = 2;
    v->pe_w.shape[1] = 3 * p * p;
    v->pe_w.shape[2] = v->pe_w.shape[3] = 1;
    return INFVSR_OK;
}

/* The one weight import of the model (engine/core/weight_set): every checkpoint tensor the
 * ops read, the merged qkv and the load-time constants. On a host backend nothing moves; on a
 * device backend they are uploaded once into one allocation (f32 weights as bf16 when the
 * backend computes in bf16, as the official pipeline's .to(bfloat16); index tables and the
 * ImageNet std keep their dtype). The row views of qkv are made after the commit. */
static enum infvsr_status import_weights(struct infvsr_visual * v, struct infvsr_err * err) {
    struct infvsr_weight_set * ws = &v->weights;
    struct infvsr_tensor * fixed[] = { &v->pe_w, &v->pe_b, &v->pe_norm_w, &v->pe_norm_b,
                                       &v->norm_w, &v->norm_b, &v->proj_w, &v->proj_b, &v->ones };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) INFVSR_TRY(infvsr_weight_set_add(ws, fixed[i], 0, err));
    INFVSR_TRY(infvsr_weight_set_add(ws, &v->imagenet_std, INFVSR_WEIGHT_KEEP_DTYPE, err));
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        struct infvsr__swin_stage *  st = &v->stages[s];
        struct infvsr__swin_tables * t  = &st->tab;
        for (int b = 0; b < st->depth; b++) {
            struct infvsr__swin_block * k = &st->blocks[b];
            struct infvsr_tensor * w[] = { &k->norm1_w, &k->norm1_b, &k->rel_table, &k->qkv_w, &k->qkv_b, &k->proj_w,
                                           &k->proj_b, &k->norm2_w, &k->norm2_b, &k->fc1_w, &k->fc1_b, &k->fc2_w,
                                           &k->fc2_b };
            for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) INFVSR_TRY(infvsr_weight_set_add(ws, w[i], 0, err));
        }
        if (st->has_downsample) {
            INFVSR_TRY(infvsr_weight_set_add(ws, &st->down_norm_w, 0, err));
            INFVSR_TRY(infvsr_weight_set_add(ws, &st->down_norm_b, 0, err));
            INFVSR_TRY(infvsr_weight_set_add(ws, &st->down_reduction_w, 0, err));
        }
        struct infvsr_tensor * idx[] = { &t->to_win[0], &t->to_win[1], &t->from_win[0], &t->from_win[1],
                                         &t->rel_idx, &t->merge_idx };
        for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
            if (idx[i]->data) INFVSR_TRY(infvsr_weight_set_add(ws, idx[i], INFVSR_WEIGHT_KEEP_DTYPE, err));
        }
        if (t->masks.data) INFVSR_TRY(infvsr_weight_set_add(ws, &t->masks, 0, err)); /* 0 and -100: exact in bf16 */
    }
    INFVSR_TRY(infvsr_weight_set_commit(ws, v->be, err));
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        for (int b = 0; b < v->stages[s].depth; b++) infvsr__swin_block_split_qkv(&v->stages[s].blocks[b], v->stages[s].c);
    }
    return INFVSR_OK;
}

static enum infvsr_status alloc_buf(struct infvsr_visual * v, struct infvsr_tensor * t, const char * name,
                                    enum infvsr_dtype dt, int64_t n, struct infvsr_err * err) {
    if (n <= 0) return INFVSR_OK;
    infvsr_tensor_setup(t, name, dt, 1, &n);
    enum infvsr_status st = infvsr_backend_tensor_alloc(v->be, t, err);
    if (st != INFVSR_OK) {
        infvsr_err_prefix(err, "visual load: scratch '%s' (%lld x %s)", name, (long long)n, infvsr_dtype_name(dt));
        return st;
    }
    v->scratch.bytes += infvsr_tensor_nbytes(t);
    return INFVSR_OK;
}

/* The largest element size of the relative-position tables after the import (their dtype is
 * the checkpoint's on a host backend, bf16 on a bf16 device). */
static size_t table_elem_size(const struct infvsr_visual * v) {
    size_t es = 0;
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        for (int b = 0; b < v->stages[s].depth; b++) {
            size_t e = infvsr_dtype_size(v->stages[s].blocks[b].rel_table.dtype);
            es = e > es ? e : es;
        }
    }
    return es;
}

static enum infvsr_status alloc_scratch(struct infvsr_visual * v, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t t0 = (int64_t)v->res0 * v->res0, c0 = v->cfg.embed_dim, p = v->cfg.patch_size;
    const int64_t act = t0 * c0; /* tokens x channels halves at every merge: stage 0 is the largest */
    int64_t hidden = act * v->cfg.mlp_ratio, bias = 0, relg = 0, scores = 0;
    if (hidden < t0 * 3 * p * p) hidden = t0 * 3 * p * p;
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        const struct infvsr__swin_stage * st = &v->stages[s];
        int64_t n = (int64_t)st->ws * st->ws, n_win = ((int64_t)st->res / st->ws) * (st->res / st->ws);
        if (st->heads * n * n > bias) bias = st->heads * n * n;
        if (n_win * st->heads * n * n > scores) scores = n_win * st->heads * n * n;
    }
    relg = bias * (int64_t)table_elem_size(v); /* bytes: viewed in each table's dtype */
    const bool fused = !v->explicit_attn;
    enum infvsr_status r;
    if ((r = alloc_buf(v, &sc->x, "visual.x", v->act, act, err)) || (r = alloc_buf(v, &sc->s, "visual.s", v->act, act, err)) ||
        (r = alloc_buf(v, &sc->p, "visual.p", v->act, act, err)) || (r = alloc_buf(v, &sc->q, "visual.q", v->act, act, err)) ||
        (r = alloc_buf(v, &sc->k, "visual.k", v->act, act, err)) || (r = alloc_buf(v, &sc->v, "visual.v", v->act, act, err)) ||
        (r = alloc_buf(v, &sc->o, "visual.o", v->act, act, err)) ||
        (r = alloc_buf(v, &sc->h, "visual.h", v->act, hidden, err)) ||
        (r = alloc_buf(v, &sc->relg, "visual.relg", INFVSR_TYPE_U8, relg, err)) ||
        (r = alloc_buf(v, &sc->bias, "visual.bias", v->bias_dtype, bias, err)) ||
        (fused && (r = alloc_buf(v, &sc->bias_w, "visual.bias_w", v->bias_dtype, bias, err))) ||
        (!fused && (r = alloc_buf(v, &sc->scores, "visual.scores", v->act, scores, err))) ||
        (r = alloc_buf(v, &sc->tokens, "visual.tokens", v->act, (int64_t)v->n_tokens * v->c_last, err))) {
        return r;
    }
    return INFVSR_OK;
}

/* "model." when the file is ram_swin_large_14m.pth ({"model": state_dict}), "" for a flat file. */
static const char * detect_prefix(const struct infvsr_weights * ram) {
    if (infvsr_weights_find(ram, "model.visual_encoder.patch_embed.proj.weight")) return "model.";
    if (infvsr_weights_find(ram, "visual_encoder.patch_embed.proj.weight")) return "";
    return "model.";
}

enum infvsr_status infvsr_visual_load(const struct infvsr_weights * ram, const struct infvsr_weights * dape,
                                      const struct infvsr_visual_config * cfg, struct infvsr_backend * be,
                                      struct infvsr_visual ** out, struct infvsr_err * err) {
    if (!ram || !cfg || !be || !out) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual load: NULL argument");
    *out = NULL;
    enum infvsr_status r = check_config(cfg, err);
    if (r != INFVSR_OK) return r;
    struct infvsr_visual * v = calloc(1, sizeof *v);
    if (!v) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "visual load: out of memory");
    v->cfg      = *cfg;
    v->be       = be;
    v->res0     = cfg->img_size / cfg->patch_size;
    v->n_tokens = (v->res0 / 8) * (v->res0 / 8) + 1;
    v->c_last   = cfg->embed_dim * 8;
    infvsr_backend_get_caps(be, &v->caps);
    v->act           = v->caps.act_dtype;
    v->explicit_attn = v->act == INFVSR_TYPE_BF16;
    v->bias_dtype    = v->explicit_attn ? v->act : INFVSR_TYPE_F32;
    infvsr_weight_set_init(&v->weights);

    struct loader ld = { .w = ram, .prefix = detect_prefix(ram) };
    r = load_fixed(&ld, v, err);
    for (int s = 0; r == INFVSR_OK && s < INFVSR__SWIN_STAGES; s++) r = load_stage(&ld, dape, v, s, err);
    if (r == INFVSR_OK) r = check_unexpected(&ld, err);
    if (r == INFVSR_OK) r = infvsr__swin_tables_build(v, err);
    if (r == INFVSR_OK) r = import_weights(v, err);
    if (r == INFVSR_OK) r = alloc_scratch(v, err);
    free(ld.used.keys);
    if (r != INFVSR_OK) {
        infvsr_visual_free(v);
        return r;
    }
    *out = v;
    return INFVSR_OK;
}

void infvsr_visual_free(struct infvsr_visual * v) {
    if (!v) return;
    struct infvsr__visual_scratch * sc = &v->scratch;
    struct infvsr_tensor * bufs[] = { &sc->x, &sc->s, &sc->p, &sc->q, &sc->k, &sc->v, &sc->o, &sc->h,
                                      &sc->relg, &sc->bias, &sc->bias_w, &sc->scores, &sc->tokens };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) infvsr_backend_tensor_free(v->be, bufs[i]);
    /* Owned host tensors (merged qkv, tables) survive an import on a host backend; on a device
     * backend they are views into the import by now, which the weight set frees. */
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        for (int i = 0; v->stages[s].blocks && i < v->stages[s].depth; i++) {
            infvsr_tensor_release(&v->stages[s].blocks[i].qkv_w); /* frees only an owned merged copy */
        }
        free(v->stages[s].blocks);
    }
    infvsr__swin_tables_release(v);
    infvsr_weight_set_release(&v->weights, v->be);
    free(v);
}

size_t infvsr_visual_resident_bytes(const struct infvsr_visual * v) {
    if (!v) return 0;
    return v->scratch.bytes + (v->caps.host_visible ? v->const_bytes : v->weights.resident_bytes);
}

int infvsr_visual_n_tokens(const struct infvsr_visual * v) { return v->n_tokens; }
int infvsr_visual_token_dim(const struct infvsr_visual * v) { return v->c_last; }
int infvsr_visual_out_dim(const struct infvsr_visual * v) { return v->cfg.out_dim; }
int infvsr_visual_img_size(const struct infvsr_visual * v) { return v->cfg.img_size; }

const struct infvsr_tensor * infvsr_visual_qkv_weight(const struct infvsr_visual * v, int stage, int block) {
    if (!v || stage < 0 || stage >= INFVSR__SWIN_STAGES || block < 0 || block >= v->stages[stage].depth) return NULL;
    return &v->stages[stage].blocks[block].qkv_w;
}
