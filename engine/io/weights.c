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

/* A legacy (pre-1.6) torch.save file starts with a pickle of the magic number
 * 0x1950a86a20f9469cfc6c: PROTO n, (FRAME at protocol 4+), LONG1 of 10 bytes, STOP.
 * Returns the offset just past that STOP, or 0 when the file does not start that way. */
static const uint8_t legacy_magic[] = { 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };

size_t infvsr__legacy_magic_end(const uint8_t * d, size_t n) {
    if (n < 2 + sizeof legacy_magic + 1 || d[0] != 0x80 || d[1] < 2 || d[1] > 5) return 0;
    size_t p = 2;
    if (d[p] == 0x95) p += 9; /* FRAME + 8-byte length */
    if (n < p + sizeof legacy_magic + 1 || memcmp(d + p, legacy_magic, sizeof legacy_magic) != 0) return 0;
    p += sizeof legacy_magic;
    return d[p] == '.' ? p + 1 : 0;
}

static enum infvsr_status sniff_and_index(struct infvsr_weights * w, struct infvsr_err * err) {
    const uint8_t * d = w->file.data;
    size_t          n = w->file.size;
    if (n >= 4 && memcmp(d, "PK\x03\x04", 4) == 0) {
        w->format = INFVSR_WEIGHTS_TORCH_ZIP;
        return infvsr__torch_zip_index(w, err);
    }
    if (infvsr__legacy_magic_end(d, n)) {
        w->format = INFVSR_WEIGHTS_TORCH_LEGACY;
        return infvsr__torch_legacy_index(w, err);
    }
    if (n >= 2 && d[0] == 0x80 && d[1] >= 2 && d[1] <= 5) {
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
                          "torch.save file", n, n ? first : "nothing");
}

/* ---- wrappers ------------------------------------------------------------------------ */

static const char * const wrapper_segments[] = { "state_dict", "model", "model_state", "module", "ema", "model_ema",
                                                 "ema_model", "net", "params", "params_ema" };

static bool is_wrapper_segment(const char * s, size_t n) {
    for (size_t i = 0; i < sizeof wrapper_segments / sizeof wrapper_segments[0]; i++) {
        if (strlen(wrapper_segments[i]) == n && memcmp(wrapper_segments[i], s, n) == 0) return true;
    }
    return false;
}

/* Length of the key's leading run of wrapper segments (with their dots), at most 4 of them,
 * always leaving at least one segment. */
static size_t wrapper_len(const char * key) {
    size_t len = 0;
    for (int seg = 0; seg < 4; seg++) {
        const char * dot = strchr(key + len, '.');
        if (!dot || !is_wrapper_segment(key + len, (size_t)(dot - key - len))) break;
        len = (size_t)(dot - key) + 1;
    }
    return len;
}

static void find_wrappers(struct infvsr_weights * w) {
    for (size_t i = 0; i < w->n_entries; i++) {
        size_t len = wrapper_len(w->entries[i].key);
        if (len == 0 || len >= sizeof w->wrappers[0]) continue;
        size_t j = 0;
        while (j < w->n_wrappers && !(strlen(w->wrappers[j]) == len && memcmp(w->wrappers[j], w->entries[i].key, len) == 0)) j++;
        if (j == w->n_wrappers) {
            if (j == INFVSR__MAX_WRAPPERS) continue;
            memcpy(w->wrappers[j], w->entries[i].key, len);
            w->wrappers[j][len] = '\0';
            w->n_wrappers++;
        }
        w->wrapper_count[j]++;
    }
    /* the most tensors first; stable, so file order breaks ties */
    for (size_t a = 1; a < w->n_wrappers; a++) {
        for (size_t b = a; b > 0 && w->wrapper_count[b] > w->wrapper_count[b - 1]; b--) {
            char   t[sizeof w->wrappers[0]];
            size_t c = w->wrapper_count[b];
            memcpy(t, w->wrappers[b], sizeof t);
            memcpy(w->wrappers[b], w->wrappers[b - 1], sizeof t);
            memcpy(w->wrappers[b - 1], t, sizeof t);
            w->wrapper_count[b]     = w->wrapper_count[b - 1];
            w->wrapper_count[b - 1] = c;
        }
    }
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
        if (st == INFVSR_OK) find_wrappers(w);
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

static const struct infvsr__weights_entry * lookup(const struct infvsr_weights * w, const char * key) {
    struct infvsr__key_ref probe = { key, 0 };
    const struct infvsr__key_ref * r = bsearch(&probe, w->by_key, w->n_entries, sizeof *w->by_key, key_ref_cmp);
    return r ? &w->entries[r->index] : NULL;
}

/* The entry find() returns for `key` and the wrapper it sat under ("" for the key itself). */
static const struct infvsr__weights_entry * resolve(const struct infvsr_weights * w, const char * key, const char ** wrapper) {
    if (!w->by_key) return NULL;
    const struct infvsr__weights_entry * e = lookup(w, key);
    *wrapper = "";
    for (size_t i = 0; !e && i < w->n_wrappers; i++) {
        char full[4096];
        if (snprintf(full, sizeof full, "%s%s", w->wrappers[i], key) >= (int)sizeof full) continue;
        if ((e = lookup(w, full))) *wrapper = w->wrappers[i];
    }
    return e;
}

const struct infvsr_tensor * infvsr_weights_find(const struct infvsr_weights * w, const char * key) {
    const char *                         wrapper;
    const struct infvsr__weights_entry * e = resolve(w, key, &wrapper);
    return e ? &e->t : NULL;
}

const char * infvsr_weights_wrapper_of(const struct infvsr_weights * w, const char * key) {
    const char * wrapper;
    return resolve(w, key, &wrapper) ? wrapper : NULL;
}

const char * infvsr_weights_format_name(const struct infvsr_weights * w, char * buf, size_t len) {
    switch (w->format) {
        case INFVSR_WEIGHTS_SAFETENSORS: snprintf(buf, len, "safetensors"); break;
        case INFVSR_WEIGHTS_TORCH_ZIP: snprintf(buf, len, "torch zip, pickle protocol %d", w->pickle_protocol); break;
        case INFVSR_WEIGHTS_TORCH_LEGACY: snprintf(buf, len, "legacy torch.save, pickle protocol %d", w->pickle_protocol); break;
    }
    return buf;
}

/* Edit distance in half steps: a substitution that only changes letter case costs 1, any
 * other edit 2 (so "lora_a" is nearer to "lora_A" than "lora_B" is). Both strings are cut to
 * 160 bytes (keys are far shorter). */
static size_t edit_distance(const char * a, const char * b) {
    enum { L = 160 };
    size_t na = strnlen(a, L), nb = strnlen(b, L), row[L + 1];
    for (size_t j = 0; j <= nb; j++) row[j] = 2 * j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0]      = 2 * i;
        for (size_t j = 1; j <= nb; j++) {
            char   x = a[i - 1], y = b[j - 1];
            size_t sub = x == y ? 0 : ((x | 0x20) == (y | 0x20) && (x | 0x20) >= 'a' && (x | 0x20) <= 'z') ? 1 : 2;
            size_t up = row[j], best = diag + sub;
            if (up + 2 < best) best = up + 2;
            if (row[j - 1] + 2 < best) best = row[j - 1] + 2;
            diag   = up;
            row[j] = best;
        }
    }
    return row[nb];
}

const char * infvsr_weights_hint(const struct infvsr_weights * w, const char * key, char * buf, size_t len) {
    /* top-level entries: the first key segment, with its tensor count, in file order */
    enum { MAX_TOP = 10 };
    const char * top[MAX_TOP];
    size_t       top_len[MAX_TOP], top_n[MAX_TOP], n_top = 0, more = 0;
    for (size_t i = 0; i < w->n_entries; i++) {
        const char * k   = w->entries[i].key;
        const char * dot = strchr(k, '.');
        size_t       l   = dot ? (size_t)(dot - k) : strlen(k);
        size_t       j   = 0;
        while (j < n_top && !(top_len[j] == l && memcmp(top[j], k, l) == 0)) j++;
        if (j == n_top) {
            if (n_top == MAX_TOP) {
                more++;
                continue;
            }
            top[j] = k, top_len[j] = l, top_n[j] = 0, n_top++;
        }
        top_n[j]++;
    }
    size_t used = (size_t)snprintf(buf, len, "top-level entries: ");
    for (size_t j = 0; j < n_top && used < len; j++) {
        used += (size_t)snprintf(buf + used, len - used, "%s%.*s (%zu tensor%s)", j ? ", " : "", (int)(top_len[j] > 60 ? 60 : top_len[j]),
                                 top[j], top_n[j], top_n[j] == 1 ? "" : "s");
    }
    if (more && used < len) used += (size_t)snprintf(buf + used, len - used, ", ... (%zu more tensors)", more);
    if (w->extras[0] && used < len) used += (size_t)snprintf(buf + used, len - used, "%s%s", n_top ? ", " : "", w->extras);
    if (!n_top && !w->extras[0] && used < len) used += (size_t)snprintf(buf + used, len - used, "none");
    /* nearest keys: compared without their wrapper prefixes */
    size_t best_d[3] = { SIZE_MAX, SIZE_MAX, SIZE_MAX }, best_i[3] = { 0, 0, 0 };
    for (size_t i = 0; i < w->n_entries; i++) {
        const char * k = w->entries[i].key;
        size_t       d = edit_distance(key, k + wrapper_len(k));
        for (int s = 0; s < 3; s++) {
            if (d < best_d[s]) {
                for (int t = 2; t > s; t--) best_d[t] = best_d[t - 1], best_i[t] = best_i[t - 1];
                best_d[s] = d, best_i[s] = i;
                break;
            }
        }
    }
    for (int s = 0; s < 3 && best_d[s] != SIZE_MAX && used < len; s++) {
        used += (size_t)snprintf(buf + used, len - used, "%s'%s'", s ? ", " : "; nearest keys: ", w->entries[best_i[s]].key);
    }
    return buf;
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
    if (!t) {
        char hint[768];
        return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s: missing tensor '%s' (%s)", w->path, full,
                              infvsr_weights_hint(w, full, hint, sizeof hint));
    }
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
