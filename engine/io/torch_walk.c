/* Walk of an unpickled torch.save object into the weights index (see torch_walk.h). */
#include "io/torch_walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 4096

struct walker {
    struct infvsr_weights * w;
    bool                    big_endian;
    infvsr__storage_fn      find_storage;
    void *                  ctx;
    char                    key[KEY_MAX];
    struct infvsr_err *     err;
};

static void byteswap(uint8_t * p, size_t n, size_t esize) {
    for (size_t i = 0; i < n; i++, p += esize) {
        for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a]      = p[b];
            p[b]      = t;
        }
    }
}

/* Copies a strided view element by element into contiguous memory (rank <= 5). */
static void gather(uint8_t * dst, const uint8_t * base, int ndim, const int64_t * size, const int64_t * stride,
                   int64_t numel, size_t esize) {
    int64_t idx[INFVSR_MAX_DIMS] = { 0 };
    int64_t off = 0;
    for (int64_t e = 0; e < numel; e++) {
        memcpy(dst + (size_t)e * esize, base + (size_t)off * esize, esize);
        for (int d = ndim - 1; d >= 0; d--) { /* odometer increment, innermost first */
            if (++idx[d] < size[d]) {
                off += stride[d];
                break;
            }
            off -= stride[d] * (idx[d] - 1);
            idx[d] = 0;
        }
    }
}

static enum infvsr_status add_tensor(struct walker * wk, const struct infvsr_pk_obj * rec) {
    const char *                 key = wk->key;
    const struct infvsr_pk_obj * s   = rec->u.tensor.storage;
    enum infvsr_dtype            dt  = rec->u.tensor.dtype;
    size_t                       esize = infvsr_dtype_size(dt);
    size_t                       s_esize = s->u.storage.untyped ? 1 : infvsr_dtype_size(s->u.storage.dtype);
    int                          ndim  = rec->u.tensor.ndim;
    const int64_t *              size  = rec->u.tensor.size, * stride = rec->u.tensor.stride;

    if (s->u.storage.key_len > 1024 || memchr(s->u.storage.key, '\0', s->u.storage.key_len)) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': bad storage key", key);
    }
    struct infvsr__storage_blob blob;
    memset(&blob, 0, sizeof blob);
    enum infvsr_status st = wk->find_storage(wk->ctx, s, &blob, key, wk->err);
    if (st) return st;
    const char * name  = blob.name;
    int64_t      rootn = s->u.storage.root_numel;
    if ((uint64_t)rootn > UINT64_MAX / s_esize || (uint64_t)rootn * s_esize != blob.nbytes) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT,
                              "tensor '%s': storage '%s' declares %lld %s elements but holds %llu bytes", key, name,
                              (long long)rootn, s->u.storage.untyped ? "byte" : infvsr_dtype_name(s->u.storage.dtype),
                              (unsigned long long)blob.nbytes);
    }
    /* The storage seen by the tensor: a legacy view starts `base` elements in; an untyped
     * storage (bytes) is read as elements of the tensor's dtype. */
    uint64_t view_bytes = (uint64_t)s->u.storage.numel * s_esize;
    const uint8_t * sdata = blob.data + (uint64_t)s->u.storage.base * s_esize;
    if (view_bytes % esize) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': storage '%s' of %llu bytes is not a whole number of %s elements",
                              key, name, (unsigned long long)view_bytes, infvsr_dtype_name(dt));
    }
    int64_t snumel = (int64_t)(view_bytes / esize);
    int64_t numel;
    if (!infvsr_shape_numel(ndim, size, &numel) || (uint64_t)numel > UINT64_MAX / esize) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': element count overflows", key);
    }
    int64_t offset = rec->u.tensor.offset;
    if (numel == 0) { /* no bytes: any aligned pointer into the mapping will do */
        if (offset > snumel) {
            return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': storage offset %lld beyond storage '%s' (%lld elements)",
                                  key, (long long)offset, name, (long long)snumel);
        }
        return infvsr__weights_add(wk->w, key, strlen(key), dt, ndim, size, (void *)wk->w->file.data, false, wk->err);
    }
    /* Highest element index the view touches, overflow-checked; with numel > 0 every size is
     * >= 1 and the product of sizes fits int64, so `expect` cannot overflow. */
    int64_t last       = offset;
    bool    contiguous = true;
    int64_t expect     = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (stride[d] != 0 && size[d] - 1 > (INT64_MAX - last) / stride[d]) {
            return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': strides overflow", key);
        }
        last += (size[d] - 1) * stride[d];
        if (size[d] != 1 && stride[d] != expect) contiguous = false; /* torch ignores strides of size-1 dims */
        expect *= size[d];
    }
    if (last >= snumel) {
        char sbuf[96];
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT,
                              "tensor '%s': view %s at storage offset %lld needs element %lld but storage '%s' has %lld",
                              key, infvsr_shape_str(ndim, size, sbuf, sizeof sbuf), (long long)offset,
                              (long long)last, name, (long long)snumel);
    }
    /* Views into the mapping need no copy; strided views, big-endian data and (from other
     * writers, and always in the legacy format) misaligned storages are gathered once into
     * owned memory. */
    const uint8_t * src   = sdata + (size_t)offset * esize;
    bool            owned = !contiguous || (wk->big_endian && esize > 1) || (uintptr_t)src % esize != 0;
    void *          data  = (void *)src;
    if (owned) {
        size_t nbytes = (size_t)numel * esize;
        data          = aligned_alloc(INFVSR_TENSOR_ALIGN, (nbytes + INFVSR_TENSOR_ALIGN - 1) / INFVSR_TENSOR_ALIGN * INFVSR_TENSOR_ALIGN);
        if (!data) return infvsr_err_set(wk->err, INFVSR_ERR_NOMEM, "out of memory copying tensor '%s'", key);
        gather(data, src, ndim, size, stride, numel, esize);
        if (wk->big_endian) byteswap(data, (size_t)numel, esize);
    }
    return infvsr__weights_add(wk->w, key, strlen(key), dt, ndim, size, data, owned, wk->err);
}

/* A dict, or a placeholder object that received SETITEMs (an OrderedDict subclass). */
static bool is_mapping(const struct infvsr_pk_obj * v) {
    return v->type == INFVSR_PK_DICT || (v->type == INFVSR_PK_OBJECT && v->obj_dict && !v->obj_list);
}

/* Top-level entries that are not tensors or dicts of them, named in "missing key" hints. */
static void note_extra(struct walker * wk, const char * ks, size_t kl, const struct infvsr_pk_obj * v) {
    char   d[160];
    size_t used = strlen(wk->w->extras), room = sizeof wk->w->extras - used;
    if (room < 8) return;
    snprintf(wk->w->extras + used, room, "%s%.*s (%s)", used ? ", " : "", (int)(kl > 60 ? 60 : kl), ks,
             v ? infvsr_pickle_describe(v, d, sizeof d) : "no tensors");
}

/* Flattens mapping `d` whose keys are appended to wk->key[0, klen). */
static enum infvsr_status walk_dict(struct walker * wk, const struct infvsr_pk_obj * d, size_t klen, int depth) {
    if (depth > INFVSR_PK_MAX_DEPTH) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "dicts nested deeper than %d levels (or a cycle) under '%.*s'",
                              INFVSR_PK_MAX_DEPTH, (int)(klen > 200 ? 200 : klen), wk->key);
    }
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const struct infvsr_pk_obj * k = d->u.seq.items[i], * v = d->u.seq.items[i + 1];
        char         kbuf[32];
        const char * ks;
        size_t       kl;
        if (k->type == INFVSR_PK_STR) {
            ks = k->u.str.s;
            kl = k->u.str.len;
        } else if (k->type == INFVSR_PK_INT) { /* e.g. optimizer state {0: {...}} */
            kl = (size_t)snprintf(kbuf, sizeof kbuf, "%lld", (long long)k->u.i);
            ks = kbuf;
        } else {
            continue;
        }
        bool tensorish = v->type == INFVSR_PK_TENSOR || v->type == INFVSR_PK_ERROR || (v->type == INFVSR_PK_OBJECT && v->has_tensor);
        if (!is_mapping(v) && !tensorish) { /* extras: skipped */
            if (depth == 1) note_extra(wk, ks, kl, v);
            continue;
        }
        size_t sep = klen ? 1 : 0;
        if (klen + sep + kl + 1 > KEY_MAX) {
            return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "key path longer than %d bytes under '%.*s'", KEY_MAX,
                                  (int)(klen > 200 ? 200 : klen), wk->key);
        }
        if (memchr(ks, '\0', kl)) return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "key contains a NUL byte");
        if (sep) wk->key[klen] = '.';
        memcpy(wk->key + klen + sep, ks, kl);
        wk->key[klen + sep + kl] = '\0';
        enum infvsr_status st;
        char               desc[200];
        if (v->type == INFVSR_PK_ERROR) {
            st = infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': pickle: %s", wk->key, v->u.error);
        } else if (v->type == INFVSR_PK_TENSOR) {
            st = add_tensor(wk, v);
        } else if (is_mapping(v)) {
            size_t before = wk->w->n_entries;
            st = walk_dict(wk, v, klen + sep + kl, depth + 1);
            if (!st && depth == 1 && wk->w->n_entries == before) note_extra(wk, ks, kl, NULL); /* a dict of no tensors */
        } else { /* a placeholder object built from a storage/tensor or by torch's own rebuild helpers */
            st = infvsr_err_set(wk->err, INFVSR_ERR_FORMAT,
                                "tensor '%s': pickle: rebuilt through %s, which is not supported (opcode %s at offset %zu); "
                                "only torch._utils._rebuild_tensor/_v2/_v3 and _rebuild_parameter(_with_state) are interpreted",
                                wk->key, infvsr_pickle_describe(v, desc, sizeof desc), infvsr_pickle_op_name(v->op), v->at);
        }
        if (st) return st;
        wk->key[klen] = '\0';
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr__torch_walk(struct infvsr_weights * w, const struct infvsr_pk_obj * root, bool big_endian,
                                      infvsr__storage_fn find_storage, void * ctx, struct infvsr_err * err) {
    if (!is_mapping(root)) {
        char d[200];
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "top-level object is %s, expected a dict of tensors",
                              root->type == INFVSR_PK_TENSOR ? "a tensor" : infvsr_pickle_describe(root, d, sizeof d));
    }
    struct walker * wk = calloc(1, sizeof *wk);
    if (!wk) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    wk->w            = w;
    wk->big_endian   = big_endian;
    wk->find_storage = find_storage;
    wk->ctx          = ctx;
    wk->err          = err;
    enum infvsr_status st = walk_dict(wk, root, 0, 1);
    free(wk);
    return st;
}
