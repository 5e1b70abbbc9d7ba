/* torch.save zip reader: <prefix>/data.pkl (run by the restricted pickle VM) names tensor
 * records whose storages are the entries <prefix>/data/<key> (MODEL-SPEC §9).
 *
 * The unpickled object is walked: dicts (dict or OrderedDict, nested) are flattened with
 * '.' between keys; tensors become index entries; every other value (ints, strings,
 * lists, None, ...) is skipped, because training checkpoints carry such extras next to
 * the weights ({"model": sd, "epoch": 3, ...}). */
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "io/weights_impl.h"
#include "io/zip.h"

#define KEY_MAX 4096

struct walker {
    struct infvsr_weights * w;
    const struct infvsr_zip * zip;
    const char *            prefix;     /* top-level folder of the archive */
    size_t                  prefix_len;
    bool                    big_endian;
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
    enum infvsr_dtype            dt  = s->u.storage.dtype;
    size_t                       esize = infvsr_dtype_size(dt);
    int                          ndim  = rec->u.tensor.ndim;
    const int64_t *              size  = rec->u.tensor.size, * stride = rec->u.tensor.stride;

    char name[KEY_MAX];
    int  nl = snprintf(name, sizeof name, "%.*s/data/%.*s", (int)wk->prefix_len, wk->prefix,
                       (int)(s->u.storage.key_len > 1024 ? 1024 : s->u.storage.key_len), s->u.storage.key);
    if (nl < 0 || (size_t)nl >= sizeof name || s->u.storage.key_len > 1024 || memchr(s->u.storage.key, '\0', s->u.storage.key_len)) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': bad storage key", key);
    }
    const struct infvsr_zip_entry * e = infvsr_zip_find(wk->zip, name);
    if (!e) return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "tensor '%s': storage entry '%s' is missing from the archive", key, name);
    int64_t snumel = s->u.storage.numel;
    if ((uint64_t)snumel > UINT64_MAX / esize || (uint64_t)snumel * esize != e->size) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT,
                              "tensor '%s': storage '%s' declares %lld %s elements but the entry holds %llu bytes",
                              key, name, (long long)snumel, infvsr_dtype_name(dt), (unsigned long long)e->size);
    }
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
     * writers) misaligned storages are gathered once into owned memory. */
    const uint8_t * src   = wk->w->file.data + e->data_off + (size_t)offset * esize;
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

/* Flattens dict `d` whose keys are appended to wk->key[0, klen). */
static enum infvsr_status walk_dict(struct walker * wk, const struct infvsr_pk_obj * d, size_t klen, int depth) {
    if (depth > INFVSR_PK_MAX_DEPTH) {
        return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "dicts nested deeper than %d levels (or a cycle) under '%.*s'",
                              INFVSR_PK_MAX_DEPTH, (int)(klen > 200 ? 200 : klen), wk->key);
    }
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const struct infvsr_pk_obj * k = d->u.seq.items[i], * v = d->u.seq.items[i + 1];
        if (v->type != INFVSR_PK_DICT && v->type != INFVSR_PK_TENSOR) continue; /* extras: skip */
        char   kbuf[32];
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
        size_t sep = klen ? 1 : 0;
        if (klen + sep + kl + 1 > KEY_MAX) {
            return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "key path longer than %d bytes under '%.*s'", KEY_MAX,
                                  (int)(klen > 200 ? 200 : klen), wk->key);
        }
        if (memchr(ks, '\0', kl)) return infvsr_err_set(wk->err, INFVSR_ERR_FORMAT, "key contains a NUL byte");
        if (sep) wk->key[klen] = '.';
        memcpy(wk->key + klen + sep, ks, kl);
        wk->key[klen + sep + kl] = '\0';
        enum infvsr_status st = v->type == INFVSR_PK_DICT ? walk_dict(wk, v, klen + sep + kl, depth + 1)
                                                          : add_tensor(wk, v);
        if (st) return st;
        wk->key[klen] = '\0';
    }
    return INFVSR_OK;
}

static enum infvsr_status find_data_pkl(const struct infvsr_zip * z, const struct infvsr_zip_entry ** out,
                                        struct infvsr_err * err) {
    *out = NULL;
    for (size_t i = 0; i < z->n_entries; i++) {
        const char * n     = z->entries[i].name;
        const char * slash = strchr(n, '/');
        if (!slash || slash == n || strcmp(slash, "/data.pkl") != 0) continue;
        if (*out) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "several data.pkl records ('%s' and '%s')", (*out)->name, n);
        *out = &z->entries[i];
    }
    if (!*out) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "torch zip: no <prefix>/data.pkl record (not a torch.save archive?)");
    return INFVSR_OK;
}

enum infvsr_status infvsr__torch_zip_index(struct infvsr_weights * w, struct infvsr_err * err) {
    struct infvsr_zip  zip;
    enum infvsr_status st = infvsr_zip_open(&zip, w->file.data, w->file.size, err);
    if (st) return st;
    struct walker * wk = calloc(1, sizeof *wk);
    struct infvsr_pickle vm;
    memset(&vm, 0, sizeof vm);
    if (!wk) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    const struct infvsr_zip_entry * pkl;
    if ((st = find_data_pkl(&zip, &pkl, err))) goto done;
    wk->w          = w;
    wk->zip        = &zip;
    wk->prefix     = pkl->name;
    wk->prefix_len = (size_t)(strchr(pkl->name, '/') - pkl->name);
    wk->err        = err;

    char bo_name[KEY_MAX];
    snprintf(bo_name, sizeof bo_name, "%.*s/byteorder", (int)wk->prefix_len, wk->prefix);
    const struct infvsr_zip_entry * bo = infvsr_zip_find(&zip, bo_name);
    if (bo) {
        const char * b = (const char *)w->file.data + bo->data_off;
        if (bo->size == 3 && memcmp(b, "big", 3) == 0) {
            wk->big_endian = true;
        } else if (!(bo->size == 6 && memcmp(b, "little", 6) == 0)) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "'%s' is neither \"little\" nor \"big\"", bo_name);
            goto done;
        }
    }
    st = infvsr_pickle_run(&vm, w->file.data + pkl->data_off, (size_t)pkl->size, err);
    if (st) {
        infvsr_err_prefix(err, "%s", pkl->name);
        goto done;
    }
    if (vm.result->type != INFVSR_PK_DICT) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: top-level object is a %s, expected a dict of tensors", pkl->name,
                            vm.result->type == INFVSR_PK_TENSOR ? "tensor" : "non-dict value");
        goto done;
    }
    st = walk_dict(wk, vm.result, 0, 1);
done:
    infvsr_pickle_free(&vm);
    free(wk);
    infvsr_zip_close(&zip);
    return st;
}
