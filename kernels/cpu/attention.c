/* Fast multi-head attention: flash-style tiling with an online softmax.
 *
 * Work split: one pool task per (head, group of QGROUP = 4 x BQ queries). A task walks
 * the keys in blocks of BK (segment 0, then segment 1; a block never straddles the two),
 * packs each key block once and runs it against the group's 4 query sub-blocks of BQ.
 * Only per-thread tiles are kept, so memory is O(threads x (QGROUP + BK) x D), never
 * Nq x Nk:
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

#include "cpu_impl.h"
#include "simd.h"

#define BQ 64
#define BK 64
#define QGROUP (4 * BQ) /* queries per task: a packed key block serves 4 sub-blocks */

struct attn_job {
    const struct infvsr_cpu_attn * a;
    float *                        scratch;
    size_t                         per_thread; /* floats */
    int64_t                        n_qblocks, Dp;
};

static size_t tile_floats(int64_t D, int64_t Dp) {
    size_t n = (size_t)(QGROUP * D + D * BK + BK * Dp + BQ * BK + QGROUP * Dp + 2 * QGROUP);
    return (n + 15) / 16 * 16;
}

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

/* Packs keys [j0, j0 + nk) of (k, v) for head h: Kt [D, BK] transposed, Vp [BK, Dp],
 * zero padded past nk and past D. */
static void pack_kv(const struct infvsr_cpu_attn * a, int64_t h, const float * k, const float * v, int64_t j0,
                    int64_t nk, int64_t Dp, float * Kt, float * Vp) {
    const int64_t D = a->head_dim, HD = a->n_heads * D;
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

struct tiles {
    float * Qp, * Kt, * Vp, * S, * O, * m, * l;
};

/* One key block against all sub-blocks of the task's query group. */
static void process_block(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq_grp, const float * k,
                          const float * v, int64_t j0, int64_t nk, int64_t kg0, int64_t Dp, const struct tiles * t) {
    const int64_t D = a->head_dim;
    pack_kv(a, h, k, v, j0, nk, Dp, t->Kt, t->Vp);
    for (int64_t g = 0; g * BQ < nq_grp; g++) {
        int64_t r0 = g * BQ, nq_blk = nq_grp - r0 < BQ ? nq_grp - r0 : BQ;
        kernel_qk(t->Qp + r0 * D, t->Kt, D, t->S, (nk + 15) / 16 * 16);
        softmax_block(a, h, i0 + r0, nq_blk, nk, kg0, Dp, t->S, t->O + r0 * Dp, t->m + r0, t->l + r0);
        kernel_pv(t->S, t->Vp, nk, Dp, t->O + r0 * Dp);
    }
}

static void attn_task(void * ctx, int64_t task, int tid) {
    const struct attn_job * job = ctx;
    const struct infvsr_cpu_attn * a = job->a;
    const int64_t D = a->head_dim, HD = a->n_heads * D, Dp = job->Dp;
    const int64_t h = task / job->n_qblocks, i0 = (task % job->n_qblocks) * QGROUP;
    const int64_t nq_grp = a->nq - i0 < QGROUP ? a->nq - i0 : QGROUP;

    /* every tile starts 32-byte aligned: the base is (per_thread is a multiple of 16
     * floats), QGROUP = 4 BQ = 4 BK = 256 and Dp is a multiple of 16 */
    struct tiles t;
    t.Qp = job->scratch + (size_t)tid * job->per_thread;
    t.Kt = t.Qp + QGROUP * D;
    t.Vp = t.Kt + D * BK;
    t.S  = t.Vp + BK * Dp;
    t.O  = t.S + BQ * BK;
    t.m  = t.O + QGROUP * Dp;
    t.l  = t.m + QGROUP;
    int64_t rows = (nq_grp + BQ - 1) / BQ * BQ; /* whole sub-blocks: the kernels run on BQ rows */
    for (int64_t i = 0; i < rows; i++) {
        if (i < nq_grp) memcpy(t.Qp + i * D, a->q + (i0 + i) * HD + h * D, (size_t)D * sizeof(float));
        else memset(t.Qp + i * D, 0, (size_t)D * sizeof(float));
        t.m[i] = -INFINITY;
        t.l[i] = 0;
    }
    memset(t.O, 0, (size_t)(rows * Dp) * sizeof(float));
    for (int64_t j0 = 0; j0 < a->n0; j0 += BK) {
        int64_t nk = a->n0 - j0 < BK ? a->n0 - j0 : BK;
        process_block(a, h, i0, nq_grp, a->k0, a->v0, j0, nk, j0, Dp, &t);
    }
    for (int64_t j0 = 0; j0 < a->n1; j0 += BK) {
        int64_t nk = a->n1 - j0 < BK ? a->n1 - j0 : BK;
        process_block(a, h, i0, nq_grp, a->k1, a->v1, j0, nk, a->n0 + j0, Dp, &t);
    }
    for (int64_t i = 0; i < nq_grp; i++) {
        float inv = 1.0f / t.l[i];
        float * out = a->out + (i0 + i) * HD + h * D;
        for (int64_t d = 0; d < D; d++) out[d] = t.O[i * Dp + d] * inv;
    }
}

enum infvsr_status infvsr_cpu_op_attention(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a) {
    const int64_t D = a->head_dim, Dp = (D + 15) / 16 * 16;
    struct attn_job job = { .a = a, .Dp = Dp, .n_qblocks = (a->nq + QGROUP - 1) / QGROUP };
    job.per_thread = tile_floats(D, Dp);
    job.scratch = infvsr__buf_reserve(&c->scratch, job.per_thread * (size_t)c->n_threads);
    if (!job.scratch) return INFVSR_ERR_NOMEM;
    infvsr__par(c, job.n_qblocks * a->n_heads, attn_task, &job);
    return INFVSR_OK;
}
