/* Weight import (weight_set.h): register, then one commit per module. */
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "core/weight_set.h"

/* Each weight starts on a 256-byte boundary: what cuBLASLt and vector loads like best. */
#define WEIGHT_ALIGN 256

void infvsr_weight_set_init(struct infvsr_weight_set * ws) { memset(ws, 0, sizeof *ws); }

enum infvsr_status infvsr_weight_set_add(struct infvsr_weight_set * ws, struct infvsr_tensor * t, unsigned flags,
                                         struct infvsr_err * err) {
    if (!t || ws->committed) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "weight import: %s", t ? "set already committed" : "NULL");
    }
    if (ws->n == ws->cap) {
        size_t cap = ws->cap ? 2 * ws->cap : 256;
        struct infvsr_weight_item * it = realloc(ws->items, cap * sizeof *it);
        if (!it) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "weight import: out of memory");
        ws->items = it;
        ws->cap   = cap;
    }
    ws->items[ws->n++] = (struct infvsr_weight_item){ .t = t, .flags = flags };
    return INFVSR_OK;
}

static enum infvsr_dtype target_dtype(const struct infvsr_weight_item * it, enum infvsr_dtype act) {
    if (!(it->flags & INFVSR_WEIGHT_KEEP_DTYPE) && act == INFVSR_TYPE_BF16 && it->t->dtype == INFVSR_TYPE_F32)
        return INFVSR_TYPE_BF16;
    return it->t->dtype;
}

/* Index of an earlier item with the same storage, or -1. */
static ptrdiff_t shared_with(const struct infvsr_weight_set * ws, size_t i, const enum infvsr_dtype * src_dt) {
    const struct infvsr_tensor * t = ws->items[i].t;
    for (size_t j = 0; j < i; j++) {
        const struct infvsr_tensor * u = ws->items[j].t;
        if (u->data == t->data && src_dt[j] == t->dtype && infvsr_tensor_nbytes(u) == infvsr_tensor_nbytes(t) &&
            ws->items[j].flags == ws->items[i].flags)
            return (ptrdiff_t)j;
    }
    return -1;
}

/* Tells the backend which tensors are now immutable weights (weights_imported). */
static enum infvsr_status announce(struct infvsr_weight_set * ws, struct infvsr_backend * be, struct infvsr_err * err) {
    if (ws->n == 0) return INFVSR_OK;
    struct infvsr_tensor ** ts = malloc(ws->n * sizeof *ts);
    if (!ts) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "weight import: out of memory");
    for (size_t i = 0; i < ws->n; i++) ts[i] = ws->items[i].t;
    enum infvsr_status st = infvsr_backend_weights_imported(be, ts, ws->n, &ws->backend_token, err);
    free(ts);
    return st;
}

enum infvsr_status infvsr_weight_set_commit(struct infvsr_weight_set * ws, struct infvsr_backend * be,
                                            struct infvsr_err * err) {
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    ws->committed = true;
    if (caps.host_visible || ws->n == 0) return announce(ws, be, err);

    enum infvsr_status st = INFVSR_OK;
    size_t *            off    = calloc(ws->n, sizeof *off);
    ptrdiff_t *         share  = calloc(ws->n, sizeof *share);
    enum infvsr_dtype * src_dt = calloc(ws->n, sizeof *src_dt);
    void *              tmp    = NULL;
    size_t              tmp_cap = 0, total = 0;
    if (!off || !share || !src_dt) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "weight import: out of memory");
        goto done;
    }
    /* Layout: one aligned slot per distinct storage. */
    for (size_t i = 0; i < ws->n; i++) {
        src_dt[i] = ws->items[i].t->dtype;
        share[i]  = shared_with(ws, i, src_dt);
        if (share[i] >= 0) continue;
        size_t bytes = (size_t)infvsr_tensor_numel(ws->items[i].t) * infvsr_dtype_size(target_dtype(&ws->items[i], caps.act_dtype));
        off[i] = total;
        total += (bytes + WEIGHT_ALIGN - 1) / WEIGHT_ALIGN * WEIGHT_ALIGN;
    }
    int64_t shape[1] = { (int64_t)(total ? total : 1) };
    infvsr_tensor_setup(&ws->storage, "weights", INFVSR_TYPE_U8, 1, shape);
    if ((st = infvsr_backend_tensor_alloc(be, &ws->storage, err)) != INFVSR_OK) {
        infvsr_err_prefix(err, "weight import: %zu MiB on %s", total >> 20, caps.name);
        goto done;
    }
    ws->resident_bytes = total;
    for (size_t i = 0; i < ws->n; i++) {
        struct infvsr_tensor * t  = ws->items[i].t;
        enum infvsr_dtype      dt = target_dtype(&ws->items[i], caps.act_dtype);
        size_t                 n  = (size_t)infvsr_tensor_numel(t);
        if (share[i] < 0 && n > 0) {
            const void * src = t->data;
            if (dt != t->dtype) { /* F32 -> BF16, on the host, once */
                if (n * 2 > tmp_cap) {
                    free(tmp);
                    tmp_cap = n * 2;
                    if (!(tmp = malloc(tmp_cap))) {
                        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "weight import: out of memory");
                        goto done;
                    }
                }
                infvsr_convert_from_f32(tmp, dt, src, n);
                src = tmp;
            }
            if ((st = infvsr_backend_tensor_set(be, &ws->storage, src, off[i], n * infvsr_dtype_size(dt), err)) !=
                INFVSR_OK) {
                infvsr_err_prefix(err, "weight import of '%s'", t->name);
                goto done;
            }
        }
        size_t o = share[i] < 0 ? off[i] : off[share[i]];
        if (t->owns_data) infvsr_tensor_release_data(t);
        t->data      = (char *)ws->storage.data + o;
        t->mem       = ws->storage.mem;
        t->dtype     = dt;
        t->owns_data = false;
    }
    /* tensor_set copies before it returns, so the host sources may go now; make sure the
     * uploads landed before anyone relies on them. */
    st = infvsr_backend_synchronize(be, err);
    if (st == INFVSR_OK) st = announce(ws, be, err);
done:
    free(off);
    free(share);
    free(src_dt);
    free(tmp);
    return st;
}

void infvsr_weight_set_release(struct infvsr_weight_set * ws, struct infvsr_backend * be) {
    if (!ws) return;
    if (!ws->committed) {
        for (size_t i = 0; i < ws->n; i++)
            if (ws->items[i].t->owns_data) infvsr_tensor_release_data(ws->items[i].t);
    }
    infvsr_backend_weights_released(be, ws->backend_token); /* before the memory can go */
    infvsr_backend_tensor_free(be, &ws->storage);
    free(ws->items);
    memset(ws, 0, sizeof *ws);
}
