#include "infvsr/model_config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

struct infvsr_model_config infvsr_model_config_full(void) {
    struct infvsr_model_config c = {
        .name = "infvsr",
        .dit = { .dim = 1536, .ffn_dim = 8960, .num_heads = 12, .num_layers = 30,
                 .in_dim = 16, .out_dim = 16, .freq_dim = 256, .text_dim = 512, .eps = 1e-6f },
        .vae = { .dim = 96, .z_dim = 16, .dim_mult = { 1, 2, 4, 4 }, .num_res_blocks = 2 },
        .visual = { .img_size = 384, .patch_size = 4, .embed_dim = 192,
                    .depths = { 2, 2, 18, 2 }, .num_heads = { 6, 12, 24, 48 },
                    .window_size = 12, .mlp_ratio = 4, .lora_rank = 8, .out_dim = 512 },
    };
    return c;
}

/* One field of a section: its JSON name and where it goes (int or float, or an int[4]). */
struct field {
    const char * key;
    int *        i;
    float *      f;
    int          n_array; /* > 0: JSON array of this many ints into i[] */
};

static enum infvsr_status parse_section(json_t * sec, const char * sec_name, struct field * fields,
                                        struct infvsr_err * err) {
    if (!json_is_object(sec)) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "section \"%s\" must be an object", sec_name);
    }
    const char * key;
    json_t *     val;
    json_object_foreach(sec, key, val) {
        struct field * f = fields;
        while (f->key && strcmp(f->key, key) != 0) f++;
        if (!f->key) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s.%s: unknown key", sec_name, key);
        }
        if (f->n_array > 0) {
            if (!json_is_array(val) || (int)json_array_size(val) != f->n_array) {
                return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s.%s: expected an array of %d integers",
                                      sec_name, key, f->n_array);
            }
            for (int j = 0; j < f->n_array; j++) {
                json_t * e = json_array_get(val, (size_t)j);
                if (!json_is_integer(e) || json_integer_value(e) <= 0 || json_integer_value(e) > 1 << 20) {
                    return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s.%s[%d]: expected a positive integer",
                                          sec_name, key, j);
                }
                f->i[j] = (int)json_integer_value(e);
            }
        } else if (f->f) {
            if (!json_is_number(val)) {
                return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s.%s: expected a number", sec_name, key);
            }
            *f->f = (float)json_number_value(val);
        } else {
            if (!json_is_integer(val) || json_integer_value(val) <= 0 || json_integer_value(val) > 1 << 20) {
                return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s.%s: expected a positive integer",
                                      sec_name, key);
            }
            *f->i = (int)json_integer_value(val);
        }
    }
    return INFVSR_OK;
}

static enum infvsr_status check_config(const struct infvsr_model_config * c, struct infvsr_err * err) {
    const struct infvsr_dit_config * d = &c->dit;
    if (d->dim % d->num_heads != 0 || (d->dim / d->num_heads) % 2 != 0) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "dit: dim %d must split into %d heads of even size",
                              d->dim, d->num_heads);
    }
    if (d->freq_dim % 2 != 0) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "dit.freq_dim must be even");
    }
    const struct infvsr_visual_config * v = &c->visual;
    for (int s = 0; s < 4; s++) {
        int ch = v->embed_dim << s;
        if (ch % v->num_heads[s] != 0) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "visual: stage %d width %d not divisible by %d heads",
                                  s, ch, v->num_heads[s]);
        }
    }
    if (v->img_size % v->patch_size != 0) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "visual: img_size must be a multiple of patch_size");
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr_model_config_load(const char * path, struct infvsr_model_config * out,
                                            struct infvsr_err * err) {
    json_error_t jerr;
    json_t *     root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    }
    struct infvsr_model_config c = infvsr_model_config_full();
    struct infvsr_dit_config *    d = &c.dit;
    struct infvsr_vae_config *    a = &c.vae;
    struct infvsr_visual_config * v = &c.visual;
    struct field dit_fields[] = {
        { "dim", &d->dim, NULL, 0 },           { "ffn_dim", &d->ffn_dim, NULL, 0 },
        { "num_heads", &d->num_heads, NULL, 0 }, { "num_layers", &d->num_layers, NULL, 0 },
        { "in_dim", &d->in_dim, NULL, 0 },     { "out_dim", &d->out_dim, NULL, 0 },
        { "freq_dim", &d->freq_dim, NULL, 0 }, { "text_dim", &d->text_dim, NULL, 0 },
        { "eps", NULL, &d->eps, 0 },           { NULL, NULL, NULL, 0 },
    };
    struct field vae_fields[] = {
        { "dim", &a->dim, NULL, 0 }, { "z_dim", &a->z_dim, NULL, 0 },
        { "dim_mult", a->dim_mult, NULL, 4 }, { "num_res_blocks", &a->num_res_blocks, NULL, 0 },
        { NULL, NULL, NULL, 0 },
    };
    struct field visual_fields[] = {
        { "img_size", &v->img_size, NULL, 0 },     { "patch_size", &v->patch_size, NULL, 0 },
        { "embed_dim", &v->embed_dim, NULL, 0 },   { "depths", v->depths, NULL, 4 },
        { "num_heads", v->num_heads, NULL, 4 },    { "window_size", &v->window_size, NULL, 0 },
        { "mlp_ratio", &v->mlp_ratio, NULL, 0 },   { "lora_rank", &v->lora_rank, NULL, 0 },
        { "out_dim", &v->out_dim, NULL, 0 },       { NULL, NULL, NULL, 0 },
    };

    enum infvsr_status st = INFVSR_OK;
    const char *       key;
    json_t *           val;
    if (!json_is_object(root)) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "top level must be an object");
    }
    json_object_foreach(root, key, val) {
        if (st != INFVSR_OK) break;
        if (strcmp(key, "name") == 0 && json_is_string(val)) {
            snprintf(c.name, sizeof c.name, "%s", json_string_value(val));
        } else if (strcmp(key, "description") == 0 && json_is_string(val)) {
            /* informational */
        } else if (strcmp(key, "dit") == 0) {
            st = parse_section(val, "dit", dit_fields, err);
        } else if (strcmp(key, "vae") == 0) {
            st = parse_section(val, "vae", vae_fields, err);
        } else if (strcmp(key, "visual") == 0) {
            st = parse_section(val, "visual", visual_fields, err);
        } else {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "unknown top-level key \"%s\"", key);
        }
    }
    json_decref(root);
    if (st == INFVSR_OK) st = check_config(&c, err);
    if (st != INFVSR_OK) {
        infvsr_err_prefix(err, "%s", path);
        return st;
    }
    *out = c;
    return INFVSR_OK;
}
