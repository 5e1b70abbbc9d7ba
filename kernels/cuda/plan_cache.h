/* Bounded per-shape plan caches of the CUDA backend's host side, in plain C (no CUDA
 * header), so that the keying and lookup logic is unit-tested on every machine
 * (tests/unit/test_cuda_plan_cache.c) while the .cu files own what a plan holds.
 *
 * Why: a DiT chunk issues about 540 GEMMs over a few dozen distinct shapes, and each
 * resize call of a stream has the same in/out sizes as the last. Building cuBLASLt
 * descriptors and asking its heuristic, or computing and uploading resize tap tables,
 * on every call costs host time and (for the uploads) a synchronous copy; a cache keyed
 * by everything the plan depends on turns that into one lookup per call.
 *
 * A key is a fixed array of int64 words, zero-filled before use and compared whole, so
 * two keys are equal exactly when every field that went into them is. The cache holds
 * at most `capacity` values; inserting into a full cache evicts the least recently used
 * entry and hands its value to the destroy callback (which for device blocks returns
 * them to the stream-ordered pool: work already queued that reads them stays valid).
 * Lookup is a linear scan over a precomputed 64-bit hash per entry: capacities are tens
 * to a few hundred, far below where a hash table would pay. Not thread-safe: one cache
 * per backend, and a backend belongs to one worker thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CU_PLAN_KEY_WORDS 24

struct cu_plan_key {
    int64_t w[CU_PLAN_KEY_WORDS];
};

struct cu_plan_cache_stats {
    size_t   size, capacity;
    uint64_t hits, misses, evictions;
};

struct cu_plan_cache;
typedef void (*cu_plan_destroy_fn)(void * value, void * user);

/* NULL when out of host memory. capacity >= 1. */
struct cu_plan_cache * cu_plan_cache_create(size_t capacity, cu_plan_destroy_fn destroy, void * user);
/* Destroys every value still held, then the cache. NULL is ignored. */
void   cu_plan_cache_free(struct cu_plan_cache * pc);
/* The value stored under key (now the most recently used), or NULL (a miss). */
void * cu_plan_cache_get(struct cu_plan_cache * pc, const struct cu_plan_key * key);
/* Stores value under key. A value already under key is replaced (and destroyed, unless it
 * is the same pointer); otherwise the least recently used entry is evicted when full.
 * value must not be NULL: a caller remembering "no plan for this shape" stores a marker
 * object of its own, and its destroy callback leaves the marker alone. */
void   cu_plan_cache_put(struct cu_plan_cache * pc, const struct cu_plan_key * key, void * value);
/* The value under key, or NULL, without counting a hit or miss or touching the LRU order
 * (for a decision taken before the lookup that counts). */
void * cu_plan_cache_peek(const struct cu_plan_cache * pc, const struct cu_plan_key * key);
/* Calls fn on every value held (for statistics); the order is unspecified. */
void   cu_plan_cache_each(const struct cu_plan_cache * pc, void (*fn)(const void * value, void * user), void * user);
void   cu_plan_cache_get_stats(const struct cu_plan_cache * pc, struct cu_plan_cache_stats * out);

/* ---- keys ---- */

/* Everything a cuBLASLt matmul plan (descriptors, layouts, heuristic result) depends on.
 * The pointers themselves are not part of it, only their alignment: the heuristic is told
 * the alignment of A, B and D, and the bias pointer is set on the cached descriptor per
 * call. */
struct cu_gemm_shape {
    bool     trans_a, trans_b;
    int64_t  m, n, k;
    int64_t  lda, ldb, ldd;
    int64_t  stride_a, stride_b, stride_d; /* ignored (not part of the key) when batch <= 1 */
    int32_t  batch;
    int32_t  ab_dtype, d_dtype;            /* enum infvsr_dtype */
    int32_t  epilogue;                     /* cublasLtEpilogue_t */
    bool     has_bias;
    uint32_t align_a, align_b, align_d;    /* cu_ptr_align of the operands */
};
void cu_gemm_plan_key(const struct cu_gemm_shape * s, struct cu_plan_key * key);

/* One axis of a resize: the tap table depends on the mode and the two lengths only. */
void cu_resize_plan_key(int mode, int64_t in, int64_t out, struct cu_plan_key * key);

/* A conv3d call (conv3d_plan.c: infvsr_conv3d_plan_key_make) starts its key with this
 * kind word; the kinds of plan_cache.c are 1 and 2. */
#define CU_PLAN_KIND_CONV3D 3

/* Largest power of two <= 256 dividing the address (cuBLASLt's alignment preference). */
uint32_t cu_ptr_align(const void * p);

#ifdef __cplusplus
}
#endif
