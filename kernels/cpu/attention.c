/* Fast multi-head attention: flash-style tiling with an online softmax.
 *
 * The driver (infvsr__attention_run, attention_impl.h) is shared with the native bf16
 * kernels (attention_bf16.c); this file also holds the f32 kernel set.
 * Work split: one pool task per (head, group of QGROUP = 4 x BQ queries). A task walks
 * the keys in blocks of BK (segment 0, then segment 1; a block never straddles the two),
 * packs each key block once and runs it against the group's 4 query sub-blocks of BQ.
 * Only per-thread tiles are kept, so memory is O(threads x (QGROUP + BK) x D), never
 * Nq x Nk. The f32 tiles:
 *   Qp [QGROUP, D]  the query group (rows past Nq are zero)
 *   Kt [D, BK]      the key block transposed (keys past the end are zero)
 *   Vp [BK, Dp]     the value block, Dp = D rounded up to 16 (zero padded)
 *   S  [BQ, BK]     scores, then probabilities (one sub-block at a time)
 *   O  [QGROUP, Dp] running output, m/l running max and sum per query row
 * Micro-kernels (AVX2/FMA, 6 rows x 16 columns, 12 accumulators):
 *   S = Qp Kt: broadcast one q value, FMA along 16 keys of a Kt row;
 *   O += P Vp: broadcast one p value, FMA along 16 channels of a value row.
 * Any head dim works (the S kernel runs over exactly D, the O kernel over Dp).
 * Scores are scale * q.k + bias, as the reference; exp uses infvsr__exp8 (~2e-7). */
#include <math.h>
#include <string.h>

#include "attention_impl.h"
#include "simd.h"

#define BQ     ATTN_BQ
#define BK     ATTN_BK
#define QGROUP ATTN_QGROUP

/* Register-blocked micro-kernels, R rows x 16 columns (2 ymm per row): R = 6 gives 12
 * accumulators + 2 loads + 1 broadcast = 15 of the 16 ymm registers; BQ = 64 = 10 x 6 + 4.
 * Written with a constant R in an always-inline body so the accumulators stay in
 * registers. */

/* S[r, j..j+16) = Qp[r, :] . Kt[:, j..j+16) for rows r0..r0+R */
static inline __attribute__((always_inline)) void qk_tile(const float * Qp, const float * Kt, int64_t D, float * S,
                                                          int r0, int j, const int R) {
    __m256 acc[6][2];
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float * kt = Kt + j;
    const float * q = Qp + r0 * D;
    for (int64_t d = 0; d < D; d++, kt += BK) {
        __m256 k0 = _mm256_load_ps(kt), k1 = _mm256_load_ps(kt + 8);
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
            __m256 b = _mm256_broadcast_ss(q + r * D + d);
            acc[r][0] = _mm256_fmadd_ps(b, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(b, k1, acc[r][1]);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
        _mm256_store_ps(S + (r0 + r) * BK + j, acc[r][0]);
        _mm256_store_ps(S + (r0 + r) * BK + j + 8, acc[r][1]);
    }
}

/* S[BQ, :nkp] = Qp[BQ, D] . Kt[D, :nkp], nkp = keys in the block rounded up to 16 */
static void kernel_qk(const float * Qp, const float * Kt, int64_t D, float * S, int64_t nkp) {
    for (int j = 0; j < nkp; j += 16) {
        int i = 0;
        for (; i + 6 <= BQ; i += 6) qk_tile(Qp, Kt, D, S, i, j, 6);
        for (; i + 4 <= BQ; i += 4) qk_tile(Qp, Kt, D, S, i, j, 4);
    }
}

/* O[r, c..c+16) += P[r, :nk] . Vp[:nk, c..c+16) for rows r0..r0+R */
static inline __attribute__((always_inline)) void pv_tile(const float * P, const float * Vp, int64_t nk, int64_t Dp,
                                                          float * O, int r0, int64_t c, const int R) {
    __m256 acc[6][2];
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
        acc[r][0] = _mm256_load_ps(O + (r0 + r) * Dp + c);
        acc[r][1] = _mm256_load_ps(O + (r0 + r) * Dp + c + 8);
    }
    const float * v = Vp + c;
    const float * p = P + r0 * BK;
    for (int64_t j = 0; j < nk; j++, v += Dp) {
        __m256 v0 = _mm256_load_ps(v), v1 = _mm256_load_ps(v + 8);
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
            __m256 b = _mm256_broadcast_ss(p + r * BK + j);
            acc[r][0] = _mm256_fmadd_ps(b, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(b, v1, acc[r][1]);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
        _mm256_store_ps(O + (r0 + r) * Dp + c, acc[r][0]);
        _mm256_store_ps(O + (r0 + r) * Dp + c + 8, acc[r][1]);
    }
}

/* O[BQ, Dp] += P[BQ, BK(first nk columns)] . Vp[nk, Dp] */
static void kernel_pv(const float * P, const float * Vp, int64_t nk, int64_t Dp, float * O) {
    for (int64_t c = 0; c < Dp; c += 16) {
        int i = 0;
        for (; i + 6 <= BQ; i += 6) pv_tile(P, Vp, nk, Dp, O, i, c, 6);
        for (; i + 4 <= BQ; i += 4) pv_tile(P, Vp, nk, Dp, O, i, c, 4);
    }
}

/* Scores of one query sub-block against one key block -> probabilities in S, running
 * max/sum and O rescaled. Rows past nq_blk are left alone (their S rows are ignored). */
static void softmax_block(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq_blk, int64_t nk,
                          int64_t kg0, int64_t Dp, float * S, float * O, float * m, float * l) {
    const int64_t NK = a->n0 + a->n1, nkp = (nk + 15) / 16 * 16; /* columns the QK kernel wrote */
    const __m256 sc = _mm256_set1_ps(a->scale);
    for (int64_t i = 0; i < nq_blk; i++) {
        float * s = S + i * BK;
        const float * bias = a->bias ? a->bias + (h * a->nq + i0 + i) * NK + kg0 : NULL;
        int64_t j = 0;
        if (bias) {
            for (; j + 8 <= nk; j += 8) {
                _mm256_store_ps(s + j, _mm256_fmadd_ps(_mm256_load_ps(s + j), sc, _mm256_loadu_ps(bias + j)));
            }
            for (; j < nk; j++) s[j] = s[j] * a->scale + bias[j];
        } else {
            for (; j + 8 <= nk; j += 8) _mm256_store_ps(s + j, _mm256_mul_ps(_mm256_load_ps(s + j), sc));
            for (; j < nk; j++) s[j] *= a->scale;
        }
        for (; j < nkp; j++) s[j] = -INFINITY;
        __m256 mx8 = _mm256_load_ps(s);
        for (j = 8; j < nkp; j += 8) mx8 = _mm256_max_ps(mx8, _mm256_load_ps(s + j));
        float mx = infvsr__hmax8(mx8);
        float m_new = mx > m[i] ? mx : m[i];
        float m_use = m_new == -INFINITY ? 0.0f : m_new; /* a row masked so far: keep exps 0, not NaN */
        float alpha = expf(m[i] - m_use);
        __m256 mu = _mm256_set1_ps(m_use), sum8 = _mm256_setzero_ps();
        for (j = 0; j < nkp; j += 8) {
            __m256 e = infvsr__exp8(_mm256_sub_ps(_mm256_load_ps(s + j), mu));
            _mm256_store_ps(s + j, e);
            sum8 = _mm256_add_ps(sum8, e);
        }
        l[i] = l[i] * alpha + infvsr__hsum8(sum8);
        m[i] = m_new;
        if (alpha != 1.0f) {
            float * o = O + i * Dp;
            __m256 al = _mm256_set1_ps(alpha);
            for (int64_t d = 0; d < Dp; d += 8) _mm256_store_ps(o + d, _mm256_mul_ps(_mm256_load_ps(o + d), al));
        }
    }
}

/* ---- the f32 kernel set ---- */

static void f32_tile_bytes(int64_t D, int64_t Dp, size_t bytes[4]) {
    bytes[0] = (size_t)(QGROUP * D) * sizeof(float);
    bytes[1] = (size_t)(D * BK) * sizeof(float);
    bytes[2] = (size_t)(BK * Dp) * sizeof(float);
    bytes[3] = 0; /* P is S */
}

static void f32_load_q(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t rows,
                       const struct attn_tiles * t) {
    const int64_t D = a->head_dim, HD = a->n_heads * D;
    float * Qp = t->Qp;
    for (int64_t i = 0; i < rows; i++) {
        if (i < nq) memcpy(Qp + i * D, (const float *)a->q + (i0 + i) * HD + h * D, (size_t)D * sizeof(float));
        else memset(Qp + i * D, 0, (size_t)D * sizeof(float));
    }
}

/* Packs keys [j0, j0 + nk) of (k, v) for head h: Kt [D, BK] transposed, Vp [BK, Dp],
 * zero padded past nk and past D. */
static void f32_pack_kv(const struct infvsr_cpu_attn * a, int64_t h, int seg, const void * kv, const void * vv,
                        int64_t j0, int64_t nk, int64_t Dp, struct attn_tiles * t) {
    const int64_t D = a->head_dim, HD = a->n_heads * D;
    const float * k = kv, * v = vv;
    float * Kt = t->Kt, * Vp = t->Vp;
    for (int64_t j = 0; j < nk; j++) {
        const float * kr = k + (j0 + j) * HD + h * D;
        for (int64_t d = 0; d < D; d++) Kt[d * BK + j] = kr[d];
        memcpy(Vp + j * Dp, v + (j0 + j) * HD + h * D, (size_t)D * sizeof(float));
        for (int64_t d = D; d < Dp; d++) Vp[j * Dp + d] = 0;
    }
    for (int64_t j = nk; j < BK; j++) {
        for (int64_t d = 0; d < D; d++) Kt[d * BK + j] = 0;
    }
}

/* The f32 kernels run whole sub-blocks of BQ rows (the rows past the queries are zero). */
static void f32_qk(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t D, int64_t nkp) {
    kernel_qk((const float *)t->Qp + r0 * D, t->Kt, D, t->S, nkp);
}

static void f32_pv(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t nk, int64_t Dp) {
    kernel_pv(t->S, t->Vp, nk, Dp, t->O + r0 * Dp);
}

static void f32_store(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t Dp,
                      const struct attn_tiles * t) {
    const int64_t D = a->head_dim, HD = a->n_heads * D;
    for (int64_t i = 0; i < nq; i++) {
        float inv = 1.0f / t->l[i];
        float * out = (float *)a->out + (i0 + i) * HD + h * D;
        for (int64_t d = 0; d < D; d++) out[d] = t->O[i * Dp + d] * inv;
    }
}

static const struct attn_kernels f32_kernels = {
    .tile_bytes = f32_tile_bytes, .load_q = f32_load_q, .pack_kv = f32_pack_kv,
    .qk = f32_qk, .pv = f32_pv, .store = f32_store,
};

/* ---- the driver (attention_impl.h) ---- */

struct attn_job {
    const struct infvsr_cpu_attn * a;
    const struct attn_kernels *    k;
    const void *                   kctx;
    unsigned char *                scratch;
    size_t                         per_thread, off[7]; /* bytes: Kt, Vp, P, S, O, m, l from Qp */
    int64_t                        n_qblocks, Dp;
};

/* One key block against all sub-blocks of the task's query group. */
static void process_block(const struct attn_job * job, int64_t h, int64_t i0, int64_t nq_grp, int seg, const void * k,
                          const void * v, int64_t j0, int64_t nk, int64_t kg0, struct attn_tiles * t) {
    const struct infvsr_cpu_attn * a = job->a;
    const int64_t Dp = job->Dp, nkp = (nk + 15) / 16 * 16;
    job->k->pack_kv(a, h, seg, k, v, j0, nk, Dp, t);
    for (int64_t g = 0; g * BQ < nq_grp; g++) {
        int64_t r0 = g * BQ, nq_blk = nq_grp - r0 < BQ ? nq_grp - r0 : BQ;
        job->k->qk(t, r0, nq_blk, a->head_dim, nkp);
        softmax_block(a, h, i0 + r0, nq_blk, nk, kg0, Dp, t->S, t->O + r0 * Dp, t->m + r0, t->l + r0);
        job->k->pv(t, r0, nq_blk, nk, Dp);
    }
}

static void attn_task(void * ctx, int64_t task, int tid) {
    const struct attn_job * job = ctx;
    const struct infvsr_cpu_attn * a = job->a;
    const int64_t h = task / job->n_qblocks, i0 = (task % job->n_qblocks) * QGROUP;
    const int64_t nq_grp = a->nq - i0 < QGROUP ? a->nq - i0 : QGROUP;

    /* every tile starts 64-byte aligned (the base is, each size is rounded up to 64) */
    unsigned char * base = job->scratch + (size_t)tid * job->per_thread;
    struct attn_tiles t = {
        .Qp = base, .Kt = base + job->off[0], .Vp = base + job->off[1], .P = base + job->off[2],
        .S = (float *)(void *)(base + job->off[3]), .O = (float *)(void *)(base + job->off[4]),
        .m = (float *)(void *)(base + job->off[5]), .l = (float *)(void *)(base + job->off[6]), .kctx = job->kctx,
    };
    int64_t rows = (nq_grp + BQ - 1) / BQ * BQ; /* whole sub-blocks */
    job->k->load_q(a, h, i0, nq_grp, rows, &t);
    for (int64_t i = 0; i < rows; i++) {
        t.m[i] = -INFINITY;
        t.l[i] = 0;
    }
    memset(t.O, 0, (size_t)(rows * job->Dp) * sizeof(float));
    if (job->k->begin) job->k->begin();
    for (int64_t j0 = 0; j0 < a->n0; j0 += BK) {
        int64_t nk = a->n0 - j0 < BK ? a->n0 - j0 : BK;
        process_block(job, h, i0, nq_grp, 0, a->k0, a->v0, j0, nk, j0, &t);
    }
    for (int64_t j0 = 0; j0 < a->n1; j0 += BK) {
        int64_t nk = a->n1 - j0 < BK ? a->n1 - j0 : BK;
        process_block(job, h, i0, nq_grp, 1, a->k1, a->v1, j0, nk, a->n0 + j0, &t);
    }
    job->k->store(a, h, i0, nq_grp, job->Dp, &t);
    if (job->k->end) job->k->end();
}

enum infvsr_status infvsr__attention_run(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a,
                                         const struct attn_kernels * k, const void * kctx) {
    const int64_t D = a->head_dim, Dp = (D + 15) / 16 * 16;
    struct attn_job job = { .a = a, .k = k, .kctx = kctx, .Dp = Dp, .n_qblocks = (a->nq + QGROUP - 1) / QGROUP };
    size_t sz[7];
    k->tile_bytes(D, Dp, sz);
    sz[4] = (size_t)(BQ * BK) * sizeof(float);       /* S */
    sz[5] = (size_t)(QGROUP * Dp) * sizeof(float);   /* O */
    sz[6] = 2 * (size_t)QGROUP * sizeof(float);      /* m, l */
    size_t at = 0;
    for (int i = 0; i < 7; i++) {
        at += (sz[i] + 63) / 64 * 64;
        if (i < 6) job.off[i] = at;
    }
    job.off[6] = job.off[5] + QGROUP * sizeof(float); /* l right after m */
    job.per_thread = at;
    float * scratch = infvsr__buf_reserve(&c->scratch, job.per_thread / sizeof(float) * (size_t)c->n_threads);
    if (!scratch) return INFVSR_ERR_NOMEM;
    job.scratch = (unsigned char *)scratch;
    infvsr__par(c, job.n_qblocks * a->n_heads, attn_task, &job);
    return INFVSR_OK;
}

enum infvsr_status infvsr_cpu_op_attention(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a) {
    return infvsr__attention_run(c, a, &f32_kernels, NULL);
}
