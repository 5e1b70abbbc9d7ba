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

static json_t * build_header(const struct infvsr_tensor * tensors, size_t n, struct infvsr_err * err) {
    json_t * root = json_object();
    if (!root) return NULL;
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct infvsr_tensor * t = &tensors[i];
        const char * dname = st_dtype_name(t->dtype);
        if (!dname || t->ndim < 0 || t->ndim > INFVSR_MAX_DIMS || t->mem != INFVSR_MEM_HOST) {
            infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "safetensors write: tensor '%s': bad dtype, rank or memory", t->name);
            json_decref(root);
            return NULL;
        }
        if (json_object_get(root, t->name)) {
            infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "safetensors write: duplicate tensor name '%s'", t->name);
            json_decref(root);
            return NULL;
        }
        json_t * shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t nbytes = infvsr_tensor_nbytes(t);
        json_t * info = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dname, "shape", shape, "data_offsets",
                                  (json_int_t)off, (json_int_t)(off + nbytes));
        if (!info || json_object_set_new(root, t->name, info) != 0) {
            infvsr_err_set(err, INFVSR_ERR_NOMEM, "safetensors write: out of memory");
            json_decref(root);
            return NULL;
        }
        off += nbytes;
    }
    return root;
}

enum infvsr_status infvsr_safetensors_write(const char * path, const struct infvsr_tensor * tensors,
                                            size_t n, struct infvsr_err * err) {
    json_t * root = build_header(tensors, n, err);
    if (!root) return err && err->status != INFVSR_OK ? err->status : INFVSR_ERR_NOMEM;
    char * hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!hdr) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "safetensors write: out of memory");
    size_t hlen = strlen(hdr);
    size_t pad  = (8 - hlen % 8) % 8;

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(hdr);
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "safetensors write: path too long");
    }
    FILE * f = fopen(tmp, "wb");
    if (!f) {
        free(hdr);
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    uint8_t len8[8];
    uint64_t total = hlen + pad;
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(total >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hlen, f) == hlen &&
              fwrite("        ", 1, pad, f) == pad;
    free(hdr);
    for (size_t i = 0; ok && i < n; i++) {
        size_t nb = infvsr_tensor_nbytes(&tensors[i]);
        ok = nb == 0 || fwrite(tensors[i].data, 1, nb, f) == nb;
    }
    if (fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return INFVSR_OK;
}
