/* Bounded LRU plan caches and their keys (plan_cache.h). */
#include "plan_cache.h"

#include <stdlib.h>
#include <string.h>

struct plan_entry {
    struct cu_plan_key key;
    uint64_t           hash;
    uint64_t           last_use; /* tick of the last get/put: the smallest is evicted */
    void *             value;    /* NULL: free slot */
};

struct cu_plan_cache {
    struct plan_entry * e;
    size_t              cap, size;
    uint64_t            tick, hits, misses, evictions;
    cu_plan_destroy_fn  destroy;
    void *              user;
};

/* FNV-1a over the key's bytes: cheap, and only a filter before the full compare. */
static uint64_t key_hash(const struct cu_plan_key * k) {
    const unsigned char * b = (const unsigned char *)k->w;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof k->w; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

struct cu_plan_cache * cu_plan_cache_create(size_t capacity, cu_plan_destroy_fn destroy, void * user) {
    if (capacity == 0) return NULL;
    struct cu_plan_cache * pc = calloc(1, sizeof *pc);
    if (!pc) return NULL;
    pc->e = calloc(capacity, sizeof *pc->e);
    if (!pc->e) {
        free(pc);
        return NULL;
    }
    pc->cap = capacity;
    pc->destroy = destroy;
    pc->user = user;
    return pc;
}

void cu_plan_cache_free(struct cu_plan_cache * pc) {
    if (!pc) return;
    for (size_t i = 0; i < pc->cap; i++)
        if (pc->e[i].value && pc->destroy) pc->destroy(pc->e[i].value, pc->user);
    free(pc->e);
    free(pc);
}

static struct plan_entry * find(const struct cu_plan_cache * pc, const struct cu_plan_key * key) {
    const uint64_t h = key_hash(key);
    for (size_t i = 0; i < pc->cap; i++) {
        struct plan_entry * e = &pc->e[i];
        if (e->value && e->hash == h && memcmp(&e->key, key, sizeof *key) == 0) return e;
    }
    return NULL;
}

void * cu_plan_cache_get(struct cu_plan_cache * pc, const struct cu_plan_key * key) {
    struct plan_entry * e = find(pc, key);
    if (!e) {
        pc->misses++;
        return NULL;
    }
    e->last_use = ++pc->tick;
    pc->hits++;
    return e->value;
}

void * cu_plan_cache_peek(const struct cu_plan_cache * pc, const struct cu_plan_key * key) {
    const struct plan_entry * e = find(pc, key);
    return e ? e->value : NULL;
}

void cu_plan_cache_each(const struct cu_plan_cache * pc, void (*fn)(const void * value, void * user), void * user) {
    if (!pc) return;
    for (size_t i = 0; i < pc->cap; i++)
        if (pc->e[i].value) fn(pc->e[i].value, user);
}

void cu_plan_cache_put(struct cu_plan_cache * pc, const struct cu_plan_key * key, void * value) {
    struct plan_entry * slot = find(pc, key);
    if (slot) { /* a new answer for a known key (a plan that failed at run time, say) */
        if (slot->value != value && pc->destroy) pc->destroy(slot->value, pc->user);
        slot->value = value;
        slot->last_use = ++pc->tick;
        return;
    }
    for (size_t i = 0; i < pc->cap && !slot; i++)
        if (!pc->e[i].value) slot = &pc->e[i];
    if (!slot) { /* full: the least recently used entry goes */
        slot = &pc->e[0];
        for (size_t i = 1; i < pc->cap; i++)
            if (pc->e[i].last_use < slot->last_use) slot = &pc->e[i];
        if (pc->destroy) pc->destroy(slot->value, pc->user);
        slot->value = NULL;
        pc->size--;
        pc->evictions++;
    }
    slot->key = *key;
    slot->hash = key_hash(key);
    slot->last_use = ++pc->tick;
    slot->value = value;
    pc->size++;
}

void cu_plan_cache_get_stats(const struct cu_plan_cache * pc, struct cu_plan_cache_stats * out) {
    memset(out, 0, sizeof *out);
    if (!pc) return;
    out->size = pc->size;
    out->capacity = pc->cap;
    out->hits = pc->hits;
    out->misses = pc->misses;
    out->evictions = pc->evictions;
}

/* ---- keys ---- */

enum { KEY_GEMM = 1, KEY_RESIZE = 2 }; /* word 0: which kind of plan (keys never collide across kinds) */

void cu_gemm_plan_key(const struct cu_gemm_shape * s, struct cu_plan_key * key) {
    memset(key, 0, sizeof *key);
    const bool batched = s->batch > 1;
    int64_t * w = key->w;
    int i = 0;
    w[i++] = KEY_GEMM;
    w[i++] = s->trans_a;
    w[i++] = s->trans_b;
    w[i++] = s->m;
    w[i++] = s->n;
    w[i++] = s->k;
    w[i++] = s->lda;
    w[i++] = s->ldb;
    w[i++] = s->ldd;
    w[i++] = batched ? s->batch : 1;
    w[i++] = batched ? s->stride_a : 0; /* a single matrix's layout carries no stride */
    w[i++] = batched ? s->stride_b : 0;
    w[i++] = batched ? s->stride_d : 0;
    w[i++] = s->ab_dtype;
    w[i++] = s->d_dtype;
    w[i++] = s->epilogue;
    w[i++] = s->has_bias;
    w[i++] = s->align_a;
    w[i++] = s->align_b;
    w[i++] = s->align_d;
    _Static_assert(20 <= CU_PLAN_KEY_WORDS, "cu_plan_key too short for a GEMM shape");
}

void cu_resize_plan_key(int mode, int64_t in, int64_t out, struct cu_plan_key * key) {
    memset(key, 0, sizeof *key);
    key->w[0] = KEY_RESIZE;
    key->w[1] = mode;
    key->w[2] = in;
    key->w[3] = out;
}

uint32_t cu_ptr_align(const void * p) {
    uintptr_t v = (uintptr_t)p;
    uint32_t a = 256;
    while (a > 1 && (v % a) != 0) a >>= 1;
    return a;
}
