/* The tensors each model file must provide (model_files.h), the checks against them, and
 * the one-line per-file summary. Key names and shapes are exactly what the loaders read
 * (MODEL-SPEC §4.9, §5.9/Appendix A, §6.4). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/model_files.h"
#include "infvsr/weights.h"
#include "session_internal.h"

struct sink {
    infvsr_tensor_spec_fn fn;
    void *                ctx;
};

/* "<name><suffix>" in k (256 bytes); the names here are constants, so a truncation is a
 * programming error. */
static const char * suffixed(char * k, const char * name, const char * suffix) {
    if (snprintf(k, 256, "%s%s", name, suffix) >= 256) {
        fprintf(stderr, "model spec: tensor name too long: %s%s\n", name, suffix);
        abort();
    }
    return k;
}

static void add(struct sink * l, const char * name, enum infvsr_init_hint init, float scale, int ndim, ...) {
    struct infvsr_tensor_spec s = { .key = name, .ndim = ndim, .init = init, .scale = scale };
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++) s.shape[i] = va_arg(ap, int64_t);
    va_end(ap);
    l->fn(l->ctx, &s);
}

#define I(x) ((int64_t)(x))

static void add_lin(struct sink * l, const char * name, int64_t out, int64_t in) {
    char k[256]; /* names are at most 199 bytes + suffix */
    suffixed(k, name, ".weight");
    add(l, k, INFVSR_INIT_FAN_IN, 1, 2, out, in);
    suffixed(k, name, ".bias");
    add(l, k, INFVSR_INIT_BIAS, 1, 1, out);
}

/* ---- DiT (MODEL-SPEC §4.9) ---- */
static void dit_keys(struct sink * l, const struct infvsr_dit_config * c) {
    const int64_t d = c->dim;
    add(l, "patch_embedding.weight", INFVSR_INIT_FAN_IN, 1, 5, d, I(c->in_dim), I(1), I(2), I(2));
    add(l, "patch_embedding.bias", INFVSR_INIT_BIAS, 1, 1, d);
    add_lin(l, "text_embedding.0", d, c->text_dim);
    add_lin(l, "text_embedding.2", d, d);
    add_lin(l, "time_embedding.0", d, c->freq_dim);
    add_lin(l, "time_embedding.2", d, d);
    add_lin(l, "time_projection.1", 6 * d, d);
    add(l, "head.modulation", INFVSR_INIT_MOD, 1, 3, I(1), I(2), d);
    add_lin(l, "head.head", I(c->out_dim) * 4, d);
    char k[256]; /* names are at most 199 bytes + suffix */
    for (int i = 0; i < c->num_layers; i++) {
        snprintf(k, sizeof k, "blocks.%d.modulation", i);
        add(l, k, INFVSR_INIT_MOD, 1, 3, I(1), I(6), d);
        static const char * const which[2] = { "self_attn", "cross_attn" };
        for (int a = 0; a < 2; a++) {
            static const char * const proj[4] = { "q", "k", "v", "o" };
            for (int p = 0; p < 4; p++) {
                snprintf(k, sizeof k, "blocks.%d.%s.%s", i, which[a], proj[p]);
                add_lin(l, k, d, d);
            }
            snprintf(k, sizeof k, "blocks.%d.%s.norm_q.weight", i, which[a]);
            add(l, k, INFVSR_INIT_GAIN, 1, 1, d);
            snprintf(k, sizeof k, "blocks.%d.%s.norm_k.weight", i, which[a]);
            add(l, k, INFVSR_INIT_GAIN, 1, 1, d);
        }
        snprintf(k, sizeof k, "blocks.%d.norm3.weight", i);
        add(l, k, INFVSR_INIT_GAIN, 1, 1, d);
        snprintf(k, sizeof k, "blocks.%d.norm3.bias", i);
        add(l, k, INFVSR_INIT_BIAS, 1, 1, d);
        snprintf(k, sizeof k, "blocks.%d.ffn.0", i);
        add_lin(l, k, c->ffn_dim, d);
        snprintf(k, sizeof k, "blocks.%d.ffn.2", i);
        add_lin(l, k, d, c->ffn_dim);
    }
}

/* ---- VAE (MODEL-SPEC §5.3, §5.4, Appendix A) ---- */
static void vae_conv(struct sink * l, const char * name, int cin, int cout, int kt, int kh, int kw, float scale) {
    char k[256]; /* names are at most 199 bytes + suffix */
    suffixed(k, name, ".weight");
    if (kt == 0) add(l, k, INFVSR_INIT_FAN_IN, scale, 4, I(cout), I(cin), I(kh), I(kw));
    else         add(l, k, INFVSR_INIT_FAN_IN, scale, 5, I(cout), I(cin), I(kt), I(kh), I(kw));
    suffixed(k, name, ".bias");
    add(l, k, INFVSR_INIT_BIAS, 1, 1, I(cout));
}

static void vae_residual(struct sink * l, const char * name, int cin, int cout) {
    char k[256]; /* names are at most 199 bytes + suffix */
    snprintf(k, sizeof k, "%s.residual.0.gamma", name);
    add(l, k, INFVSR_INIT_GAIN, 1, 4, I(cin), I(1), I(1), I(1));
    snprintf(k, sizeof k, "%s.residual.2", name);
    vae_conv(l, k, cin, cout, 3, 3, 3, 1);
    snprintf(k, sizeof k, "%s.residual.3.gamma", name);
    add(l, k, INFVSR_INIT_GAIN, 1, 4, I(cout), I(1), I(1), I(1));
    snprintf(k, sizeof k, "%s.residual.6", name);
    vae_conv(l, k, cout, cout, 3, 3, 3, 1);
    if (cin != cout) {
        snprintf(k, sizeof k, "%s.shortcut", name);
        vae_conv(l, k, cin, cout, 1, 1, 1, 1);
    }
}

static void vae_middle(struct sink * l, const char * part, int d) {
    char k[256]; /* names are at most 199 bytes + suffix */
    snprintf(k, sizeof k, "%s.middle.0", part);
    vae_residual(l, k, d, d);
    snprintf(k, sizeof k, "%s.middle.1.norm.gamma", part);
    add(l, k, INFVSR_INIT_GAIN, 1, 3, I(d), I(1), I(1));
    snprintf(k, sizeof k, "%s.middle.1.to_qkv.weight", part);
    add(l, k, INFVSR_INIT_FAN_IN, 1, 4, I(3 * d), I(d), I(1), I(1));
    snprintf(k, sizeof k, "%s.middle.1.to_qkv.bias", part);
    add(l, k, INFVSR_INIT_BIAS, 1, 1, I(3 * d));
    snprintf(k, sizeof k, "%s.middle.1.proj.weight", part);
    add(l, k, INFVSR_INIT_FAN_IN, 1, 4, I(d), I(d), I(1), I(1));
    snprintf(k, sizeof k, "%s.middle.1.proj.bias", part);
    add(l, k, INFVSR_INIT_BIAS, 1, 1, I(d));
    snprintf(k, sizeof k, "%s.middle.2", part);
    vae_residual(l, k, d, d);
}

/* mode: 0 down2d, 1 down3d, 2 up3d, 3 up2d */
static void vae_resample(struct sink * l, const char * name, int mode, int c) {
    char k[256]; /* names are at most 199 bytes + suffix (the precision tells GCC so) */
    bool up = mode >= 2;
    snprintf(k, sizeof k, "%.199s.resample.1", name);
    vae_conv(l, k, c, up ? c / 2 : c, 0, 3, 3, 1);
    snprintf(k, sizeof k, "%.199s.time_conv", name);
    if (mode == 1) vae_conv(l, k, c, c, 3, 1, 1, 1);
    if (mode == 2) vae_conv(l, k, c, 2 * c, 3, 1, 1, 1);
}

static void vae_keys(struct sink * l, const struct infvsr_vae_config * cfg) {
    char k[256]; /* names are at most 199 bytes + suffix */
    int dims[5] = { cfg->dim };
    for (int i = 0; i < 4; i++) dims[i + 1] = cfg->dim * cfg->dim_mult[i];
    int idx = 0, cin = dims[0];
    vae_conv(l, "encoder.conv1", 3, dims[0], 3, 3, 3, 1);
    for (int i = 0; i < 4; i++) {
        int cout = dims[i + 1];
        for (int j = 0; j < cfg->num_res_blocks; j++, cin = cout) {
            snprintf(k, sizeof k, "encoder.downsamples.%d", idx++);
            vae_residual(l, k, cin, cout);
        }
        if (i != 3) {
            snprintf(k, sizeof k, "encoder.downsamples.%d", idx++);
            vae_resample(l, k, i == 0 ? 0 : 1, cout);
        }
    }
    vae_middle(l, "encoder", cin);
    add(l, "encoder.head.0.gamma", INFVSR_INIT_GAIN, 1, 4, I(cin), I(1), I(1), I(1));
    vae_conv(l, "encoder.head.2", cin, 2 * cfg->z_dim, 3, 3, 3, 1);
    vae_conv(l, "conv1", 2 * cfg->z_dim, 2 * cfg->z_dim, 1, 1, 1, 1);
    vae_conv(l, "conv2", cfg->z_dim, cfg->z_dim, 1, 1, 1, 1);

    const int * mu = cfg->dim_mult;
    int dd[5] = { cfg->dim * mu[3], cfg->dim * mu[3], cfg->dim * mu[2], cfg->dim * mu[1], cfg->dim * mu[0] };
    idx = 0;
    vae_conv(l, "decoder.conv1", cfg->z_dim, dd[0], 3, 3, 3, 1);
    vae_middle(l, "decoder", dd[0]);
    int cout = dd[0];
    for (int i = 0; i < 4; i++) {
        int ci = i == 0 ? dd[0] : dd[i] / 2;
        cout = dd[i + 1];
        for (int j = 0; j < cfg->num_res_blocks + 1; j++, ci = cout) {
            snprintf(k, sizeof k, "decoder.upsamples.%d", idx++);
            vae_residual(l, k, ci, cout);
        }
        if (i != 3) {
            snprintf(k, sizeof k, "decoder.upsamples.%d", idx++);
            vae_resample(l, k, i < 2 ? 2 : 3, cout);
        }
    }
    add(l, "decoder.head.0.gamma", INFVSR_INIT_GAIN, 1, 4, I(cout), I(1), I(1), I(1));
    vae_conv(l, "decoder.head.2", cout, 3, 3, 3, 3, 0.3f);
}

/* ---- RAM Swin-L visual encoder + image_proj (MODEL-SPEC §6.4; ram_swin_large_14m.pth holds
 * them under its "model" entry, found as a wrapper), and DAPE ---- */
static void ram_keys(struct sink * l, const struct infvsr_visual_config * c) {
    char k[200];
    const int64_t c0 = c->embed_dim, p = c->patch_size;
    add(l, "visual_encoder.patch_embed.proj.weight", INFVSR_INIT_FAN_IN, 1, 4, c0, I(3), p, p);
    add(l, "visual_encoder.patch_embed.proj.bias", INFVSR_INIT_BIAS, 1, 1, c0);
    add(l, "visual_encoder.patch_embed.norm.weight", INFVSR_INIT_GAIN, 1, 1, c0);
    add(l, "visual_encoder.patch_embed.norm.bias", INFVSR_INIT_BIAS, 1, 1, c0);
    int res = c->img_size / c->patch_size;
    for (int s = 0; s < 4; s++, res /= 2) {
        const int64_t ch = c0 << s, hidden = ch * c->mlp_ratio;
        const int ws = res <= c->window_size ? res : c->window_size;
        const int64_t table = (int64_t)(2 * ws - 1) * (2 * ws - 1);
        for (int b = 0; b < c->depths[s]; b++) {
            char pre[96];
            snprintf(pre, sizeof pre, "visual_encoder.layers.%d.blocks.%d.", s, b);
#define K(sfx) (snprintf(k, sizeof k, "%s%s", pre, sfx), k)
            add(l, K("norm1.weight"), INFVSR_INIT_GAIN, 1, 1, ch);
            add(l, K("norm1.bias"), INFVSR_INIT_BIAS, 1, 1, ch);
            add(l, K("attn.relative_position_bias_table"), INFVSR_INIT_TABLE, 1, 2, table, I(c->num_heads[s]));
            add_lin(l, K("attn.qkv"), 3 * ch, ch);
            add_lin(l, K("attn.proj"), ch, ch);
            add(l, K("norm2.weight"), INFVSR_INIT_GAIN, 1, 1, ch);
            add(l, K("norm2.bias"), INFVSR_INIT_BIAS, 1, 1, ch);
            add_lin(l, K("mlp.fc1"), hidden, ch);
            add_lin(l, K("mlp.fc2"), ch, hidden);
#undef K
        }
        if (s < 3) {
            snprintf(k, sizeof k, "visual_encoder.layers.%d.downsample.norm.weight", s);
            add(l, k, INFVSR_INIT_GAIN, 1, 1, 4 * ch);
            snprintf(k, sizeof k, "visual_encoder.layers.%d.downsample.norm.bias", s);
            add(l, k, INFVSR_INIT_BIAS, 1, 1, 4 * ch);
            snprintf(k, sizeof k, "visual_encoder.layers.%d.downsample.reduction.weight", s);
            add(l, k, INFVSR_INIT_FAN_IN, 1, 2, 2 * ch, 4 * ch);
        }
    }
    add(l, "visual_encoder.norm.weight", INFVSR_INIT_GAIN, 1, 1, 8 * c0);
    add(l, "visual_encoder.norm.bias", INFVSR_INIT_BIAS, 1, 1, 8 * c0);
    add_lin(l, "image_proj", c->out_dim, 8 * c0);
}

static void dape_keys(struct sink * l, const struct infvsr_visual_config * c) {
    char k[256]; /* names are at most 199 bytes + suffix */
    const int64_t r = c->lora_rank;
    for (int s = 0; s < 4; s++) {
        const int64_t ch = (int64_t)c->embed_dim << s;
        for (int b = 0; b < c->depths[s]; b++) {
            snprintf(k, sizeof k, "visual_encoder.layers.%d.blocks.%d.attn.qkv.lora_A", s, b);
            add(l, k, INFVSR_INIT_FAN_IN, 1, 2, 2 * r, ch);
            /* small B: the merge changes q and v without dominating them */
            snprintf(k, sizeof k, "visual_encoder.layers.%d.blocks.%d.attn.qkv.lora_B", s, b);
            add(l, k, INFVSR_INIT_FAN_IN, 1, 2, 2 * ch, r);
        }
    }
}


const char * infvsr_model_file_name(enum infvsr_model_file f) {
    static const char * const names[INFVSR_FILE_COUNT] = { INFVSR_MODEL_FILE_DIT, INFVSR_MODEL_FILE_VAE,
                                                            INFVSR_MODEL_FILE_RAM, INFVSR_MODEL_FILE_DAPE };
    return (unsigned)f < INFVSR_FILE_COUNT ? names[f] : "?";
}

void infvsr_model_file_spec(const struct infvsr_model_config * cfg, enum infvsr_model_file f, infvsr_tensor_spec_fn fn,
                            void * ctx) {
    struct sink l = { fn, ctx };
    switch (f) {
        case INFVSR_FILE_DIT: dit_keys(&l, &cfg->dit); break;
        case INFVSR_FILE_VAE: vae_keys(&l, &cfg->vae); break;
        case INFVSR_FILE_RAM: ram_keys(&l, &cfg->visual); break;
        case INFVSR_FILE_DAPE: dape_keys(&l, &cfg->visual); break;
        case INFVSR_FILE_COUNT: break;
    }
}

/* ---- checks ------------------------------------------------------------------------------ */

struct checker {
    const struct infvsr_weights *    w;
    enum infvsr_model_file           f;
    struct infvsr_model_file_check * c;
    unsigned                         dtype_seen; /* bit per dtype */
};

static void problem(struct checker * k, const char * fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct checker * k, const char * fmt, ...) {
    struct infvsr_model_file_check * c = k->c;
    c->n_problems++;
    size_t used = strlen(c->problems);
    if (used + 2 >= sizeof c->problems) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->problems + used, sizeof c->problems - used - 1, fmt, ap);
    va_end(ap);
    used = strlen(c->problems);
    if (n > 0 && used + 1 < sizeof c->problems) {
        c->problems[used]     = '\n';
        c->problems[used + 1] = '\0';
    }
}

static void check_one(void * ctx, const struct infvsr_tensor_spec * s) {
    struct checker * k = ctx;
    k->c->n_needed++;
    const struct infvsr_tensor * t = infvsr_weights_find(k->w, s->key);
    char want[96], got[96];
    if (!t) {
        if (k->c->n_problems < 8) { /* the hint costs a pass over the keys: only for the first few */
            char hint[768];
            problem(k, "missing '%s' %s (%s)", s->key, infvsr_shape_str(s->ndim, s->shape, want, sizeof want),
                    infvsr_weights_hint(k->w, s->key, hint, sizeof hint));
        } else {
            problem(k, "missing '%s' %s", s->key, infvsr_shape_str(s->ndim, s->shape, want, sizeof want));
        }
        return;
    }
    if (k->c->n_found++ == 0) snprintf(k->c->wrapper, sizeof k->c->wrapper, "%s", infvsr_weights_wrapper_of(k->w, s->key));
    bool shape_ok = t->ndim == s->ndim;
    for (int i = 0; shape_ok && i < s->ndim; i++) shape_ok = t->shape[i] == s->shape[i];
    if (!shape_ok) {
        k->c->n_bad_shape++;
        problem(k, "'%s': shape %s, expected %s", s->key, infvsr_shape_str(t->ndim, t->shape, got, sizeof got),
                infvsr_shape_str(s->ndim, s->shape, want, sizeof want));
    }
    bool dtype_ok = k->f == INFVSR_FILE_DIT ? (t->dtype == INFVSR_TYPE_F32 || t->dtype == INFVSR_TYPE_BF16 || t->dtype == INFVSR_TYPE_F16)
                                            : infvsr_dtype_is_float(t->dtype);
    if (!dtype_ok) {
        k->c->n_bad_dtype++;
        problem(k, "'%s': dtype %s, expected %s", s->key, infvsr_dtype_name(t->dtype),
                k->f == INFVSR_FILE_DIT ? "bf16, f16 or f32" : "a float dtype");
    }
    k->dtype_seen |= 1u << t->dtype;
}

void infvsr_model_file_check(const struct infvsr_model_config * cfg, enum infvsr_model_file f,
                             const struct infvsr_weights * w, struct infvsr_model_file_check * out) {
    memset(out, 0, sizeof *out);
    out->n_tensors = infvsr_weights_count(w);
    for (size_t i = 0; i < out->n_tensors; i++) out->bytes += infvsr_tensor_nbytes(infvsr_weights_at(w, i));
    struct checker k = { w, f, out, 0 };
    infvsr_model_file_spec(cfg, f, check_one, &k);
    size_t used = 0;
    for (int d = 0; d < INFVSR_TYPE_COUNT && used + 8 < sizeof out->dtypes; d++) {
        if (k.dtype_seen & (1u << d)) {
            used += (size_t)snprintf(out->dtypes + used, sizeof out->dtypes - used, "%s%s", used ? "+" : "",
                                     infvsr_dtype_name((enum infvsr_dtype)d));
        }
    }
    /* tensors beyond the needed ones are normal (optimizer state, EMA copies, buffers the
     * loaders do not read): the line counts them, they are not problems */
}

const char * infvsr_model_file_check_line(const struct infvsr_model_file_check * c, enum infvsr_model_file f,
                                          const struct infvsr_weights * w, char * buf, size_t len) {
    char fmt[64];
    bool gb = c->bytes >= 1000000000u;
    const char * path  = infvsr_weights_path(w), * slash = strrchr(path, '/');
    const char * base  = slash ? slash + 1 : path;
    bool         other = strcmp(base, infvsr_model_file_name(f)) != 0;
    int  n = snprintf(buf, len, "%s%s%s%s: %s, %zu tensors, %.*f %s %s; needs %zu: ", infvsr_model_file_name(f),
                      other ? " (" : "", other ? base : "", other ? ")" : "",
                      infvsr_weights_format_name(w, fmt, sizeof fmt), c->n_tensors, gb ? 2 : 1,
                      (double)c->bytes / (gb ? 1e9 : 1e6), gb ? "GB" : "MB", c->dtypes[0] ? c->dtypes : "-", c->n_needed);
    size_t used = n > 0 ? (size_t)n : 0;
    if (used >= len) return buf;
    if (c->n_found == c->n_needed && !c->n_bad_shape && !c->n_bad_dtype) {
        used += (size_t)snprintf(buf + used, len - used, "all found, shapes and dtypes ok");
    } else {
        used += (size_t)snprintf(buf + used, len - used, "%zu found, %zu missing, %zu wrong shape, %zu wrong dtype",
                                 c->n_found, c->n_needed - c->n_found, c->n_bad_shape, c->n_bad_dtype);
    }
    if (used < len && c->wrapper[0]) used += (size_t)snprintf(buf + used, len - used, "; under '%s'", c->wrapper);
    if (used < len && c->n_tensors > c->n_found) snprintf(buf + used, len - used, "; %zu other tensors ignored", c->n_tensors - c->n_found);
    return buf;
}

const char * infvsr_model_file_summary(const struct infvsr_model * m, enum infvsr_model_file f, char * buf, size_t len) {
    const struct infvsr_weights * w = f == INFVSR_FILE_DIT   ? m->w_dit
                                      : f == INFVSR_FILE_VAE ? m->w_vae
                                      : f == INFVSR_FILE_RAM ? m->w_ram
                                      : f == INFVSR_FILE_DAPE ? m->w_dape : NULL;
    if (len) buf[0] = '\0';
    if (!w) return buf;
    struct infvsr_model_file_check * c = malloc(sizeof *c);
    if (!c) return buf;
    infvsr_model_file_check(&m->cfg, f, w, c);
    infvsr_model_file_check_line(c, f, w, buf, len);
    free(c);
    return buf;
}
