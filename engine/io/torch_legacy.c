/* Legacy (pre-1.6, non-zip) torch.save reader. The file is five pickles back to back, then
 * raw storages (torch/serialization.py, _legacy_save):
 *
 *   1. the magic number 0x1950a86a20f9469cfc6c (a LONG1; every pickle is written with the
 *      same protocol, 2 by default)
 *   2. the protocol version 1001
 *   3. sys_info: {'protocol_version': 1001, 'little_endian': bool, 'type_sizes': {...}}
 *   4. the object; storages are persistent ids ('storage', StorageClass, key, location,
 *      numel, view_metadata), view_metadata None or (view_key, offset, view_size)
 *   5. the list of storage keys, in the order their bytes follow
 *   then per key: numel as a little-endian int64, and numel * element_size bytes
 *
 * The element size of each storage comes from its class in pickle 4. Storages are not
 * aligned in the file, so every tensor is copied once into owned memory (by the walker). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/torch_walk.h"

#define LEGACY_PROTOCOL_VERSION 1001

struct blob_ref {
    const char *    key;
    size_t          key_len;
    size_t          esize;
    const uint8_t * data;   /* NULL until the storage's bytes were found */
    uint64_t        nbytes;
};

struct legacy_ctx {
    struct blob_ref * refs; /* sorted by key, unique */
    size_t            n;
    char              unsized[112]; /* a listed storage no tensor names: the ones after it are lost */
};

static int ref_cmp(const void * a, const void * b) {
    const struct blob_ref * x = a, * y = b;
    size_t m = x->key_len < y->key_len ? x->key_len : y->key_len;
    int    c = memcmp(x->key, y->key, m);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static struct blob_ref * find_ref(const struct legacy_ctx * l, const char * key, size_t len) {
    struct blob_ref probe = { key, len, 0, NULL, 0 };
    return l->n ? bsearch(&probe, l->refs, l->n, sizeof *l->refs, ref_cmp) : NULL;
}

static enum infvsr_status legacy_storage(void * ctx, const struct infvsr_pk_obj * s, struct infvsr__storage_blob * out,
                                         const char * key, struct infvsr_err * err) {
    const struct legacy_ctx * l = ctx;
    snprintf(out->name, sizeof out->name, "legacy:%.*s", (int)(s->u.storage.key_len > 100 ? 100 : s->u.storage.key_len),
             s->u.storage.key);
    const struct blob_ref * r = find_ref(l, s->u.storage.key, s->u.storage.key_len);
    if (!r || !r->data) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "tensor '%s': storage '%s' is not in the file's storage list%s%s%s", key, out->name,
                              l->unsized[0] ? " (storage '" : "", l->unsized, l->unsized[0] ? "', listed before it, is named by no "
                              "tensor: its element size is unknown, so the storages after it cannot be located)" : "");
    }
    out->data   = r->data;
    out->nbytes = r->nbytes;
    return INFVSR_OK;
}

/* One of the small leading pickles; *pos moves past it. */
static enum infvsr_status run_at(struct infvsr_weights * w, struct infvsr_pickle * vm, size_t * pos, const char * what,
                                 struct infvsr_err * err) {
    enum infvsr_status st = infvsr_pickle_run_at(vm, w->file.data + *pos, w->file.size - *pos, *pos, err);
    if (st) {
        infvsr_err_prefix(err, "legacy torch.save: %s pickle", what);
        return st;
    }
    *pos += vm->pos;
    return INFVSR_OK;
}

static const struct infvsr_pk_obj * dict_get(const struct infvsr_pk_obj * d, const char * key) {
    if (d->type != INFVSR_PK_DICT) return NULL;
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const struct infvsr_pk_obj * k = d->u.seq.items[i];
        if (k->type == INFVSR_PK_STR && k->u.str.len == strlen(key) && memcmp(k->u.str.s, key, k->u.str.len) == 0) {
            return d->u.seq.items[i + 1];
        }
    }
    return NULL;
}

enum infvsr_status infvsr__torch_legacy_index(struct infvsr_weights * w, struct infvsr_err * err) {
    struct infvsr_pickle head, obj, keys;
    memset(&head, 0, sizeof head);
    memset(&obj, 0, sizeof obj);
    memset(&keys, 0, sizeof keys);
    struct legacy_ctx l;
    memset(&l, 0, sizeof l);
    size_t            pos = 0;
    bool              big_endian = false;
    enum infvsr_status st;

    /* 1-3: magic (its 14 bytes were checked by the sniffer; a 10-byte LONG1 does not fit
     * the VM's 64-bit ints), protocol version, sys_info */
    pos = infvsr__legacy_magic_end(w->file.data, w->file.size);
    if (!pos) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: no magic number pickle");
        goto done;
    }
    if ((st = run_at(w, &head, &pos, "protocol version", err))) goto done;
    if (head.result->type != INFVSR_PK_INT || head.result->u.i != LEGACY_PROTOCOL_VERSION) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: protocol version is not %d", LEGACY_PROTOCOL_VERSION);
        goto done;
    }
    infvsr_pickle_free(&head);
    if ((st = run_at(w, &head, &pos, "sys_info", err))) goto done;
    const struct infvsr_pk_obj * le = dict_get(head.result, "little_endian");
    if (le && le->type == INFVSR_PK_BOOL) big_endian = !le->u.b;
    infvsr_pickle_free(&head);

    /* 4: the object; 5: the storage keys */
    if ((st = run_at(w, &obj, &pos, "object", err))) goto done;
    w->pickle_protocol = obj.protocol;
    if ((st = run_at(w, &keys, &pos, "storage keys", err))) goto done;
    if (keys.result->type != INFVSR_PK_LIST) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: the storage key list is not a list");
        goto done;
    }

    /* element size per storage key, from the storage objects of pickle 4 */
    size_t n_storages = 0;
    for (size_t i = 0; i < obj.n_all; i++) n_storages += obj.all[i]->type == INFVSR_PK_STORAGE;
    l.refs = calloc(n_storages ? n_storages : 1, sizeof *l.refs);
    if (!l.refs) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < obj.n_all; i++) {
        const struct infvsr_pk_obj * s = obj.all[i];
        if (s->type != INFVSR_PK_STORAGE) continue;
        l.refs[l.n++] = (struct blob_ref){ s->u.storage.key, s->u.storage.key_len,
                                           s->u.storage.untyped ? 1 : infvsr_dtype_size(s->u.storage.dtype), NULL, 0 };
    }
    qsort(l.refs, l.n, sizeof *l.refs, ref_cmp);
    size_t u = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (u && ref_cmp(&l.refs[u - 1], &l.refs[i]) == 0) {
            if (l.refs[u - 1].esize != l.refs[i].esize) {
                st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: storage '%.*s' is named with two element sizes",
                                    (int)(l.refs[i].key_len > 100 ? 100 : l.refs[i].key_len), l.refs[i].key);
                goto done;
            }
            continue;
        }
        l.refs[u++] = l.refs[i];
    }
    l.n = u;

    /* the raw storages, in list order */
    const struct infvsr_pk_obj * list = keys.result;
    for (size_t i = 0; i < list->u.seq.n; i++) {
        const struct infvsr_pk_obj * k = list->u.seq.items[i];
        if (k->type != INFVSR_PK_STR) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: storage key %zu is not a str", i);
            goto done;
        }
        struct blob_ref * r = find_ref(&l, k->u.str.s, k->u.str.len);
        int               kl = (int)(k->u.str.len > 100 ? 100 : k->u.str.len);
        if (!r) { /* e.g. the storage of an entry whose record failed: only tensors after it suffer */
            snprintf(l.unsized, sizeof l.unsized, "%.*s", kl, k->u.str.s);
            break;
        }
        if (r->data) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: storage '%.*s' is listed twice", kl, k->u.str.s);
            goto done;
        }
        if (w->file.size - pos < 8) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: file ends at offset %zu, before storage '%.*s'", pos, kl, k->u.str.s);
            goto done;
        }
        uint64_t numel = infvsr__rd_u64(w->file.data + pos);
        if (big_endian) numel = __builtin_bswap64(numel);
        pos += 8;
        if (numel > (w->file.size - pos) / r->esize) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "legacy torch.save: storage '%.*s' of %llu elements of %zu bytes runs past the "
                                "end of the file (offset %zu)", kl, k->u.str.s, (unsigned long long)numel, r->esize, pos);
            goto done;
        }
        r->data   = w->file.data + pos;
        r->nbytes = numel * r->esize;
        pos += (size_t)r->nbytes;
    }
    st = infvsr__torch_walk(w, obj.result, big_endian, legacy_storage, &l, err);
    if (st) infvsr_err_prefix(err, "legacy torch.save");
done:
    free(l.refs);
    infvsr_pickle_free(&head);
    infvsr_pickle_free(&obj);
    infvsr_pickle_free(&keys);
    return st;
}
