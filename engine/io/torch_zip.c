/* torch.save zip reader: <prefix>/data.pkl (run by the restricted pickle VM) names tensor
 * records whose storages are the entries <prefix>/data/<key> (MODEL-SPEC §9).
 *
 * Other records are informational: <prefix>/version (1.6+), and from torch 2.x
 * <prefix>/.format_version, <prefix>/byteorder ("little"/"big"; big-endian storages are
 * byte-swapped), <prefix>/.data/version, <prefix>/.data/serialization_id and
 * <prefix>/.storage_alignment. Only byteorder changes how the bytes are read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/torch_walk.h"
#include "io/zip.h"

struct zip_ctx {
    const struct infvsr_weights * w;
    const struct infvsr_zip *     zip;
    const char *                  prefix;
    size_t                        prefix_len;
};

static enum infvsr_status zip_storage(void * ctx, const struct infvsr_pk_obj * s, struct infvsr__storage_blob * out,
                                      const char * key, struct infvsr_err * err) {
    const struct zip_ctx * z = ctx;
    int nl = snprintf(out->name, sizeof out->name, "%.*s/data/%.*s", (int)z->prefix_len, z->prefix,
                      (int)s->u.storage.key_len, s->u.storage.key);
    if (nl < 0 || (size_t)nl >= sizeof out->name) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "tensor '%s': storage key too long", key);
    }
    const struct infvsr_zip_entry * e = infvsr_zip_find(z->zip, out->name);
    if (!e) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "tensor '%s': storage entry '%s' is missing from the archive", key, out->name);
    out->data   = z->w->file.data + e->data_off;
    out->nbytes = e->size;
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

/* <prefix>/<name> record's bytes, or NULL. */
static const struct infvsr_zip_entry * record(const struct zip_ctx * z, const char * name) {
    char full[4096];
    snprintf(full, sizeof full, "%.*s/%s", (int)z->prefix_len, z->prefix, name);
    return infvsr_zip_find(z->zip, full);
}

enum infvsr_status infvsr__torch_zip_index(struct infvsr_weights * w, struct infvsr_err * err) {
    struct infvsr_zip  zip;
    enum infvsr_status st = infvsr_zip_open(&zip, w->file.data, w->file.size, err);
    if (st) return st;
    struct infvsr_pickle vm;
    memset(&vm, 0, sizeof vm);
    const struct infvsr_zip_entry * pkl;
    if ((st = find_data_pkl(&zip, &pkl, err))) goto done;
    struct zip_ctx z = { w, &zip, pkl->name, (size_t)(strchr(pkl->name, '/') - pkl->name) };

    bool big_endian = false;
    const struct infvsr_zip_entry * bo = record(&z, "byteorder");
    if (bo) {
        const char * b = (const char *)w->file.data + bo->data_off;
        if (bo->size == 3 && memcmp(b, "big", 3) == 0) {
            big_endian = true;
        } else if (!(bo->size == 6 && memcmp(b, "little", 6) == 0)) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "'%.*s/byteorder' is neither \"little\" nor \"big\"", (int)z.prefix_len, z.prefix);
            goto done;
        }
    }
    /* .format_version "1" is the only layout torch has written so far; a newer one may
     * change the meaning of the records, so say so instead of guessing. */
    const struct infvsr_zip_entry * fv = record(&z, ".format_version");
    if (fv) {
        const char * b = (const char *)w->file.data + fv->data_off;
        size_t       n = fv->size;
        while (n && (b[n - 1] == '\n' || b[n - 1] == '\r')) n--;
        if (!(n == 1 && b[0] == '1')) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "'%.*s/.format_version' is '%.*s'; only format 1 is known",
                                (int)z.prefix_len, z.prefix, (int)(n > 16 ? 16 : n), b);
            goto done;
        }
    }
    st = infvsr_pickle_run_at(&vm, w->file.data + pkl->data_off, (size_t)pkl->size, 0, err);
    if (st) {
        infvsr_err_prefix(err, "%s", pkl->name);
        goto done;
    }
    w->pickle_protocol = vm.protocol;
    st = infvsr__torch_walk(w, vm.result, big_endian, zip_storage, &z, err);
    if (st) infvsr_err_prefix(err, "%s", pkl->name);
done:
    infvsr_pickle_free(&vm);
    infvsr_zip_close(&zip);
    return st;
}
