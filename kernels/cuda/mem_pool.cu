/* Caching device allocator; see mem_pool.h for the policy. Host-only code. */
#include "mem_pool.h"

#include <map>
#include <new>
#include <unordered_map>

struct cuda_pool {
    int                                device;
    std::multimap<size_t, void *>      free_blocks; /* class size -> block */
    std::unordered_map<void *, size_t> live;        /* block -> class size */
    infvsr_cuda_pool_stats             stats;
};

static size_t pool_class(size_t n) {
    const size_t small = 512, large = 2u << 20;
    if (n == 0) n = 1;
    if (n < (1u << 20)) return (n + small - 1) / small * small;
    return (n + large - 1) / large * large;
}

struct cuda_pool * cuda_pool_create(int device) {
    cuda_pool * p = new (std::nothrow) cuda_pool();
    if (!p) return nullptr;
    p->device = device;
    p->stats  = infvsr_cuda_pool_stats{};
    return p;
}

void cuda_pool_trim(struct cuda_pool * p) {
    if (!p) return;
    for (auto & kv : p->free_blocks) {
        cudaFree(kv.second); /* error ignored: nothing to do about it while trimming */
        p->stats.bytes_reserved -= kv.first;
    }
    p->free_blocks.clear();
}

void cuda_pool_destroy(struct cuda_pool * p) {
    if (!p) return;
    cuda_pool_trim(p);
    for (auto & kv : p->live) cudaFree(kv.first);
    delete p;
}

/* std containers may throw bad_alloc on host OOM: report it as a failed allocation
 * (the backend turns it into INFVSR_ERR_NOMEM), never let it escape into C. */
static cudaError_t pool_alloc_impl(struct cuda_pool * p, size_t nbytes, void ** out);

cudaError_t cuda_pool_alloc(struct cuda_pool * p, size_t nbytes, void ** out) {
    *out = nullptr;
    try {
        return pool_alloc_impl(p, nbytes, out);
    } catch (...) {
        return cudaErrorMemoryAllocation;
    }
}

static cudaError_t pool_alloc_impl(struct cuda_pool * p, size_t nbytes, void ** out) {
    const size_t cls = pool_class(nbytes);
    auto it = p->free_blocks.lower_bound(cls);
    if (it != p->free_blocks.end() && it->first <= cls + cls / 4) {
        void * ptr = it->second;
        size_t got = it->first;
        p->live.emplace(ptr, got); /* may throw: before the erase, so nothing leaks */
        p->free_blocks.erase(it);
        p->stats.bytes_in_use += got;
        if (p->stats.bytes_in_use > p->stats.bytes_peak) p->stats.bytes_peak = p->stats.bytes_in_use;
        p->stats.n_allocs++;
        *out = ptr;
        return cudaSuccess;
    }
    void * ptr = nullptr;
    cudaError_t e = cudaMalloc(&ptr, cls);
    if (e == cudaErrorMemoryAllocation && !p->free_blocks.empty()) {
        cudaGetLastError(); /* clear the (non-sticky) OOM before retrying */
        cuda_pool_trim(p);
        e = cudaMalloc(&ptr, cls);
    }
    if (e != cudaSuccess) {
        if (e == cudaErrorMemoryAllocation) cudaGetLastError();
        return e;
    }
    try {
        p->live.emplace(ptr, cls);
    } catch (...) {
        cudaFree(ptr);
        throw;
    }
    p->stats.n_device_mallocs++;
    p->stats.n_allocs++;
    p->stats.bytes_reserved += cls;
    p->stats.bytes_in_use += cls;
    if (p->stats.bytes_in_use > p->stats.bytes_peak) p->stats.bytes_peak = p->stats.bytes_in_use;
    *out = ptr;
    return cudaSuccess;
}

bool cuda_pool_free(struct cuda_pool * p, void * ptr) {
    if (!p || !ptr) return false;
    auto it = p->live.find(ptr);
    if (it == p->live.end()) return false;
    const size_t cls = it->second;
    p->live.erase(it);
    p->stats.bytes_in_use -= cls;
    try {
        p->free_blocks.emplace(cls, ptr);
    } catch (...) { /* cannot cache it: give it back to the driver */
        cudaFree(ptr);
        p->stats.bytes_reserved -= cls;
    }
    return true;
}

void cuda_pool_stats(const struct cuda_pool * p, struct infvsr_cuda_pool_stats * out) {
    *out = p ? p->stats : infvsr_cuda_pool_stats{};
}
