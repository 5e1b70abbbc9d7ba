/* devsim's simulated device memory: a PROT_NONE reservation whose addresses tensors carry,
 * a shadow mapping holding the bytes, and a first-fit allocator over offsets.
 *
 * Why two mappings: the host must crash on any dereference of a tensor's data (as it
 * would on a GPU pointer), yet views made by pointer arithmetic must keep working and the
 * kernels need real memory. So a tensor's address lives in a range that is never
 * accessible, and devsim alone maps it to the same offset in the shadow. Both are
 * MAP_NORESERVE: only the pages the tests touch cost memory, so the default 16 GiB of
 * "device memory" is address space, not RAM (2 x 16 GiB of the 128 TiB a 64-bit process
 * has). Both are excluded from core dumps (a crashing test would otherwise write a
 * 32 GiB sparse core).
 *
 * Bookkeeping: two arrays sorted by offset, the live blocks (binary search answers "is
 * this view inside one live allocation" in O(log n)) and the free extents (first fit,
 * coalesced on free). The free array is grown at allocation time so that a free never
 * needs memory (the number of free extents is at most live + quarantined blocks + 1).
 * Free memory is kept zero: a freed block is zeroed (whole pages handed back with
 * MADV_DONTNEED, which also returns them to the OS), so allocations are zero-filled
 * without a pass.
 *
 * Quarantine: a freed block is not reusable at once. With immediate first-fit reuse the
 * commonest use-after-free (free a buffer, allocate one of the same size, keep using the
 * old tensor) would land in the new block and go unnoticed; held back, the stale tensor
 * points at memory no live block owns and devsim_translate refuses it. Quarantined bytes
 * count as free in the caps, and an allocation that does not fit drains the quarantine
 * before it fails, so capacity behaves as without it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devsim_impl.h"

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

enum infvsr_status devsim_heap_init(struct devsim_heap * h, size_t capacity, struct infvsr_err * err) {
    memset(h, 0, sizeof *h);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (page < DEVSIM_ALIGN) page = DEVSIM_ALIGN;
    if (capacity == 0 || capacity > SIZE_MAX / 4) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim: capacity %zu bytes is out of range", capacity);
    }
    capacity = round_up(capacity, page);
    void * base = mmap(NULL, capacity, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "devsim: cannot reserve %zu MiB of address space (%s; is "
                              "ulimit -v set? set INFVSR_DEVSIM_CAPACITY_MB lower)", capacity >> 20, strerror(errno));
    }
    void * shadow = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (shadow == MAP_FAILED) {
        int e = errno;
        munmap(base, capacity);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM,
                              "devsim: cannot map a %zu MiB shadow (%s; vm.overcommit_memory=2 refuses "
                              "MAP_NORESERVE: set INFVSR_DEVSIM_CAPACITY_MB lower)", capacity >> 20, strerror(e));
    }
#ifdef MADV_DONTDUMP
    (void)madvise(base, capacity, MADV_DONTDUMP);
    (void)madvise(shadow, capacity, MADV_DONTDUMP);
#endif
    h->base     = base;
    h->shadow   = shadow;
    h->capacity = capacity;
    h->free       = malloc(4 * sizeof *h->free);
    h->live       = malloc(4 * sizeof *h->live);
    h->quarantine = malloc(DEVSIM_QUARANTINE_MAX * sizeof *h->quarantine);
    h->q_limit    = capacity / 8;
    if (!h->free || !h->live || !h->quarantine) {
        devsim_heap_free(h);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "devsim: out of host memory");
    }
    h->cap_free = h->cap_live = 4;
    h->free[0]  = (struct devsim_block){ .off = 0, .size = capacity, .bytes = 0 };
    h->n_free   = 1;
    return INFVSR_OK;
}

void devsim_heap_free(struct devsim_heap * h) {
    if (h->base) munmap(h->base, h->capacity);
    if (h->shadow) munmap(h->shadow, h->capacity);
    free(h->free);
    free(h->live);
    free(h->quarantine);
    memset(h, 0, sizeof *h);
}

static bool grow(struct devsim_block ** a, size_t * cap, size_t need) {
    if (need <= *cap) return true;
    size_t n = *cap * 2 > need ? *cap * 2 : need;
    struct devsim_block * p = realloc(*a, n * sizeof *p);
    if (!p) return false;
    *a   = p;
    *cap = n;
    return true;
}

/* First index in a[0..n) whose off is > off (upper bound). */
static size_t upper(const struct devsim_block * a, size_t n, size_t off) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid].off <= off) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void insert_at(struct devsim_block * a, size_t * n, size_t i, struct devsim_block b) {
    memmove(a + i + 1, a + i, (*n - i) * sizeof *a);
    a[i] = b;
    (*n)++;
}

static void remove_at(struct devsim_block * a, size_t * n, size_t i) {
    memmove(a + i, a + i + 1, (*n - i - 1) * sizeof *a);
    (*n)--;
}

/* First fit; false when no free extent is large enough. */
static bool take(struct devsim_heap * h, size_t size, size_t bytes, size_t * off) {
    for (size_t i = 0; size && i < h->n_free; i++) {
        if (h->free[i].size < size) continue;
        struct devsim_block b = { .off = h->free[i].off, .size = size, .bytes = bytes };
        h->free[i].off += size;
        h->free[i].size -= size;
        if (h->free[i].size == 0) remove_at(h->free, &h->n_free, i);
        insert_at(h->live, &h->n_live, upper(h->live, h->n_live, b.off), b);
        h->live_bytes += size;
        *off = b.off;
        return true;
    }
    return false;
}

static void drain_one(struct devsim_heap * h);

enum infvsr_status devsim_heap_alloc(struct devsim_heap * h, size_t bytes, size_t * off, struct infvsr_err * err) {
    size_t size = bytes > h->capacity ? 0 : round_up(bytes ? bytes : 1, DEVSIM_ALIGN);
    /* Room for the new live entry, and for the free list's worst case after any frees
     * (extents <= live + quarantined blocks + 1), so that a free never allocates. */
    if (!grow(&h->live, &h->cap_live, h->n_live + 1) ||
        !grow(&h->free, &h->cap_free, h->n_live + DEVSIM_QUARANTINE_MAX + 2)) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "devsim: out of host memory for the block table");
    }
    if (take(h, size, bytes, off)) return INFVSR_OK;
    if (size && h->n_q) { /* no room: the quarantine goes back before we give up */
        while (h->n_q) drain_one(h);
        if (take(h, size, bytes, off)) return INFVSR_OK;
    }
    return infvsr_err_set(err, INFVSR_ERR_NOMEM, "devsim: out of device memory: %zu bytes requested, capacity %zu, "
                          "%zu in use by %zu allocations, largest free block %zu (raise devsim_capacity or "
                          "INFVSR_DEVSIM_CAPACITY_MB)", bytes, h->capacity, h->live_bytes, h->n_live,
                          devsim_heap_largest_free(h));
}

/* Zeroes [off, off + n) of the shadow: whole pages go back to the OS (they read as zero
 * on the next touch), the ragged ends are cleared by hand. */
static void zero_range(struct devsim_heap * h, size_t off, size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char * p = h->shadow + off, * end = p + n;
    if (n >= 16 * page) {
        char * a = (char *)round_up((uintptr_t)p, page), * b = (char *)((uintptr_t)end / page * page);
        if (madvise(a, (size_t)(b - a), MADV_DONTNEED) == 0) {
            memset(p, 0, (size_t)(a - p));
            memset(b, 0, (size_t)(end - b));
            return;
        }
    }
    memset(p, 0, n);
}

/* Block b into the free list (capacity reserved at alloc), merged with its neighbours. */
static void add_free(struct devsim_heap * h, struct devsim_block b) {
    b.bytes = 0;
    size_t j = upper(h->free, h->n_free, b.off);
    if (j > 0 && h->free[j - 1].off + h->free[j - 1].size == b.off) {
        h->free[j - 1].size += b.size;
        if (j < h->n_free && h->free[j - 1].off + h->free[j - 1].size == h->free[j].off) {
            h->free[j - 1].size += h->free[j].size;
            remove_at(h->free, &h->n_free, j);
        }
    } else if (j < h->n_free && b.off + b.size == h->free[j].off) {
        h->free[j].off = b.off;
        h->free[j].size += b.size;
    } else {
        insert_at(h->free, &h->n_free, j, b);
    }
}

/* The oldest quarantined block becomes reusable. */
static void drain_one(struct devsim_heap * h) {
    struct devsim_block b = h->quarantine[h->q_head];
    h->q_head = (h->q_head + 1) % DEVSIM_QUARANTINE_MAX;
    h->n_q--;
    h->q_bytes -= b.size;
    add_free(h, b);
}

bool devsim_heap_release(struct devsim_heap * h, size_t off) {
    size_t i = upper(h->live, h->n_live, off);
    if (i == 0 || h->live[i - 1].off != off) return false;
    struct devsim_block b = h->live[i - 1];
    remove_at(h->live, &h->n_live, i - 1);
    h->live_bytes -= b.size;
    zero_range(h, b.off, b.size);
    if (h->n_q == DEVSIM_QUARANTINE_MAX) drain_one(h);
    h->quarantine[(h->q_head + h->n_q) % DEVSIM_QUARANTINE_MAX] = b;
    h->n_q++;
    h->q_bytes += b.size;
    while (h->q_bytes > h->q_limit) drain_one(h);
    return true;
}

enum devsim_where devsim_heap_find(const struct devsim_heap * h, const void * addr, size_t n, void ** shadow,
                                   const struct devsim_block ** blk) {
    if (blk) *blk = NULL;
    uintptr_t a = (uintptr_t)addr, base = (uintptr_t)h->base;
    if (a < base || a - base >= h->capacity) return DEVSIM_NOT_DEVSIM;
    size_t off = a - base;
    size_t i = upper(h->live, h->n_live, off);
    if (i == 0) return DEVSIM_NOT_LIVE;
    const struct devsim_block * b = &h->live[i - 1];
    size_t rel = off - b->off;
    if (rel >= b->size) return DEVSIM_NOT_LIVE; /* in a gap: freed, or never allocated */
    if (blk) *blk = b;
    if (rel > b->bytes || n > b->bytes - rel) return DEVSIM_NOT_LIVE;
    *shadow = h->shadow + off;
    return DEVSIM_LIVE;
}

size_t devsim_heap_largest_free(const struct devsim_heap * h) {
    size_t m = 0;
    for (size_t i = 0; i < h->n_free; i++)
        if (h->free[i].size > m) m = h->free[i].size;
    return m;
}

static const char * tname(const struct infvsr_tensor * t) { return t->name[0] ? t->name : "(unnamed)"; }

enum infvsr_status devsim_translate(struct devsim * d, const char * op, const char * role,
                                    const struct infvsr_tensor * t, struct infvsr_tensor * host,
                                    struct infvsr_err * err) {
    if (!t) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor is NULL", op, role);
    int64_t numel;
    size_t  es = infvsr_dtype_size(t->dtype), bytes;
    if (t->ndim < 0 || t->ndim > INFVSR_MAX_DIMS || es == 0 || !infvsr_shape_numel(t->ndim, t->shape, &numel) ||
        __builtin_mul_overflow((size_t)numel, es, &bytes)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor '%s' has an invalid dtype or shape",
                              op, role, tname(t));
    }
    if (t->mem != INFVSR_MEM_DEVICE) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor '%s' is in host memory (not "
                              "imported/allocated on this backend?)", op, role, tname(t));
    }
    *host     = *t;
    host->mem = INFVSR_MEM_HOST;
    host->owns_data = false;
    uintptr_t a = (uintptr_t)t->data, base = (uintptr_t)d->heap.base;
    if (bytes == 0) { /* touches nothing: only its address must make sense */
        if (t->data && (a < base || a - base > d->heap.capacity)) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor '%s' (data %p) is not devsim "
                                  "memory", op, role, tname(t), t->data);
        }
        host->data = t->data ? d->heap.shadow + (a - base) : NULL;
        return INFVSR_OK;
    }
    void * shadow = NULL;
    const struct devsim_block * b = NULL;
    switch (devsim_heap_find(&d->heap, t->data, bytes, &shadow, &b)) {
    case DEVSIM_LIVE:
        host->data = shadow;
        return INFVSR_OK;
    case DEVSIM_NOT_DEVSIM:
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor '%s' (data %p) is not devsim "
                              "memory: a host pointer or another backend's (never imported/allocated on %s?)", op,
                              role, tname(t), t->data, d->name);
    case DEVSIM_NOT_LIVE:
        break;
    }
    size_t off = (size_t)(a - base);
    if (b) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor '%s' [offset %zu, +%zu bytes) runs "
                              "%zu bytes past the end of its allocation [%zu, +%zu) (out-of-range view)", op, role,
                              tname(t), off, bytes, off + bytes - (b->off + b->bytes), b->off, b->bytes);
    }
    return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor '%s' [offset %zu, +%zu bytes) is not in "
                          "any live allocation (used after free?)", op, role, tname(t), off, bytes);
}
