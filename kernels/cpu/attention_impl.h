/* The flash-attention driver of kernels/cpu/attention.c, shared by its f32 kernels and the
 * native bf16 kernels (attention_bf16.c, attention_amx_body.h): the work split, the walk over the key segments,
 * the online softmax and the final scaling are one code; a kernel set supplies only the
 * tile layouts and the two products.
 *
 * Per pool task (head h, group of up to QGROUP queries from i0), per key block of up to BK
 * keys (segment 0, then segment 1; a block never straddles the two):
 *   pack_kv   the block's keys and values into the task's tiles (zero padded)
 *   for each sub-block of BQ queries (rows r0 .. r0 + nq_blk of the group):
 *     qk      S [nq_blk, nkp] = Q . K^T of those rows, nkp = nk rounded up to 16
 *     the driver: S -> probabilities (scale, bias, running max m and sum l in f32,
 *             rows of O rescaled), columns past nk are 0
 *     pv      O rows += P . V
 * At the end `store` writes out = O / l for the group's queries. */
#pragma once

#include "cpu_impl.h"

#define ATTN_BQ     64
#define ATTN_BK     64
#define ATTN_QGROUP (4 * ATTN_BQ) /* queries per task: a packed key block serves 4 sub-blocks */

/* One thread's tiles. Qp, Kt, Vp, P are the kernel set's own layouts; S [BQ, BK] (scores,
 * then probabilities), O [QGROUP, Dp] (running output), m, l [QGROUP] are f32 and
 * the driver's. Dp = head dim rounded up to 16. */
struct attn_tiles {
    void *       Qp, * Kt, * Vp, * P;
    float *      S, * O, * m, * l;
    const void * kctx; /* the kernel set's own per-call data (infvsr__attention_run's kctx) */
};

struct attn_kernels {
    /* Bytes of Qp, Kt, Vp and P for head dim D (Dp = D rounded up to 16). */
    void (*tile_bytes)(int64_t D, int64_t Dp, size_t bytes[4]);
    /* Qp rows [0, rows) <- queries i0 .. i0 + nq of head h; rows past nq are zero. */
    void (*load_q)(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t rows,
                   const struct attn_tiles * t);
    /* Keys/values j0 .. j0 + nk of segment seg (0 or 1: k, v) for head h into Kt, Vp (or Kt, Vp
     * pointed at that block packed already, for the rest of the block). */
    void (*pack_kv)(const struct infvsr_cpu_attn * a, int64_t h, int seg, const void * k, const void * v, int64_t j0,
                    int64_t nk, int64_t Dp, struct attn_tiles * t);
    /* S[0 .. nq_blk, 0 .. nkp) = Qp rows r0 .. r0 + nq_blk times the packed keys. */
    void (*qk)(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t D, int64_t nkp);
    /* O rows r0 .. r0 + nq_blk += S (probabilities, first nk columns) times Vp. */
    void (*pv)(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t nk, int64_t Dp);
    /* out rows i0 .. i0 + nq of head h = O rows * (1 / l). */
    void (*store)(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t Dp,
                  const struct attn_tiles * t);
    /* Optional (NULL: none): run on the task's thread before its first and after its last
     * kernel call (the AMX set's LDTILECFG / TILERELEASE). */
    void (*begin)(void);
    void (*end)(void);
};

/* The bf16 kernel sets' store (attention_bf16.c): out = O / l, f32 or rounded once to bf16. */
void infvsr__attention_store_bf16(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t Dp,
                                  const struct attn_tiles * t);

enum infvsr_status infvsr__attention_run(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a,
                                         const struct attn_kernels * k, const void * kctx);
