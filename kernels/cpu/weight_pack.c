/* Packed bf16 GEMM operands of imported weights, so that a DiT chunk does not repack its
 * weight panels on every linear call (12-14% of a bf16 chunk at 192 tokens did), and the
 * AMX conv3d's packed weights (infvsr__wcache_conv_amx: per call, packing took about a
 * third of a 384-channel conv on a 16x16 latent and half of one on 8x8).
 *
 * Correctness. A packed copy is only ever made of a weight inside a weight set the engine
 * imported (weights_imported: engine/core/weight_set.c at commit; on a bf16 backend its 2-D
 * tensors are packed right there, pack_at_import), and every copy made
 * for a set is freed when that set is released (weights_released, called before the
 * module frees or unmaps the memory). So a cached panel can never outlive the bytes it
 * was packed from, and a reused address cannot find a stale panel: lookups match
 * (pointer, N, K, dtype) only among live copies. Tensors outside any imported set (a
 * test's weights, activations passed as weights) are packed per call as before.
 *
 * Memory. One packed copy per weight, the size of the weight in bf16 (f32 weights are
 * packed rounded to bf16: half their size); the 1.3B DiT's linears are ~2.6 GB. The
 * copies are bounded by a budget (infvsr__wcache_default_budget): weights past it are
 * packed per call, so a small machine degrades to the old speed, never runs out of
 * memory. After packing, the original's whole pages are paged out (release_original):
 * the GEMM never reads them again, so the packed copy replaces the checkpoint's pages in
 * the resident set instead of doubling it.
 *
 * Threads. Every function here runs under the backend's lock (c->lock), as the ops do.
 * Lookups are linear scans: a model has a few hundred linear weights and a lookup is a
 * few hundred pointer compares against a GEMM of millions of MACs. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu_impl.h"

#define DEFAULT_MAX_BYTES ((size_t)4 << 30)

size_t infvsr__wcache_default_budget(void) {
    const char * env = getenv("INFVSR_CPU_PACKED_MB");
    if (env && *env) {
        char * end;
        unsigned long long mb = strtoull(env, &end, 10);
        if (*end == '\0' && mb <= (SIZE_MAX >> 20)) return (size_t)mb << 20;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t quarter = pages > 0 && page > 0 ? (size_t)pages / 4 * (size_t)page : DEFAULT_MAX_BYTES;
    return quarter < DEFAULT_MAX_BYTES ? quarter : DEFAULT_MAX_BYTES;
}

static bool grow(void ** v, size_t * cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t n = *cap ? 2 * *cap : 64;
    while (n < need) n *= 2;
    void * p = realloc(*v, n * elem);
    if (!p) return false;
    *v = p;
    *cap = n;
    return true;
}

/* Panels are mapped pages of their own, not heap blocks: a few hundred long-lived blocks of
 * 4-27 MB in the heap changed how glibc reuses and trims it for the per-op temporaries
 * (measured: ~1.7M more page faults over 6 DiT chunks, seconds of system time). */
static uint16_t * alloc_panel(size_t bytes) {
    void * p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    /* Transparent huge pages where the system allows them (the common `madvise` setting):
     * the DiT's ~2.6 GB of panels are first touched while packing, inside the first chunk,
     * and 4 KiB pages made that ~650k page faults (seconds of system time). Advice only. */
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void free_panel(struct infvsr_cpu_packed * p) { munmap(p->panel, p->bytes); }

static void pack_at_import(struct infvsr_cpu_ctx * c, struct infvsr_tensor * const * ts, size_t n, uint64_t token);

enum infvsr_status infvsr__wcache_import(struct infvsr_cpu_ctx * c, struct infvsr_tensor * const * ts, size_t n,
                                         uint64_t * token) {
    struct infvsr_cpu_wcache * wc = &c->wcache;
    if (!grow((void **)&wc->ranges, &wc->cap_ranges, wc->n_ranges + n, sizeof *wc->ranges)) return INFVSR_ERR_NOMEM;
    *token = ++wc->next_token;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = infvsr_tensor_nbytes(ts[i]);
        if (!ts[i]->data || bytes == 0 || ts[i]->mem != INFVSR_MEM_HOST) continue;
        uintptr_t lo = (uintptr_t)ts[i]->data;
        wc->ranges[wc->n_ranges++] = (struct infvsr_cpu_wrange){ .lo = lo, .hi = lo + bytes, .token = *token };
    }
    pack_at_import(c, ts, n, *token);
    return INFVSR_OK;
}

void infvsr__wcache_release(struct infvsr_cpu_ctx * c, uint64_t token) {
    struct infvsr_cpu_wcache * wc = &c->wcache;
    size_t k = 0;
    for (size_t i = 0; i < wc->n_ranges; i++)
        if (wc->ranges[i].token != token) wc->ranges[k++] = wc->ranges[i];
    wc->n_ranges = k;
    k = 0;
    for (size_t i = 0; i < wc->n_packed; i++) {
        if (wc->packed[i].token == token) {
            wc->bytes -= wc->packed[i].bytes;
            free_panel(&wc->packed[i]);
        } else {
            wc->packed[k++] = wc->packed[i];
        }
    }
    wc->n_packed = k;
}

void infvsr__wcache_free(struct infvsr_cpu_ctx * c) {
    struct infvsr_cpu_wcache * wc = &c->wcache;
    for (size_t i = 0; i < wc->n_packed; i++) free_panel(&wc->packed[i]);
    free(wc->packed);
    free(wc->ranges);
    memset(wc, 0, sizeof *wc);
}

/* The token of the imported set whose storage holds [lo, hi), or 0. */
static uint64_t owner(const struct infvsr_cpu_wcache * wc, uintptr_t lo, uintptr_t hi) {
    for (size_t i = 0; i < wc->n_ranges; i++)
        if (wc->ranges[i].lo <= lo && hi <= wc->ranges[i].hi) return wc->ranges[i].token;
    return 0;
}

/* The original's whole pages: the GEMM reads only the packed copy from now on, so they
 * need not stay resident beside it. MADV_PAGEOUT (Linux 5.4) drops the clean pages of the
 * mapped checkpoint at once and swaps anonymous ones out where there is swap; MADV_COLD
 * (the fallback) only makes them the first to go under memory pressure. Both are advice:
 * contents never change, and an op that reads the weight later faults the pages back in. */
static void release_original(const void * data, size_t bytes) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t lo = ((uintptr_t)data + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
    uintptr_t hi = ((uintptr_t)data + bytes) / (uintptr_t)pg * (uintptr_t)pg;
    if (hi <= lo) return;
#ifdef MADV_PAGEOUT
    if (madvise((void *)lo, hi - lo, MADV_PAGEOUT) == 0) return;
#endif
#ifdef MADV_COLD
    (void)madvise((void *)lo, hi - lo, MADV_COLD);
#endif
}

/* Packs w (N x K, in an imported set's storage `token`) and keeps the copy; NULL past the
 * budget or out of memory (the caller packs per call). */
static const uint16_t * pack_new(struct infvsr_cpu_ctx * c, struct infvsr_cpu_w w, int64_t N, int64_t K,
                                 size_t wbytes, uint64_t token) {
    struct infvsr_cpu_wcache * wc = &c->wcache;
    const size_t bytes = infvsr_cpu_linear_bf16_packed_elems(N, K) * sizeof(uint16_t);
    if (bytes > wc->budget || wc->bytes > wc->budget - bytes) return NULL;
    if (!grow((void **)&wc->packed, &wc->cap_packed, wc->n_packed + 1, sizeof *wc->packed)) return NULL;
    uint16_t * panel = alloc_panel(bytes);
    if (!panel) return NULL;
    infvsr_cpu_linear_bf16_pack(c, w, N, K, panel);
    release_original(w.data, wbytes);
    wc->packed[wc->n_packed++] = (struct infvsr_cpu_packed){ .data = w.data, .N = N, .K = K, .dtype = w.dtype,
                                                             .token = token, .panel = panel, .bytes = bytes };
    wc->bytes += bytes;
    wc->packs++;
    return panel;
}

/* At import, on a bf16 backend whose linear runs a native bf16 kernel (AVX512-BF16 or AMX:
 * one packed layout serves both): every 2-D weight
 * [N, K] of the set is packed now, as a linear weight, so that the model's load carries the
 * packing (~1.1 s and 2.6 GB of fresh pages for the 1.3B DiT) instead of the first chunk.
 * A 2-D tensor that is not a linear weight (a bias table) costs its packed size and is
 * never read; weights used under another shape are still packed on first use. On the amx
 * level every 5-D weight [Cout, Cin, kt, kh, kw] is packed too, as the AMX conv3d reads it
 * (the VAE's convs: their packing had been ~8% of a bf16 decode of two 64x64 chunks, all in
 * the first). f32 backends never run the bf16 kernels: nothing is packed for them. */
static void pack_at_import(struct infvsr_cpu_ctx * c, struct infvsr_tensor * const * ts, size_t n, uint64_t token) {
    if (!c->bf16 || c->use_ref) return;
    for (size_t i = 0; i < n; i++) {
        const struct infvsr_tensor * t = ts[i];
        if (!t->data || t->mem != INFVSR_MEM_HOST) continue;
        if (t->dtype != INFVSR_TYPE_BF16 && t->dtype != INFVSR_TYPE_F32 && t->dtype != INFVSR_TYPE_F16) continue;
        if (t->ndim == 5) { /* a conv3d weight: the amx level's conv packs it (else nothing) */
            if (!infvsr__conv3d_amx_pack_weight(c, (struct infvsr_cpu_w){ .data = t->data, .dtype = t->dtype }, t->shape))
                return; /* budget reached */
            continue;
        }
        if (t->ndim != 2) continue;
        const int64_t N = t->shape[0], K = t->shape[1];
        if (N <= 0 || K <= 0 || infvsr_cpu_linear_bf16_kernel(c, 64, N, K) == INFVSR_CPU_LINEAR_BF16_WIDEN) continue;
        if (!pack_new(c, (struct infvsr_cpu_w){ .data = t->data, .dtype = t->dtype }, N, K, infvsr_tensor_nbytes(t),
                      token))
            return; /* budget reached: the rest are packed per call */
    }
}

const uint16_t * infvsr__wcache_linear(struct infvsr_cpu_ctx * c, struct infvsr_cpu_w w, int64_t N, int64_t K) {
    struct infvsr_cpu_wcache * wc = &c->wcache;
    for (size_t i = 0; i < wc->n_packed; i++) {
        const struct infvsr_cpu_packed * p = &wc->packed[i];
        if (p->data == w.data && p->N == N && p->K == K && p->taps == 0 && p->dtype == w.dtype) {
            wc->hits++;
            return p->panel;
        }
    }
    if (wc->n_ranges == 0) return NULL;
    const size_t wbytes = (size_t)N * (size_t)K * infvsr_dtype_size(w.dtype);
    const uint64_t token = owner(wc, (uintptr_t)w.data, (uintptr_t)w.data + wbytes);
    if (!token) return NULL;
    const uint16_t * panel = pack_new(c, w, N, K, wbytes, token);
    if (panel) wc->hits++;
    return panel;
}

/* The AMX conv3d's weights: the same rules (only inside an imported set, dropped with it,
 * within the budget, the original's pages released after packing). Per call, packing cost
 * about a fifth to a third of a 384-channel conv on a 16x16 latent, half of one on 8x8. */
const uint16_t * infvsr__wcache_conv_amx(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a,
                                         int64_t strips, int64_t Cp) {
    struct infvsr_cpu_wcache * wc = &c->wcache;
    const int64_t taps = a->kt * a->kh * a->kw;
    for (size_t i = 0; i < wc->n_packed; i++) {
        const struct infvsr_cpu_packed * p = &wc->packed[i];
        if (p->data == a->w.data && p->N == a->cout && p->K == a->cin && p->taps == taps && p->dtype == a->w.dtype) {
            wc->hits++;
            return p->panel;
        }
    }
    if (wc->n_ranges == 0) return NULL;
    const size_t wbytes = (size_t)(a->cout * a->cin * taps) * infvsr_dtype_size(a->w.dtype);
    const uint64_t token = owner(wc, (uintptr_t)a->w.data, (uintptr_t)a->w.data + wbytes);
    if (!token) return NULL;
    const size_t bytes = (size_t)(strips * taps * Cp * 16) * sizeof(uint16_t);
    if (bytes > wc->budget || wc->bytes > wc->budget - bytes) return NULL;
    if (!grow((void **)&wc->packed, &wc->cap_packed, wc->n_packed + 1, sizeof *wc->packed)) return NULL;
    uint16_t * panel = alloc_panel(bytes);
    if (!panel) return NULL;
    infvsr__conv3d_bf16_pack_w(c, a, panel, strips, Cp);
    release_original(a->w.data, wbytes);
    wc->packed[wc->n_packed++] = (struct infvsr_cpu_packed){ .data = a->w.data, .N = a->cout, .K = a->cin, .taps = taps,
                                                             .dtype = a->w.dtype, .token = token, .panel = panel,
                                                             .bytes = bytes };
    wc->bytes += bytes;
    wc->packs++;
    wc->hits++;
    return panel;
}
