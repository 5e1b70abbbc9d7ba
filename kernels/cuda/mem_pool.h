/* Per-device caching allocator for the CUDA backend.
 *
 * Why: cudaMalloc/cudaFree synchronise the device and cost 10-100 us each; a worker
 * allocates the same tensor sizes for every chunk, so after the first chunk every
 * request is served from a free list and the steady state calls cudaMalloc zero times
 * (n_device_mallocs stops growing; tests/cuda checks it).
 *
 * Size classes: requests are rounded up to 512 B below 1 MiB and to 2 MiB above, so a
 * block freed by one chunk fits the same request of the next. A request takes the
 * smallest cached block of at least its class and at most 1.25x it (bounded waste).
 * Blocks are reused in stream order: the backend has one stream, so a block freed on
 * the host after queuing work that uses it can be handed to later work on that stream
 * without a device sync. On cudaMalloc failure the cache is released and the
 * allocation retried once. Not thread-safe: one backend (and pool) per worker thread. */
#pragma once

#include <cuda_runtime.h>
#include <stddef.h>

#include "cuda_backend.h"

struct cuda_pool;

struct cuda_pool * cuda_pool_create(int device);
/* cudaFree's every block (live ones too: the backend is being destroyed). */
void               cuda_pool_destroy(struct cuda_pool * p);
/* *out = device pointer (256-byte aligned). Returns the cudaMalloc error on failure. */
cudaError_t        cuda_pool_alloc(struct cuda_pool * p, size_t nbytes, void ** out);
/* Returns a block to the cache; pointers not from this pool are ignored (false). */
bool               cuda_pool_free(struct cuda_pool * p, void * ptr);
void               cuda_pool_trim(struct cuda_pool * p);
void               cuda_pool_stats(const struct cuda_pool * p, struct infvsr_cuda_pool_stats * out);
