/* Weight import: the one path by which a module's weights (and the constant tables it
 * derives from them at load: DAPE-merged qkv, Swin index tables and masks, ...) become
 * usable by its backend. A module registers every such tensor, then commits once:
 *
 *   struct infvsr_weight_set ws;
 *   infvsr_weight_set_init(&ws);
 *   infvsr_weight_set_add(&ws, &blk->qkv_w, 0, err);       // views into the mapping, or
 *   infvsr_weight_set_add(&ws, &table, 0, err);            // owned host tensors
 *   infvsr_weight_set_commit(&ws, be, err);                // now usable by ops on `be`
 *   ... make derived views (row slices of qkv_w, ...) only after this point ...
 *   infvsr_weight_set_release(&ws, be);                    // at model free
 *
 * On a host-visible backend (cpu) nothing moves: views stay views into the mapped file,
 * so memory and load time are unchanged. On a device backend every registered tensor is
 * copied once into ONE allocation: as shipped (bf16 checkpoints stay bf16), except that an
 * F32 weight is converted to bf16 when the backend computes in bf16 (the official pipeline
 * runs `.to(bfloat16)` on the f32 VAE and Swin weights). Each tensor's data/mem/dtype is
 * rewritten in place to point into that allocation and an owned host copy is freed.
 * Registered tensors that share storage (same data pointer, dtype and size) share one copy.
 * Commit also tells the backend that these tensors are weights, immutable until release
 * (infvsr_backend_weights_imported): the CPU backend keeps its packed bf16 GEMM operands
 * for them in that window and drops them at release. */
#pragma once

#include <stddef.h>

#include "infvsr/backend.h"

/* Keep the stored dtype even on a bf16 backend (index tables, f64 RoPE tables, ...). */
#define INFVSR_WEIGHT_KEEP_DTYPE 1u

struct infvsr_weight_item {
    struct infvsr_tensor * t;
    unsigned               flags;
};

struct infvsr_weight_set {
    struct infvsr_weight_item * items;
    size_t                      n, cap;
    struct infvsr_tensor        storage;         /* the device allocation (empty on host) */
    size_t                      resident_bytes;  /* device bytes held (0 on host)         */
    uint64_t                    backend_token;   /* of weights_imported (0: none)         */
    bool                        committed;
};

void               infvsr_weight_set_init(struct infvsr_weight_set * ws);
/* `t` must stay at this address until commit. */
enum infvsr_status infvsr_weight_set_add(struct infvsr_weight_set * ws, struct infvsr_tensor * t, unsigned flags,
                                         struct infvsr_err * err);
enum infvsr_status infvsr_weight_set_commit(struct infvsr_weight_set * ws, struct infvsr_backend * be,
                                            struct infvsr_err * err);
/* Frees the device allocation (owned host tensors that were never committed are freed too). */
void               infvsr_weight_set_release(struct infvsr_weight_set * ws, struct infvsr_backend * be);
