/* safetensors reader.
 *
 * Format (https://huggingface.co/docs/safetensors/index): an 8-byte little-endian header
 * length N, N bytes of JSON {"name": {"dtype": "BF16", "shape": [..], "data_offsets":
 * [begin, end]}, ..., "__metadata__": {"k": "v"}}, then the data buffer. Offsets are
 * relative to the start of the data buffer (byte 8 + N). Every number in the header is
 * untrusted: each is range-checked before it becomes a pointer. */
#include "io/weights_impl.h"

#include <stdlib.h>
#include <string.h>

#define SAFETENSORS_HEADER_MAX ((uint64_t)100 << 20) /* the reference implementation's limit */

struct st_item {
    const char * key;
    json_t *     info;
    uint64_t     begin;
};

static int st_item_cmp(const void * a, const void * b) {
    const struct st_item * x = a, * y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* A JSON integer in [0, INT64_MAX], or false. */
static bool json_u63(const json_t * v, int64_t * out) {
    if (!json_is_integer(v)) return false;
    json_int_t x = json_integer_value(v);
    if (x < 0) return false;
    *out = (int64_t)x;
    return true;
}

static enum infvsr_status parse_tensor(struct infvsr_weights * w, const char * key, const json_t * info,
                                       const uint8_t * data, uint64_t data_size, struct infvsr_err * err) {
    if (!json_is_object(info)) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: tensor '%s': header entry is not an object", key);
    }
    const char * dname = json_string_value(json_object_get(info, "dtype"));
    if (!dname) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: tensor '%s': missing \"dtype\"", key);
    int dt = infvsr_dtype_from_name(dname);
    if (dt < 0 || strcmp(dname, infvsr_dtype_name((enum infvsr_dtype)dt)) == 0) { /* only upper-case spellings */
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: tensor '%s': unknown dtype \"%.32s\"", key, dname);
    }
    const json_t * jshape = json_object_get(info, "shape");
    if (!json_is_array(jshape)) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: tensor '%s': missing \"shape\" array", key);
    }
    size_t rank = json_array_size(jshape);
    if (rank > INFVSR_MAX_DIMS) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: tensor '%s': rank %zu exceeds the maximum %d",
                              key, rank, INFVSR_MAX_DIMS);
    }
    int64_t shape[INFVSR_MAX_DIMS];
    for (size_t i = 0; i < rank; i++) {
        if (!json_u63(json_array_get(jshape, i), &shape[i])) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                                  "safetensors: tensor '%s': shape[%zu] is not a non-negative integer", key, i);
        }
    }
    int64_t numel;
    size_t  esize = infvsr_dtype_size((enum infvsr_dtype)dt);
    if (!infvsr_shape_numel((int)rank, shape, &numel) || (uint64_t)numel > UINT64_MAX / esize) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: tensor '%s': element count overflows", key);
    }
    uint64_t       nbytes = (uint64_t)numel * esize;
    const json_t * joff   = json_object_get(info, "data_offsets");
    int64_t        begin, end;
    if (!json_is_array(joff) || json_array_size(joff) != 2 || !json_u63(json_array_get(joff, 0), &begin) ||
        !json_u63(json_array_get(joff, 1), &end)) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "safetensors: tensor '%s': \"data_offsets\" must be [begin, end] integers", key);
    }
    if (begin > end || (uint64_t)end > data_size) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "safetensors: tensor '%s': data_offsets [%lld, %lld] out of range (data is %llu bytes)",
                              key, (long long)begin, (long long)end, (unsigned long long)data_size);
    }
    if ((uint64_t)(end - begin) != nbytes) {
        char sbuf[96];
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "safetensors: tensor '%s': size mismatch: data_offsets span %lld bytes, "
                              "%s %s needs %llu", key, (long long)(end - begin),
                              infvsr_dtype_name((enum infvsr_dtype)dt), infvsr_shape_str((int)rank, shape, sbuf, sizeof sbuf),
                              (unsigned long long)nbytes);
    }
    /* empty tensors point at the (page-aligned) mapping start: no bytes, but a valid aligned pointer */
    void * p     = nbytes ? (void *)(data + begin) : (void *)w->file.data;
    bool   owned = false;
    if (nbytes > 0 && (uintptr_t)p % esize != 0) { /* the format does not align data: copy to stay UB-free */
        owned = true;
        p     = aligned_alloc(INFVSR_TENSOR_ALIGN, (nbytes + INFVSR_TENSOR_ALIGN - 1) / INFVSR_TENSOR_ALIGN * INFVSR_TENSOR_ALIGN);
        if (!p) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory copying tensor '%s'", key);
        memcpy(p, data + begin, nbytes);
    }
    return infvsr__weights_add(w, key, strlen(key), (enum infvsr_dtype)dt, (int)rank, shape, p, owned, err);
}

enum infvsr_status infvsr__safetensors_index(struct infvsr_weights * w, struct infvsr_err * err) {
    const uint8_t * d    = w->file.data;
    uint64_t        size = w->file.size;
    if (size < 8) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: file shorter than the 8-byte header length");
    uint64_t hlen = infvsr__rd_u64(d);
    if (hlen > size - 8) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: header length %llu exceeds the file (%llu bytes)",
                              (unsigned long long)hlen, (unsigned long long)size);
    }
    if (hlen > SAFETENSORS_HEADER_MAX) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: header length %llu exceeds the 100 MiB limit",
                              (unsigned long long)hlen);
    }
    json_error_t jerr;
    json_t *     root = json_loadb((const char *)d + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: bad JSON header at offset %d: %s",
                              8 + jerr.position, jerr.text);
    }
    enum infvsr_status st    = INFVSR_OK;
    struct st_item *   items = NULL;
    if (!json_is_object(root)) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: JSON header is not an object");
        goto done;
    }
    items = malloc((json_object_size(root) + 1) * sizeof *items);
    if (!items) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t       n = 0;
    const char * key;
    json_t *     val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "safetensors: \"__metadata__\" is not an object");
                goto done;
            }
            w->metadata = json_incref(val);
            continue;
        }
        /* Sort by data offset so that "file order" is the order of the bytes. */
        const json_t * b = json_array_get(json_object_get(val, "data_offsets"), 0);
        items[n].key   = key;
        items[n].info  = val;
        items[n].begin = json_is_integer(b) ? (uint64_t)json_integer_value(b) : 0;
        n++;
    }
    qsort(items, n, sizeof *items, st_item_cmp);
    const uint8_t * data      = d + 8 + hlen;
    uint64_t        data_size = size - 8 - hlen;
    for (size_t i = 0; i < n && st == INFVSR_OK; i++) {
        st = parse_tensor(w, items[i].key, items[i].info, data, data_size, err);
    }
done:
    free(items);
    json_decref(root);
    return st;
}
