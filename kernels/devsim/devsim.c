/* devsim: the device-emulating test backend. The CPU backend's kernels behind device-style
 * memory, so that engine code which forgets it is talking to a device fails on every
 * machine instead of on a customer's GPU:
 *
 *  - Storage the host cannot dereference. A tensor's data is an address inside a
 *    PROT_NONE reservation (devsim_mem.c): any host read or write is a SIGSEGV; pointer
 *    arithmetic for views is fine. Every op translates each operand to its shadow address
 *    and checks that the tensor lies inside one live allocation (use after free and
 *    out-of-range views are refused with INFVSR_ERR_INVALID_ARG naming the tensor); a host
 *    tensor (e.g. a weight that was never imported) is refused the same way.
 *  - Results visible only after synchronize. tensor_set copies before it returns;
 *    tensor_get snapshots the bytes at call time (stream order) into a staging buffer,
 *    fills the caller's buffer with 0xFF bytes (NaN as f32/bf16) and copies the snapshot
 *    there only in infvsr_backend_synchronize. Code that reads after a get without
 *    synchronizing reads NaNs. Ops run eagerly: the host cannot observe device memory.
 *  - bf16 activations (opts.precision = bf16: caps.act_dtype BF16). Every op accepts f32
 *    and bf16 activations, as CUDA does; devsim widens bf16 operands to f32, runs the CPU
 *    kernel and rounds bf16 outputs once on store (devsim_ops.c), the CUDA numerics.
 *  - Device faults. opts.devsim_fault_at_op = N (or INFVSR_DEVSIM_FAULT_AT_OP=N): the
 *    Nth op call (every op slot, copies included; memory calls do not count) fails with
 *    INFVSR_ERR_DEVICE, and the backend is unhealthy for good, as CUDA's is: last_error
 *    says why, every later op, tensor_set/get, tensor_alloc and synchronize fail with
 *    INFVSR_ERR_DEVICE (tensor_free and free still work).
 *
 * Capacity: opts.devsim_capacity bytes (0: 16 GiB), or INFVSR_DEVSIM_CAPACITY_MB; it is
 * address space (MAP_NORESERVE), only what tests touch costs RAM. INFVSR_ERR_NOMEM with
 * the numbers when full.
 *
 * Threads: one backend = one worker thread, like a CUDA stream. Nothing here locks; the
 * caller serialises all calls on one backend (the CPU kernels inside use their pool). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devsim_impl.h"

static const char * tname(const struct infvsr_tensor * t) { return t->name[0] ? t->name : "(unnamed)"; }

/* ---- health and fault injection ---- */

static enum infvsr_status unhealthy(struct devsim * d, struct infvsr_err * err) {
    return infvsr_err_set(err, INFVSR_ERR_DEVICE, "devsim backend unhealthy: %s", d->first_error);
}

enum infvsr_status devsim_check_healthy(struct devsim * d, struct infvsr_err * err) {
    return d->failed ? unhealthy(d, err) : INFVSR_OK;
}

enum infvsr_status devsim_enter_op(struct devsim * d, const char * op, struct infvsr_err * err) {
    INFVSR_TRY(devsim_check_healthy(d, err));
    d->op_count++;
    if (d->fault_at > 0 && d->op_count == d->fault_at) {
        d->failed = true;
        snprintf(d->first_error, sizeof d->first_error, "devsim: injected device fault at op %lld (%s)",
                 (long long)d->op_count, op);
        return infvsr_err_set(err, INFVSR_ERR_DEVICE, "%s", d->first_error);
    }
    return INFVSR_OK;
}

/* ---- object slots ---- */

const char * devsim_name(struct infvsr_backend * be) { return devsim_ctx(be)->name; }

void devsim_get_caps(struct infvsr_backend * be, struct infvsr_backend_caps * caps) {
    struct devsim * d = devsim_ctx(be);
    snprintf(caps->name, sizeof caps->name, "%s", d->name);
    snprintf(caps->device, sizeof caps->device, "devsim (CPU kernels behind unreadable memory), %d threads",
             d->n_threads);
    caps->host_visible = false;
    caps->act_dtype    = d->act_dtype;
    caps->act_f32      = true;
    caps->act_bf16     = true;
    caps->mem_total    = d->heap.capacity;
    caps->mem_free     = d->heap.capacity - d->heap.live_bytes;
}

const char * devsim_last_error(struct infvsr_backend * be) {
    struct devsim * d = devsim_ctx(be);
    return d->failed ? d->first_error : "";
}

static void drop_pending(struct devsim * d) {
    for (size_t i = 0; i < d->n_pending; i++) free(d->pending[i].staging);
    d->n_pending = 0;
}

void devsim_free(struct infvsr_backend * be) {
    struct devsim * d = devsim_ctx(be);
    drop_pending(d);
    free(d->pending);
    /* Unmapping the heap frees every tensor still alive: nothing leaks (they are views
     * into the mappings, not malloc'd), whatever the caller forgot. */
    devsim_heap_free(&d->heap);
    infvsr_backend_free(d->cpu);
    free(d);
}

/* ---- memory slots ---- */

enum infvsr_status devsim_tensor_alloc(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    struct devsim * d = devsim_ctx(be);
    INFVSR_TRY(devsim_check_healthy(d, err));
    int64_t numel;
    size_t  es = infvsr_dtype_size(t->dtype), bytes;
    if (t->ndim < 0 || t->ndim > INFVSR_MAX_DIMS || es == 0 || !infvsr_shape_numel(t->ndim, t->shape, &numel) ||
        __builtin_mul_overflow((size_t)numel, es, &bytes)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim tensor_alloc: '%s' has an invalid dtype or shape",
                              tname(t));
    }
    size_t off;
    enum infvsr_status st = devsim_heap_alloc(&d->heap, bytes, &off, err);
    if (st != INFVSR_OK) {
        infvsr_err_prefix(err, "tensor_alloc '%s'", tname(t));
        return st;
    }
    t->data      = d->heap.base + off;
    t->mem       = INFVSR_MEM_DEVICE;
    t->owns_data = true;
    return INFVSR_OK;
}

void devsim_tensor_free(struct infvsr_backend * be, struct infvsr_tensor * t) {
    struct devsim * d = devsim_ctx(be);
    if (!t || !t->data || !t->owns_data) return;
    uintptr_t a = (uintptr_t)t->data, base = (uintptr_t)d->heap.base;
    if (a < base || a - base >= d->heap.capacity || !devsim_heap_release(&d->heap, a - base)) {
        /* A programmer error the CUDA backend would turn into heap corruption: stop here. */
        fprintf(stderr, "devsim tensor_free: '%s' (data %p) is not the start of a live allocation of %s (double "
                "free, a view marked owns_data, or another backend's tensor)\n", tname(t), t->data, d->name);
        abort();
    }
    t->data      = NULL;
    t->owns_data = false;
}

/* The tensor inside one live allocation and [offset, offset + nbytes) inside the tensor. */
static enum infvsr_status copy_range(struct devsim * d, const char * op, const struct infvsr_tensor * t,
                                     size_t offset, size_t nbytes, const void * host_buf, char ** shadow,
                                     struct infvsr_err * err) {
    struct infvsr_tensor h;
    INFVSR_TRY(devsim_translate(d, op, "the", t, &h, err));
    size_t total = infvsr_tensor_nbytes(t);
    if (offset > total || nbytes > total - offset) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: '%s' range [%zu, +%zu) outside its %zu bytes",
                              op, tname(t), offset, nbytes, total);
    }
    if (nbytes && !host_buf) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: host buffer is NULL", op);
    *shadow = (char *)h.data + offset;
    return INFVSR_OK;
}

enum infvsr_status devsim_tensor_set(struct infvsr_backend * be, struct infvsr_tensor * t, const void * src,
                                     size_t offset, size_t nbytes, struct infvsr_err * err) {
    struct devsim * d = devsim_ctx(be);
    char * shadow = NULL;
    INFVSR_TRY(devsim_check_healthy(d, err));
    INFVSR_TRY(copy_range(d, "tensor_set", t, offset, nbytes, src, &shadow, err));
    if (nbytes) memcpy(shadow, src, nbytes);
    return INFVSR_OK;
}

enum infvsr_status devsim_tensor_get(struct infvsr_backend * be, const struct infvsr_tensor * t, void * dst,
                                     size_t offset, size_t nbytes, struct infvsr_err * err) {
    struct devsim * d = devsim_ctx(be);
    char * shadow = NULL;
    INFVSR_TRY(devsim_check_healthy(d, err));
    INFVSR_TRY(copy_range(d, "tensor_get", t, offset, nbytes, dst, &shadow, err));
    if (nbytes == 0) return INFVSR_OK;
    if (d->n_pending == d->cap_pending) {
        size_t n = d->cap_pending ? 2 * d->cap_pending : 16;
        struct devsim_pending * p = realloc(d->pending, n * sizeof *p);
        if (!p) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "devsim tensor_get: out of host memory");
        d->pending     = p;
        d->cap_pending = n;
    }
    void * staging = malloc(nbytes);
    if (!staging) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "devsim tensor_get: out of host memory for a %zu-byte "
                              "staging buffer", nbytes);
    }
    memcpy(staging, shadow, nbytes);
    memset(dst, 0xFF, nbytes); /* poison: the data arrives at synchronize */
    d->pending[d->n_pending++] = (struct devsim_pending){ .dst = dst, .staging = staging, .n = nbytes };
    return INFVSR_OK;
}

enum infvsr_status devsim_synchronize(struct infvsr_backend * be, struct infvsr_err * err) {
    struct devsim * d = devsim_ctx(be);
    if (d->failed) {
        drop_pending(d); /* copies queued behind a fault never complete */
        return unhealthy(d, err);
    }
    for (size_t i = 0; i < d->n_pending; i++) memcpy(d->pending[i].dst, d->pending[i].staging, d->pending[i].n);
    drop_pending(d);
    return INFVSR_OK;
}

/* ---- construction ---- */

/* Decimal integer in [lo, hi] from the environment; *set false when the variable is unset. */
static enum infvsr_status env_int(const char * name, long long lo, long long hi, long long * v, bool * set,
                                  struct infvsr_err * err) {
    const char * s = getenv(name);
    *set = false;
    if (!s || !*s) return INFVSR_OK;
    char * end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend devsim: %s='%s': expected an integer in "
                              "[%lld, %lld]", name, s, lo, hi);
    }
    *v   = x;
    *set = true;
    return INFVSR_OK;
}

enum infvsr_status infvsr_devsim_backend_init(int index, const struct infvsr_backend_opts * opts,
                                              struct infvsr_backend ** out, struct infvsr_err * err) {
    if (!out) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend devsim: out is NULL");
    *out = NULL;
    struct infvsr_backend_opts o = opts ? *opts : infvsr_backend_default_opts();
    if (index < 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend devsim: bad index %d", index);
    if (o.precision != INFVSR_PRECISION_AUTO && o.precision != INFVSR_PRECISION_F32 &&
        o.precision != INFVSR_PRECISION_BF16) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend devsim: unknown precision %d", (int)o.precision);
    }
    if (o.devsim_fault_at_op < 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend devsim: devsim_fault_at_op %lld < 0",
                              (long long)o.devsim_fault_at_op);
    }
    size_t capacity = o.devsim_capacity ? o.devsim_capacity : DEVSIM_DEFAULT_CAPACITY;
    long long v;
    bool set;
    INFVSR_TRY(env_int("INFVSR_DEVSIM_CAPACITY_MB", 1, 4ll << 20, &v, &set, err)); /* up to 4 TiB */
    if (set) capacity = (size_t)v << 20;
    int64_t fault_at = o.devsim_fault_at_op;
    INFVSR_TRY(env_int("INFVSR_DEVSIM_FAULT_AT_OP", 0, INT64_MAX, &v, &set, err));
    if (set) fault_at = v;

    struct devsim * d = calloc(1, sizeof *d);
    if (!d) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "backend devsim: out of host memory");
    enum infvsr_status st = devsim_heap_init(&d->heap, capacity, err);
    if (st != INFVSR_OK) {
        free(d);
        return st;
    }
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    p.n_threads = o.n_threads;
    p.use_ref   = o.cpu_reference;
    if ((st = infvsr_cpu_backend_init(&p, &d->cpu)) != INFVSR_OK) {
        devsim_heap_free(&d->heap);
        free(d);
        return infvsr_err_set(err, st, "backend devsim: cannot start the CPU kernels (%s)", infvsr_status_str(st));
    }
    /* The CPU thread pool's rule for n_threads = 0 (all online cores). */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    d->n_threads = o.n_threads > 0 ? o.n_threads : (online > 0 ? (int)online : 1);
    d->act_dtype = o.precision == INFVSR_PRECISION_BF16 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32;
    d->fault_at  = fault_at;
    if (index == 0) snprintf(d->name, sizeof d->name, "devsim");
    else snprintf(d->name, sizeof d->name, "devsim:%d", index);
    d->be.iface   = &devsim_iface;
    d->be.context = d;
    d->be.mem     = INFVSR_MEM_DEVICE;
    *out = &d->be;
    return INFVSR_OK;
}
