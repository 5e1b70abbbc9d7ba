/* devsim internals: the backend object, its simulated device memory and the helpers the op
 * slots use to hand devsim tensors to the CPU backend's kernels.
 *
 *   devsim_mem.c   the reservation (PROT_NONE addresses) + shadow (the bytes), allocator,
 *                  address -> shadow translation with the "inside one live block" check
 *   devsim.c       backend object: init/free, caps, health + fault injection, tensor
 *                  set/get/synchronize (gets are delivered only at synchronize)
 *   devsim_ops.c   every op slot: translate operands, widen bf16 activations to f32, run
 *                  the CPU kernel, round bf16 outputs once on store */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend_impl.h"

#define DEVSIM_ALIGN            256u              /* every block starts 256-byte aligned   */
#define DEVSIM_DEFAULT_CAPACITY ((size_t)16 << 30) /* 16 GiB of address space, not memory */
#define DEVSIM_QUARANTINE_MAX   4096u             /* freed blocks held back from reuse     */

/* One block of the simulated device memory, as offsets from the reservation's base. */
struct devsim_block {
    size_t off;
    size_t size;   /* rounded up to DEVSIM_ALIGN: what the block occupies */
    size_t bytes;  /* what was asked for: views must stay inside these    */
};

/* Simulated device memory. `base` is a PROT_NONE reservation: the addresses tensors carry,
 * which the host cannot dereference (any read or write is a SIGSEGV). `shadow` is a
 * read/write mapping of the same size at another address holding the real bytes; only
 * devsim translates (addr - base + shadow). Free memory is kept zeroed (zeroed when a
 * block is freed), so allocation hands out zero-filled storage without touching it.
 * Freed blocks wait in a quarantine (FIFO, at most DEVSIM_QUARANTINE_MAX blocks and
 * capacity / 8 bytes) before they can be handed out again, so that a stale tensor still
 * points at memory no live allocation owns and is refused; an allocation that finds no
 * room drains the quarantine before it reports NOMEM. */
struct devsim_heap {
    char *                base;
    char *                shadow;
    size_t                capacity;
    size_t                live_bytes;          /* sum of the live blocks' sizes             */
    struct devsim_block * live;                /* sorted by off                            */
    size_t                n_live, cap_live;
    struct devsim_block * free;                /* sorted by off, coalesced; .bytes unused  */
    size_t                n_free, cap_free;
    struct devsim_block * quarantine;          /* ring of DEVSIM_QUARANTINE_MAX, oldest at q_head */
    size_t                q_head, n_q, q_bytes, q_limit;
};

/* Why an address range is not usable device memory. */
enum devsim_where {
    DEVSIM_LIVE = 0,     /* inside one live block                                       */
    DEVSIM_NOT_DEVSIM,   /* not inside the reservation: a host pointer or another backend's */
    DEVSIM_NOT_LIVE,     /* inside the reservation but not inside one live block        */
};

enum infvsr_status devsim_heap_init(struct devsim_heap * h, size_t capacity, struct infvsr_err * err);
void               devsim_heap_free(struct devsim_heap * h);
/* First fit; *off of a zero-filled block of at least `bytes` (>= 1 block even for 0). */
enum infvsr_status devsim_heap_alloc(struct devsim_heap * h, size_t bytes, size_t * off, struct infvsr_err * err);
/* Frees the block starting exactly at off; false if there is none (double free, a view). */
bool               devsim_heap_release(struct devsim_heap * h, size_t off);
/* Classifies [addr, addr + n); on DEVSIM_LIVE sets *shadow to the host address of addr.
 * *blk (may be NULL) gets the live block containing addr when there is one (else NULL). */
enum devsim_where  devsim_heap_find(const struct devsim_heap * h, const void * addr, size_t n, void ** shadow,
                                    const struct devsim_block ** blk);
size_t             devsim_heap_largest_free(const struct devsim_heap * h);

/* A tensor_get waiting for synchronize: the bytes as they were when it was called. */
struct devsim_pending {
    void * dst;
    void * staging;
    size_t n;
};

struct devsim {
    struct infvsr_backend   be;        /* header; be.context points back here            */
    struct infvsr_backend * cpu;       /* the CPU backend whose kernels run every op     */
    struct devsim_heap      heap;
    char                    name[32];  /* "devsim" or "devsim:N"                         */
    enum infvsr_dtype       act_dtype; /* F32, or BF16 when opened with precision bf16   */
    int                     n_threads;
    int64_t                 op_count;  /* op slot calls so far                            */
    int64_t                 fault_at;  /* > 0: op call number that fails                  */
    bool                    failed;
    char                    first_error[256];
    struct devsim_pending * pending;
    size_t                  n_pending, cap_pending;
};

static inline struct devsim * devsim_ctx(struct infvsr_backend * be) {
    return (struct devsim *)be->context;
}

/* Every op slot starts here: refuses work on a failed backend, counts the call and
 * injects the configured fault. */
enum infvsr_status devsim_enter_op(struct devsim * d, const char * op, struct infvsr_err * err);
/* For memory calls (set/get/alloc/synchronize): refuses work on a failed backend. */
enum infvsr_status devsim_check_healthy(struct devsim * d, struct infvsr_err * err);

/* A host view of devsim tensor t for the CPU kernels: same metadata, data = its shadow
 * address, mem = HOST. Refuses (INFVSR_ERR_INVALID_ARG, naming op, role and tensor) a
 * tensor that is not devsim memory or that is not entirely inside one live allocation. */
enum infvsr_status devsim_translate(struct devsim * d, const char * op, const char * role,
                                    const struct infvsr_tensor * t, struct infvsr_tensor * host,
                                    struct infvsr_err * err);

/* The object and memory slots (devsim.c). */
const char *       devsim_name(struct infvsr_backend * be);
void               devsim_get_caps(struct infvsr_backend * be, struct infvsr_backend_caps * caps);
const char *       devsim_last_error(struct infvsr_backend * be);
void               devsim_free(struct infvsr_backend * be);
enum infvsr_status devsim_tensor_alloc(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err);
void               devsim_tensor_free(struct infvsr_backend * be, struct infvsr_tensor * t);
enum infvsr_status devsim_tensor_set(struct infvsr_backend * be, struct infvsr_tensor * t, const void * src,
                                     size_t offset, size_t nbytes, struct infvsr_err * err);
enum infvsr_status devsim_tensor_get(struct infvsr_backend * be, const struct infvsr_tensor * t, void * dst,
                                     size_t offset, size_t nbytes, struct infvsr_err * err);
enum infvsr_status devsim_synchronize(struct infvsr_backend * be, struct infvsr_err * err);

/* The whole vtable (devsim_ops.c, next to the op slots). */
extern const struct infvsr_backend_i devsim_iface;
