/* The walk over an unpickled torch.save object, shared by the zip (torch_zip.c) and legacy
 * (torch_legacy.c) readers: dicts are flattened with '.' between keys, tensors become index
 * entries, everything else (ints, strings, lists, placeholders of unknown globals) is
 * skipped, because training checkpoints carry such extras next to the weights. Only the
 * way a storage's bytes are found differs between the formats: a callback. */
#pragma once

#include "io/pickle.h"
#include "io/weights_impl.h"

/* The bytes of storage `s` (its root storage when s is a legacy view): `data` and `nbytes`,
 * and a name for messages ("archive/data/0", "legacy storage '1234'"). */
struct infvsr__storage_blob {
    const uint8_t * data;
    uint64_t        nbytes;
    char            name[160];
};
typedef enum infvsr_status (*infvsr__storage_fn)(void * ctx, const struct infvsr_pk_obj * s,
                                                 struct infvsr__storage_blob * out, const char * key,
                                                 struct infvsr_err * err);

enum infvsr_status infvsr__torch_walk(struct infvsr_weights * w, const struct infvsr_pk_obj * root, bool big_endian,
                                      infvsr__storage_fn find_storage, void * ctx, struct infvsr_err * err);
