/* Internals shared by the checkpoint readers (safetensors.c, torch_zip.c, torch_legacy.c, torch_walk.c) and weights.c.
 *
 * A reader fills `struct infvsr_weights` through infvsr__weights_add(); weights.c owns the
 * lifetime (open, sorted key index, close). Not part of the public API. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "infvsr/weights.h"
#include "io/mapped_file.h"

struct infvsr__weights_entry {
    char *               key; /* full key path (may exceed INFVSR_NAME_MAX); t.name is a prefix */
    struct infvsr_tensor t;   /* view into the mapping, or owned (t.owns_data) */
};

#define INFVSR__MAX_WRAPPERS 8

struct infvsr__key_ref {
    const char * key;
    size_t       index;
};

struct infvsr_weights {
    char *                        path;
    enum infvsr_weights_format    format;
    struct infvsr_mapped_file     file;
    struct infvsr__weights_entry * entries; /* file order */
    size_t                        n_entries, cap_entries;
    struct infvsr__key_ref *      by_key;   /* sorted by key, for bsearch */
    json_t *                      metadata; /* safetensors "__metadata__" object, or NULL */
    int                           pickle_protocol; /* torch formats: the object pickle's protocol */
    char                          extras[512];     /* pickles: top-level entries that hold no tensors */
    /* Wrapper prefixes present in the keys ("model.", "state_dict.module.", ...), the most
     * common first: find() tries them after the exact key (checkpoint wrappers, DataParallel). */
    char                          wrappers[INFVSR__MAX_WRAPPERS][96];
    size_t                        wrapper_count[INFVSR__MAX_WRAPPERS];
    size_t                        n_wrappers;
};

/* Appends a tensor. `data` is a view into w->file unless `owned` (then it must come from
 * infvsr_tensor_alloc-compatible aligned_alloc and is freed on failure too). */
enum infvsr_status infvsr__weights_add(struct infvsr_weights * w, const char * key, size_t key_len,
                                       enum infvsr_dtype dtype, int ndim, const int64_t * shape,
                                       void * data, bool owned, struct infvsr_err * err);

enum infvsr_status infvsr__safetensors_index(struct infvsr_weights * w, struct infvsr_err * err);
enum infvsr_status infvsr__torch_zip_index(struct infvsr_weights * w, struct infvsr_err * err);
size_t             infvsr__legacy_magic_end(const uint8_t * d, size_t n);
enum infvsr_status infvsr__torch_legacy_index(struct infvsr_weights * w, struct infvsr_err * err);
