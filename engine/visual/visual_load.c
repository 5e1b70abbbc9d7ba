/* Loading the visual encoder: config checks, the strict key set of MODEL-SPEC.md section 6.4,
 * the DAPE merge (lora_merge.c) and the scratch reserved for encode. */
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
        infvsr__swin_block_split_qkv(b, st->c);
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

static enum infvsr_status alloc_f32(struct infvsr_tensor * t, const char * name, int64_t n, struct infvsr_err * err) {
    if (infvsr_tensor_alloc(t, name, INFVSR_TYPE_F32, 1, &n) != INFVSR_OK) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "visual load: cannot reserve %lld floats of scratch '%s'",
                              (long long)n, name);
    }
    return INFVSR_OK;
}

static enum infvsr_status alloc_scratch(struct infvsr_visual * v, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t t0 = (int64_t)v->res0 * v->res0, c0 = v->cfg.embed_dim, p = v->cfg.patch_size;
    const int64_t act = t0 * c0; /* tokens x channels halves at every merge: stage 0 is the largest */
    int64_t hidden = act * v->cfg.mlp_ratio, bias = 0, table = 0;
    if (hidden < t0 * 3 * p * p) hidden = t0 * 3 * p * p;
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        const struct infvsr__swin_stage * st = &v->stages[s];
        int64_t n = (int64_t)st->ws * st->ws, tn = (int64_t)(2 * st->ws - 1) * (2 * st->ws - 1);
        if (st->heads * n * n > bias) bias = st->heads * n * n;
        if (st->heads * tn > table) table = st->heads * tn;
    }
    enum infvsr_status r;
    if ((r = alloc_f32(&sc->x, "x", act, err)) || (r = alloc_f32(&sc->s, "s", act, err)) ||
        (r = alloc_f32(&sc->p, "p", act, err)) || (r = alloc_f32(&sc->q, "q", act, err)) ||
        (r = alloc_f32(&sc->k, "k", act, err)) || (r = alloc_f32(&sc->v, "v", act, err)) ||
        (r = alloc_f32(&sc->o, "o", act, err)) || (r = alloc_f32(&sc->h, "h", hidden, err)) ||
        (r = alloc_f32(&sc->bias, "bias", bias, err)) || (r = alloc_f32(&sc->bias_w, "bias_w", bias, err)) ||
        (r = alloc_f32(&sc->table, "table", table, err)) ||
        (r = alloc_f32(&sc->tokens, "tokens", (int64_t)v->n_tokens * v->c_last, err))) {
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
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    if (!caps.host_visible) { /* activations and scratch are host memory */
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "visual: backend '%s' is not supported (host-memory "
                              "backends only)", caps.name);
    }
    enum infvsr_status r = check_config(cfg, err);
    if (r != INFVSR_OK) return r;
    struct infvsr_visual * v = calloc(1, sizeof *v);
    if (!v) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "visual load: out of memory");
    v->cfg      = *cfg;
    v->be       = be;
    v->res0     = cfg->img_size / cfg->patch_size;
    v->n_tokens = (v->res0 / 8) * (v->res0 / 8) + 1;
    v->c_last   = cfg->embed_dim * 8;

    struct loader ld = { .w = ram, .prefix = detect_prefix(ram) };
    r = load_fixed(&ld, v, err);
    for (int s = 0; r == INFVSR_OK && s < INFVSR__SWIN_STAGES; s++) r = load_stage(&ld, dape, v, s, err);
    if (r == INFVSR_OK) r = check_unexpected(&ld, err);
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
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        for (int i = 0; v->stages[s].blocks && i < v->stages[s].depth; i++) {
            infvsr_tensor_release(&v->stages[s].blocks[i].qkv_w); /* frees only the owned merged copy */
        }
        free(v->stages[s].blocks);
    }
    struct infvsr__visual_scratch * sc = &v->scratch;
    struct infvsr_tensor * bufs[] = { &sc->x, &sc->s, &sc->p, &sc->q, &sc->k, &sc->v, &sc->o, &sc->h,
                                      &sc->bias, &sc->bias_w, &sc->table, &sc->tokens };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) infvsr_tensor_release(bufs[i]);
    free(v);
}

int infvsr_visual_n_tokens(const struct infvsr_visual * v) { return v->n_tokens; }
int infvsr_visual_token_dim(const struct infvsr_visual * v) { return v->c_last; }
int infvsr_visual_out_dim(const struct infvsr_visual * v) { return v->cfg.out_dim; }
int infvsr_visual_img_size(const struct infvsr_visual * v) { return v->cfg.img_size; }

const struct infvsr_tensor * infvsr_visual_qkv_weight(const struct infvsr_visual * v, int stage, int block) {
    if (!v || stage < 0 || stage >= INFVSR__SWIN_STAGES || block < 0 || block >= v->stages[stage].depth) return NULL;
    return &v->stages[stage].blocks[block].qkv_w;
}
