/* SHA-256 (FIPS 180-4), used to fingerprint tensors (`infvsr inspect --json`) and files. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define INFVSR_SHA256_SIZE 32

struct infvsr_sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes consumed */
    uint8_t  buf[64];
    size_t   buf_len;
};

void infvsr_sha256_init(struct infvsr_sha256 * s);
void infvsr_sha256_update(struct infvsr_sha256 * s, const void * data, size_t len);
void infvsr_sha256_final(struct infvsr_sha256 * s, uint8_t out[INFVSR_SHA256_SIZE]);

/* One-shot digest as 64 lower-case hex characters plus NUL. */
void infvsr_sha256_hex(const void * data, size_t len, char out[2 * INFVSR_SHA256_SIZE + 1]);
