/* Read-only memory mapping of a whole file.
 *
 * Checkpoints are mapped rather than read so that multi-gigabyte weights cost page cache,
 * not heap, and contiguous tensors can be used in place. `size` is the authoritative
 * bound for every offset the readers take from the file: each parser checks
 * offset + length <= size before touching bytes (see infvsr__range_ok). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"

struct infvsr_mapped_file {
    const uint8_t * data; /* NULL for an empty file */
    size_t          size;
};

enum infvsr_status infvsr_mapped_file_open(struct infvsr_mapped_file * f, const char * path,
                                           struct infvsr_err * err);
void               infvsr_mapped_file_close(struct infvsr_mapped_file * f);

/* True when [off, off + len) lies inside a buffer of `size` bytes (overflow-safe). */
static inline bool infvsr__range_ok(uint64_t off, uint64_t len, uint64_t size) {
    return off <= size && len <= size - off;
}

/* Little-endian loads from unaligned bytes (file formats here are all little-endian). */
static inline uint16_t infvsr__rd_u16(const uint8_t * p) {
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint32_t infvsr__rd_u32(const uint8_t * p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t infvsr__rd_u64(const uint8_t * p) {
    return (uint64_t)infvsr__rd_u32(p) | (uint64_t)infvsr__rd_u32(p + 4) << 32;
}
