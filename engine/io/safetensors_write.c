/* infvsr_safetensors_write: the inverse of safetensors.c, for the verification CLI and tests.
 *
 * The header is padded with spaces so the data buffer starts 8-byte aligned (as the
 * reference writer does), which lets the reader use every tensor in place. The file is
 * written to "<path>.tmp" and renamed, so a crash never leaves a half-written file
 * under the real name. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/weights.h"

static const char * st_dtype_name(enum infvsr_dtype t) {
    switch (t) {
        case INFVSR_TYPE_F32:  return "F32";
        case INFVSR_TYPE_F16:  return "F16";
        case INFVSR_TYPE_BF16: return "BF16";
        case INFVSR_TYPE_F64:  return "F64";
        case INFVSR_TYPE_I64:  return "I64";
        case INFVSR_TYPE_I32:  return "I32";
        case INFVSR_TYPE_I16:  return "I16";
        case INFVSR_TYPE_I8:   return "I8";
        case INFVSR_TYPE_U8:   return "U8";
        case INFVSR_TYPE_BOOL: return "BOOL";
        case INFVSR_TYPE_COUNT: break;
    }
    return NULL;
}

/* Data is laid out in order of decreasing element size (as the reference writer does), so
 * with an 8-byte aligned buffer start every tensor is aligned to its element size. */
static void data_order(const struct infvsr_tensor * tensors, size_t n, size_t * order) {
    size_t k = 0;
    for (size_t esize = 8; esize >= 1; esize /= 2) {
        for (size_t i = 0; i < n; i++) {
            if (infvsr_dtype_size(tensors[i].dtype) == esize) order[k++] = i;
        }
    }
    for (size_t i = 0; i < n; i++) { /* unknown dtypes last: build_header rejects them */
        size_t es = infvsr_dtype_size(tensors[i].dtype);
        if (es != 1 && es != 2 && es != 4 && es != 8) order[k++] = i;
    }
}

static enum infvsr_status build_header(const struct infvsr_tensor * tensors, const char * const * names, size_t n,
                                       const size_t * order, const char * const * meta, size_t n_meta, json_t ** out,
                                       struct infvsr_err * err) {
    json_t * root = json_object();
    *out = NULL;
    if (!root) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "safetensors write: out of memory");
    if (n_meta) {
        json_t * m = json_object();
        for (size_t k = 0; m && k < n_meta; k++) {
            if (json_object_set_new(m, meta[2 * k], json_string(meta[2 * k + 1])) != 0) {
                json_decref(m);
                m = NULL;
            }
        }
        if (!m || json_object_set_new(root, "__metadata__", m) != 0) {
            json_decref(root);
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "safetensors write: bad metadata (strings must be UTF-8)");
        }
    }
    uint64_t off = 0;
    for (size_t j = 0; j < n; j++) {
        const struct infvsr_tensor * t = &tensors[order[j]];
        const char * name  = names && names[order[j]] ? names[order[j]] : t->name;
        const char * dname = st_dtype_name(t->dtype);
        if (!dname || t->ndim < 0 || t->ndim > INFVSR_MAX_DIMS || t->mem != INFVSR_MEM_HOST) {
            json_decref(root);
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "safetensors write: tensor '%s': bad dtype, rank or memory", name);
        }
        if (json_object_get(root, name) || strcmp(name, "__metadata__") == 0) {
            json_decref(root);
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "safetensors write: duplicate or reserved tensor name '%s'", name);
        }
        json_t * shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t nbytes = infvsr_tensor_nbytes(t);
        json_t * info = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dname, "shape", shape, "data_offsets",
                                  (json_int_t)off, (json_int_t)(off + nbytes));
        if (!info || json_object_set_new(root, name, info) != 0) {
            json_decref(root);
            return infvsr_err_set(err, INFVSR_ERR_NOMEM, "safetensors write: out of memory");
        }
        off += nbytes;
    }
    *out = root;
    return INFVSR_OK;
}

enum infvsr_status infvsr_safetensors_write(const char * path, const struct infvsr_tensor * tensors,
                                            size_t n, struct infvsr_err * err) {
    return infvsr_safetensors_write_ex(path, tensors, NULL, n, NULL, 0, err);
}

enum infvsr_status infvsr_safetensors_write_ex(const char * path, const struct infvsr_tensor * tensors,
                                               const char * const * names, size_t n, const char * const * meta,
                                               size_t n_meta, struct infvsr_err * err) {
    size_t * order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "safetensors write: out of memory");
    data_order(tensors, n, order);
    json_t *           root;
    enum infvsr_status st = build_header(tensors, names, n, order, meta, n_meta, &root, err);
    if (st != INFVSR_OK) {
        free(order);
        return st;
    }
    char * hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!hdr) {
        free(order);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "safetensors write: out of memory");
    }
    size_t hlen = strlen(hdr);
    size_t pad  = (8 - hlen % 8) % 8;

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(hdr);
        free(order);
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "safetensors write: path too long");
    }
    FILE * f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(hdr);
        free(order);
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: cannot create: %s", tmp, strerror(e));
    }
    uint8_t len8[8];
    uint64_t total = hlen + pad;
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(total >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hlen, f) == hlen &&
              fwrite("        ", 1, pad, f) == pad;
    free(hdr);
    for (size_t j = 0; ok && j < n; j++) {
        const struct infvsr_tensor * t = &tensors[order[j]];
        size_t nb = infvsr_tensor_nbytes(t);
        ok = nb == 0 || fwrite(t->data, 1, nb, f) == nb;
    }
    free(order);
    if (fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return INFVSR_OK;
}
