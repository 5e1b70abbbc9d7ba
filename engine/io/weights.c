/* infvsr_weights_*: format sniffing, the tensor index shared by both readers, lookups.
 *
 * The format is decided by content, never by file extension: a `.pth` may be a
 * safetensors file renamed, and a `.ckpt` is a torch.save zip. */
#include "io/weights_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum infvsr_status infvsr__weights_add(struct infvsr_weights * w, const char * key, size_t key_len,
                                       enum infvsr_dtype dtype, int ndim, const int64_t * shape,
                                       void * data, bool owned, struct infvsr_err * err) {
    enum infvsr_status st = INFVSR_OK;
    char * k = NULL;
    if (key_len == 0 || memchr(key, '\0', key_len)) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "tensor key %s", key_len ? "contains a NUL byte" : "is empty");
        goto fail;
    }
    if (w->n_entries == w->cap_entries) {
        size_t cap = w->cap_entries ? w->cap_entries * 2 : 256;
        struct infvsr__weights_entry * e = realloc(w->entries, cap * sizeof *e);
        if (!e) {
            st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory indexing %zu tensors", cap);
            goto fail;
        }
        w->entries     = e;
        w->cap_entries = cap;
    }
    k = malloc(key_len + 1);
    if (!k) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    struct infvsr__weights_entry * e = &w->entries[w->n_entries++];
    e->key = k;
    infvsr_tensor_view(&e->t, k, dtype, ndim, shape, data);
    e->t.owns_data = owned;
    return INFVSR_OK;
fail:
    if (owned) free(data);
    return st;
}

static int key_ref_cmp(const void * a, const void * b) {
    return strcmp(((const struct infvsr__key_ref *)a)->key, ((const struct infvsr__key_ref *)b)->key);
}

static enum infvsr_status build_key_index(struct infvsr_weights * w, struct infvsr_err * err) {
    w->by_key = malloc((w->n_entries ? w->n_entries : 1) * sizeof *w->by_key);
    if (!w->by_key) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < w->n_entries; i++) {
        w->by_key[i].key   = w->entries[i].key;
        w->by_key[i].index = i;
    }
    qsort(w->by_key, w->n_entries, sizeof *w->by_key, key_ref_cmp);
    /* Two tensors flattening to one key ({"a.b": x, "a": {"b": y}}) would make find()
     * ambiguous: refuse rather than pick one. */
    for (size_t i = 1; i < w->n_entries; i++) {
        if (strcmp(w->by_key[i - 1].key, w->by_key[i].key) == 0) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "duplicate tensor key '%s'", w->by_key[i].key);
        }
    }
    return INFVSR_OK;
}

/* Bytes at the start of a legacy (pre-1.6) torch.save file: PROTO 2, LONG1 of the magic
 * number 0x1950a86a20f9469cfc6c (10 bytes little-endian). */
static const uint8_t legacy_magic[] = { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                        0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };

static enum infvsr_status sniff_and_index(struct infvsr_weights * w, struct infvsr_err * err) {
    const uint8_t * d = w->file.data;
    size_t          n = w->file.size;
    if (n >= 4 && memcmp(d, "PK\x03\x04", 4) == 0) {
        w->format = INFVSR_WEIGHTS_TORCH_ZIP;
        return infvsr__torch_zip_index(w, err);
    }
    if (n >= 2 && d[0] == 0x80 && d[1] == 0x02) {
        if (n >= sizeof legacy_magic && memcmp(d, legacy_magic, sizeof legacy_magic) == 0) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                                  "legacy torch.save format: re-save with "
                                  "torch.save(..., _use_new_zipfile_serialization=True)");
        }
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "bare pickle (not a torch.save zip archive): re-save with torch.save()");
    }
    if (n >= 9 && d[8] == '{') {
        w->format = INFVSR_WEIGHTS_SAFETENSORS;
        return infvsr__safetensors_index(w, err);
    }
    char first[3 * 8 + 1] = "";
    for (size_t i = 0; i < n && i < 8; i++) snprintf(first + 3 * i, 4, "%02x ", d[i]);
    return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                          "unknown format (%zu bytes, starts with %s): expected safetensors or a "
                          "torch.save zip", n, n ? first : "nothing");
}

enum infvsr_status infvsr_weights_open(const char * path, struct infvsr_weights ** out,
                                       struct infvsr_err * err) {
    *out = NULL;
    struct infvsr_weights * w = calloc(1, sizeof *w);
    if (!w) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    w->path = strdup(path);
    if (!w->path) {
        free(w);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    }
    enum infvsr_status st = infvsr_mapped_file_open(&w->file, path, err);
    if (st == INFVSR_OK) {
        st = sniff_and_index(w, err);
        if (st == INFVSR_OK) st = build_key_index(w, err);
        if (st != INFVSR_OK) infvsr_err_prefix(err, "%s", path);
    }
    if (st != INFVSR_OK) {
        infvsr_weights_close(w);
        return st;
    }
    *out = w;
    return INFVSR_OK;
}

void infvsr_weights_close(struct infvsr_weights * w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_entries; i++) {
        infvsr_tensor_release(&w->entries[i].t);
        free(w->entries[i].key);
    }
    free(w->entries);
    free(w->by_key);
    if (w->metadata) json_decref(w->metadata);
    infvsr_mapped_file_close(&w->file);
    free(w->path);
    free(w);
}

enum infvsr_weights_format infvsr_weights_format(const struct infvsr_weights * w) { return w->format; }
const char *               infvsr_weights_path(const struct infvsr_weights * w) { return w->path; }
size_t                     infvsr_weights_count(const struct infvsr_weights * w) { return w->n_entries; }

const struct infvsr_tensor * infvsr_weights_at(const struct infvsr_weights * w, size_t i) {
    return i < w->n_entries ? &w->entries[i].t : NULL;
}

/* Full key of entry i (t.name is truncated to INFVSR_NAME_MAX - 1 characters). */
const char * infvsr_weights_key_at(const struct infvsr_weights * w, size_t i) {
    return i < w->n_entries ? w->entries[i].key : NULL;
}

const struct infvsr_tensor * infvsr_weights_find(const struct infvsr_weights * w, const char * key) {
    if (!w->by_key) return NULL;
    struct infvsr__key_ref probe = { key, 0 };
    const struct infvsr__key_ref * r = bsearch(&probe, w->by_key, w->n_entries, sizeof *w->by_key, key_ref_cmp);
    return r ? &w->entries[r->index].t : NULL;
}

const char * infvsr_weights_metadata(const struct infvsr_weights * w, const char * key) {
    if (!w->metadata) return NULL;
    return json_string_value(json_object_get(w->metadata, key)); /* NULL for non-strings */
}

enum infvsr_status infvsr_weights_get(const struct infvsr_weights * w, const char * prefix,
                                      const char * key, int ndim, const int64_t * shape,
                                      struct infvsr_tensor * out, struct infvsr_err * err) {
    char full[1024];
    int  len = snprintf(full, sizeof full, "%s%s", prefix ? prefix : "", key);
    if (len < 0 || (size_t)len >= sizeof full) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "key '%s%s' too long", prefix ? prefix : "", key);
    }
    const struct infvsr_tensor * t = infvsr_weights_find(w, full);
    if (!t) return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s: missing tensor '%s'", w->path, full);
    char want[96], got[96];
    bool shape_ok = t->ndim == ndim;
    for (int i = 0; shape_ok && shape && i < ndim; i++) shape_ok = t->shape[i] == shape[i];
    if (!shape_ok) {
        return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s: tensor '%s': expected shape %s, got %s", w->path,
                              full, shape ? infvsr_shape_str(ndim, shape, want, sizeof want) : "(rank only)",
                              infvsr_shape_str(t->ndim, t->shape, got, sizeof got));
    }
    if (!infvsr_dtype_is_float(t->dtype)) {
        return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s: tensor '%s': expected a float dtype, got %s",
                              w->path, full, infvsr_dtype_name(t->dtype));
    }
    *out           = *t;
    out->owns_data = false;
    return INFVSR_OK;
}
