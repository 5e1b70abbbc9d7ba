/* Read-only index of a ZIP archive's central directory (as written by torch.save).
 *
 * Only stored (method 0) entries are accepted: torch.save never compresses, and stored
 * data can be used in place from the mapping. ZIP64 records are supported because real
 * checkpoints exceed 4 GiB. Every offset and size is checked against the file size. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"

struct infvsr_zip_entry {
    const char * name;     /* NUL-terminated copy */
    uint64_t     data_off; /* absolute offset of the stored bytes */
    uint64_t     size;
};

struct infvsr_zip {
    struct infvsr_zip_entry * entries; /* sorted by name */
    size_t                    n_entries;
    char *                    names;   /* storage for all names */
};

enum infvsr_status infvsr_zip_open(struct infvsr_zip * z, const uint8_t * data, uint64_t size,
                                   struct infvsr_err * err);
void               infvsr_zip_close(struct infvsr_zip * z);

/* Entry by exact name, or NULL. */
const struct infvsr_zip_entry * infvsr_zip_find(const struct infvsr_zip * z, const char * name);
