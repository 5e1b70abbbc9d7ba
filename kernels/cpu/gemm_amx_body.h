/* The AMX-BF16 (TDPBF16PS) GEMM for linear with bf16 activations: y = act(x . w^T + b) with
 * bf16 operands, f32 accumulation and gemm_bf16.c's epilogue (bias and activation in f32,
 * y stored f32 or bf16 rounded once).
 *
 * Not a normal header: this is the kernel's one source, included twice. gemm_amx.c includes
 * it after amx_tile.h with the real tile instructions (the product); tests/ops/test_gemm_amx.c
 * after amx_tile.h with INFVSR_AMX_EMULATE, so the test runs exactly this tiling, packing and
 * edge handling on machines without AMX. Everything here is static; the includer wraps
 * amx_linear. Outside the tile primitives only plain C and AVX2 (the build's baseline), so
 * the emulated copy runs on any x86-64-v3 machine.
 *
 * Layout (palette 1, every tile 16 rows x 64 bytes; TDPBF16PS multiplies pairs of k):
 *  - A (x) is packed once per call into tiles of 16 rows x 32 k, [row block][k tile][16][32]
 *    bf16 (1 KB each), rows past M and k past K zero: the only reads of x are this copy,
 *    which stops at the tensor's end, and each A tile is one contiguous 1 KB load.
 *  - B (w): an imported weight is packed once (weight_pack.c, infvsr_cpu_linear_bf16_pack:
 *    the same strips, K padded to whole tiles) and read in place; any other w is packed
 *    per call, panel by panel of columns, into strips of 16 columns, [strip][k pair][16][2]
 *    bf16: the VNNI layout TDPBF16PS reads (the two k of a pair side by side per column;
 *    the same strip layout as gemm_bf16.c), K padded to whole 32-k tiles and columns past N
 *    with zeros, so a B tile (16 pairs x 16 columns) is 1 KB contiguous. bf16 weights move
 *    by 8x8 transposes of 32-bit words (a pair is one word of a weight row); f32 or f16
 *    weights are rounded to bf16 first, as gemm_bf16.c does.
 *  - Micro-kernel: 2 x 2 C tiles (32 rows x 32 columns in tmm0..3) from 2 A tiles (tmm4, 5)
 *    and 2 B tiles (tmm6, 7): 4 tile loads per 4 TDPBF16PS; 1 x 2 when the rows end within
 *    the first A tile. K runs in blocks of AMX_KBLK tiles; C round-trips through the task's
 *    f32 sums (L2) between blocks.
 *  - Task: nb columns x mg row blocks of 32 (amx_tasks), K blocks outermost inside it (the
 *    A block of a row block, 32 x 256 bf16 = 16 KB, stays in L1 across the column pairs),
 *    and the next task's B block prefetched into L2 (amx_next_block). LDTILECFG at its
 *    start and TILERELEASE at its end: the tile state belongs to the thread, and the pool's
 *    threads run other ops between.
 *  - Epilogue per row block on the f32 sums: infvsr__linear_bf16_epilogue (gemm_bf16.c).
 * Measured on a Sapphire Rapids Xeon (2 threads; tests/bench/bench_cpu amx; docs/ARCHITECTURE.md). */
#include <immintrin.h>
#include <string.h>

#include "cpu_impl.h"
#include "transpose8.h"

#define AMX_TM   16            /* rows of an A or C tile                          */
#define AMX_TK   32            /* k of an A tile row (64 bytes); 16 pairs of a B tile */
#define AMX_TN   16            /* columns of a B or C tile                        */
#define AMX_TILE (AMX_TM * AMX_TK) /* bf16 in one A or B tile: 512, 1 KB          */
#define AMX_MB   32            /* rows per task: 2 A tiles                        */
#define AMX_NB   128           /* most columns per task: 4 micro-kernels of 32    */
#define AMX_KBLK 8             /* k tiles per K block                              */

/* Bytes of packed weights per panel (a variable so the test can force many panels). */
static size_t amx_panel_bytes = (size_t)4 << 20;

/* Palette 1 with all 8 tiles 16 rows x 64 bytes: C f32 16x16, A bf16 16x32, B 16 pairs x 16. */
static const struct infvsr_amx_cfg amx_cfg = {
    .palette = 1,
    .colsb   = { 64, 64, 64, 64, 64, 64, 64, 64 },
    .rows    = { 16, 16, 16, 16, 16, 16, 16, 16 },
};

/* ---- packing ---- */

struct amx_pack_a {
    const uint16_t * x;
    uint16_t *       dst;
    int64_t          M, K, KT;
};

/* One block of 16 rows: KT tiles of 16 x 32, zero past M and K. */
static void amx_pack_a_task(void * ctx, int64_t mb, int tid) {
    const struct amx_pack_a * j = ctx;
    uint16_t * d = j->dst + mb * j->KT * AMX_TILE;
    for (int64_t kt = 0; kt < j->KT; kt++) {
        const int64_t k0 = kt * AMX_TK, nk = j->K - k0 < AMX_TK ? j->K - k0 : AMX_TK;
        for (int r = 0; r < AMX_TM; r++, d += AMX_TK) {
            const int64_t m = mb * AMX_TM + r;
            if (m >= j->M) {
                memset(d, 0, AMX_TK * sizeof *d);
                continue;
            }
            memcpy(d, j->x + (size_t)m * (size_t)j->K + (size_t)k0, (size_t)nk * sizeof *d);
            if (nk < AMX_TK) memset(d + nk, 0, (size_t)(AMX_TK - nk) * sizeof *d);
        }
    }
}

struct amx_pack_b {
    uint16_t *          panel;
    struct infvsr_cpu_w w;
    int64_t             n0, N, K, KT;
};

static inline uint16_t amx_w_bf16(struct infvsr_cpu_w w, size_t i) {
    return w.dtype == INFVSR_TYPE_BF16 ? ((const uint16_t *)w.data)[i] : infvsr_f32_to_bf16(infvsr__w_get(w, i));
}

/* Strip s of the panel: 16 columns from n0 + 16 s, KT * 16 pairs. */
static void amx_pack_b_task(void * ctx, int64_t s, int tid) {
    const struct amx_pack_b * j = ctx;
    const int64_t K = j->K, pairs = j->KT * (AMX_TK / 2);
    uint16_t * dst = j->panel + s * j->KT * AMX_TILE;
    const int64_t nb = j->n0 + s * AMX_TN;
    const int64_t valid = j->N - nb < 0 ? 0 : j->N - nb > AMX_TN ? AMX_TN : j->N - nb;
    if (valid == 0) {
        memset(dst, 0, (size_t)(j->KT * AMX_TILE) * sizeof *dst);
        return;
    }
    int64_t p = 0; /* pairs written */
    if (j->w.dtype == INFVSR_TYPE_BF16) {
        /* 8 pairs of 8 columns at a time: every load is within a row (2 p + 16 <= K) */
        const uint16_t * w = j->w.data;
        for (; p + 8 <= K / 2; p += 8) {
            for (int h = 0; h < 2; h++) {
                __m256i r[8];
                for (int i = 0; i < 8; i++) {
                    const int64_t c = 8 * h + i;
                    r[i] = c < valid ? _mm256_loadu_si256((const __m256i *)(w + (size_t)(nb + c) * (size_t)K + (size_t)(2 * p)))
                                     : _mm256_setzero_si256();
                }
                infvsr__transpose8_epi32(r);
                for (int q = 0; q < 8; q++) _mm256_storeu_si256((__m256i *)(dst + (p + q) * 2 * AMX_TN + 16 * h), r[q]);
            }
        }
    }
    /* the rest one by one: the last pairs, an odd K's last k (paired with 0), the padding to
     * whole tiles, and every pair of f32/f16 weights */
    for (; p < pairs; p++) {
        uint16_t * d = dst + p * 2 * AMX_TN;
        for (int64_t c = 0; c < AMX_TN; c++) {
            for (int e = 0; e < 2; e++) {
                const int64_t k = 2 * p + e;
                d[2 * c + e] = c < valid && k < K ? amx_w_bf16(j->w, (size_t)(nb + c) * (size_t)K + (size_t)k) : 0;
            }
        }
    }
}

/* ---- micro-kernel: C[32 or 16][32] (+)= A[rows][nkt * 32] . B[nkt * 32][32] ----
 * Tiles: C rows 0-15 in tmm0 (columns 0-15) and tmm1 (16-31), rows 16-31 in tmm2, tmm3;
 * A rows 0-15 in tmm4, 16-31 in tmm5; B columns 0-15 in tmm6, 16-31 in tmm7. */

struct amx_next_b;
static inline void amx_next_b_step(struct amx_next_b * nx);

static inline __attribute__((always_inline)) AMX_FN void amx_micro(const bool two, const uint16_t * a0,
                                                                   const uint16_t * a1, const uint16_t * b0,
                                                                   const uint16_t * b1, int64_t nkt, float * c,
                                                                   int64_t ldc, bool first, struct amx_next_b * nx) {
    const int64_t cs = ldc * (int64_t)sizeof(float);
    float * c2 = c + AMX_TM * ldc;
    if (first) {
        amx_zero(0);
        amx_zero(1);
        if (two) {
            amx_zero(2);
            amx_zero(3);
        }
    } else {
        amx_load(0, c, cs);
        amx_load(1, c + AMX_TN, cs);
        if (two) {
            amx_load(2, c2, cs);
            amx_load(3, c2 + AMX_TN, cs);
        }
    }
    for (int64_t kt = 0; kt < nkt; kt++) {
        const int64_t o = kt * AMX_TILE;
        /* B streams through L1 (A stays there across the task's column blocks): the next k
         * tile's two B tiles are prefetched while this one computes. A tile load that misses
         * L1 stalls the in-order tile pipe; measured on the DiT's GEMMs at 192 tokens (2
         * threads, CPU time, shared machine): 8960 -> 1536 went from 600-860 to 1230-1320
         * GFLOP/s, the others +5-15%; prefetching 2 or 4 tiles ahead was no better. A
         * prefetch past the end of B is harmless (it never faults). */
        for (int l = 0; l < 1024; l += 64) {
            _mm_prefetch((const char *)(b0 + o + AMX_TILE) + l, _MM_HINT_T0);
            _mm_prefetch((const char *)(b1 + o + AMX_TILE) + l, _MM_HINT_T0);
        }
        amx_next_b_step(nx);
        amx_load(4, a0 + o, 64);
        amx_load(6, b0 + o, 64);
        amx_load(7, b1 + o, 64);
        amx_dpbf16ps(0, 4, 6);
        amx_dpbf16ps(1, 4, 7);
        if (two) {
            amx_load(5, a1 + o, 64);
            amx_dpbf16ps(2, 5, 6);
            amx_dpbf16ps(3, 5, 7);
        }
    }
    amx_store(0, c, cs);
    amx_store(1, c + AMX_TN, cs);
    if (two) {
        amx_store(2, c2, cs);
        amx_store(3, c2 + AMX_TN, cs);
    }
}

struct amx_gemm {
    const uint16_t *     a;     /* packed x */
    const uint16_t *     panel; /* packed w, this panel */
    const float *        bias;  /* f32 [N] or NULL */
    void *               y;
    enum infvsr_dtype    y_dtype;
    enum infvsr_unary_op act;
    float *              ct;    /* per thread: mg x 32 rows x nb f32 partial sums */
    int64_t              M, N, KT, n0, n_mb;
    int64_t              nb, n_nb;  /* columns per task, column blocks of the panel (amx_tasks) */
    int64_t              mg;        /* row blocks per task                                      */
    int64_t              n_tasks, n_threads;
};

/* Tasks: nb columns x mg row blocks of 32 (amx_tasks). Inside a task K runs outermost in
 * blocks of AMX_KBLK tiles, then the row blocks, then the column pairs: the A block of one
 * row block (32 x 256 bf16, 16 KB) stays in L1 across the column pairs, the task's B slab of
 * one K block (nb x 256, 64 KB) in L1/L2 across the row blocks, and the partial sums of
 * the whole task (up to AMX_TASK_C_BYTES) in L2. So each weight is read from memory once
 * per call whatever K is: the earlier order (row blocks outermost, the whole K inside) had
 * to cap the rows per task by K to keep their A in L2, and at the FFN's K = 8960 it read the
 * weights once per 32 rows (6 times at 192 tokens): 658 -> 1082 GFLOP/s for 192 x 8960 ->
 * 1536 on one thread (same kernel, both orders; K = 1536: 1174 -> 1301). */
#define AMX_TASK_C_BYTES ((int64_t)128 << 10)

static void amx_tasks(struct amx_gemm * g, int64_t cols, int n_threads) {
    /* up to AMX_NB columns, fewer when that leaves threads without a task */
    int64_t nb = AMX_NB;
    while (nb > 2 * AMX_TN && ((cols + nb - 1) / nb) * ((g->n_mb + 15) / 16) < 2 * n_threads) nb /= 2;
    /* row blocks: all that fit AMX_TASK_C_BYTES of sums, split evenly */
    const int64_t mg_max = AMX_TASK_C_BYTES / (AMX_MB * nb * (int64_t)sizeof(float));
    const int64_t n_groups = (g->n_mb + mg_max - 1) / mg_max;
    g->nb = nb;
    g->mg = (g->n_mb + n_groups - 1) / n_groups;
}

/* The B block of the task this thread most likely takes next streams into L2 while this
 * task computes, a few lines per k tile: at a few hundred rows the weights come from
 * memory, and without it the memory idles while a block is reused from L2, then the tiles
 * wait while the next one arrives (192 x 1536 -> 8960 on one thread: 1301 -> 1355
 * GFLOP/s). The pool hands tasks out in order, so with threads of equal speed the next is
 * t + n_threads; a wrong guess costs bandwidth, never correctness. Only blocks up to
 * AMX_PREFETCH_BYTES: two of them and the A block must fit L2 (2 MB per core on Sapphire
 * Rapids); larger ones (K = 8960: 2.3 MB) stream well with the hardware's prefetcher. */
#define AMX_PREFETCH_BYTES ((int64_t)512 << 10)

struct amx_next_b {
    const char * p, * end;
    int64_t      lines; /* per k tile */
};

static inline void amx_next_b_step(struct amx_next_b * nx) {
    for (int64_t l = 0; l < nx->lines && nx->p < nx->end; l++, nx->p += 64) _mm_prefetch(nx->p, _MM_HINT_T1);
}

static struct amx_next_b amx_next_block(const struct amx_gemm * j, int64_t t, int64_t steps) {
    struct amx_next_b nx = { 0 };
    const int64_t tn = t + j->n_threads, nb = j->nb, ni = tn % j->n_nb;
    if (tn >= j->n_tasks || ni == t % j->n_nb) return nx;
    const int64_t cols = j->N - (j->n0 + ni * nb) < nb ? j->N - (j->n0 + ni * nb) : nb;
    const int64_t bytes = (cols + 2 * AMX_TN - 1) / (2 * AMX_TN) * 2 * j->KT * AMX_TILE * (int64_t)sizeof(uint16_t);
    if (bytes > AMX_PREFETCH_BYTES) return nx;
    nx.p     = (const char *)(j->panel + ni * (nb / AMX_TN) * j->KT * AMX_TILE);
    nx.end   = nx.p + bytes;
    nx.lines = (bytes / 64 + steps - 1) / steps;
    return nx;
}

AMX_FN static void amx_gemm_task(void * ctx, int64_t t, int tid) {
    const struct amx_gemm * j = ctx;
    const int64_t KT = j->KT, n_nb = j->n_nb;
    const int64_t ni = t % n_nb, mg = t / n_nb; /* neighbouring tasks: the same rows, other columns */
    const int64_t nb = j->nb, col0 = j->n0 + ni * nb, cols = j->N - col0 < nb ? j->N - col0 : nb;
    if (cols <= 0) return;
    const int64_t n_cb = (cols + 2 * AMX_TN - 1) / (2 * AMX_TN);
    const int64_t mi0 = mg * j->mg, mi_end = mi0 + j->mg < j->n_mb ? mi0 + j->mg : j->n_mb;
    float * ct = j->ct + (size_t)tid * (size_t)(j->mg * AMX_MB * nb);
    struct amx_next_b nx = amx_next_block(j, t, (mi_end - mi0) * n_cb * KT);
    amx_config(&amx_cfg);
    for (int64_t kb = 0; kb < KT; kb += AMX_KBLK) {
        const int64_t nkt = KT - kb < AMX_KBLK ? KT - kb : AMX_KBLK;
        for (int64_t mi = mi0; mi < mi_end; mi++) {
            const bool two = j->M - mi * AMX_MB > AMX_TM;
            const uint16_t * a0 = j->a + (2 * mi * KT + kb) * AMX_TILE, * a1 = two ? a0 + KT * AMX_TILE : a0;
            float * cr = ct + (mi - mi0) * AMX_MB * nb;
            for (int64_t cb = 0; cb < n_cb; cb++) {
                /* strips 2 cb, 2 cb + 1 of this task's columns */
                const uint16_t * b0 = j->panel + ((ni * (nb / AMX_TN) + 2 * cb) * KT + kb) * AMX_TILE;
                const uint16_t * b1 = b0 + KT * AMX_TILE;
                if (two) amx_micro(true, a0, a1, b0, b1, nkt, cr + cb * 2 * AMX_TN, nb, kb == 0, &nx);
                else amx_micro(false, a0, a1, b0, b1, nkt, cr + cb * 2 * AMX_TN, nb, kb == 0, &nx);
            }
        }
    }
    /* the tile state stays configured over the epilogue: plain AVX2 code there */
    for (int64_t mi = mi0; mi < mi_end; mi++) {
        const int64_t m0 = mi * AMX_MB, rows = j->M - m0 < AMX_MB ? j->M - m0 : AMX_MB;
        infvsr__linear_bf16_epilogue(ct + (mi - mi0) * AMX_MB * nb, nb, rows, cols, j->bias, j->act, j->y, j->y_dtype,
                                     j->N, m0, col0);
    }
    amx_release();
}

/* y[M, N] = act(x[M, K] . w[N, K]^T + b[N]); the contract of infvsr_cpu_op_linear_bf16.
 * packed: w already in the strip layout whole (KT * 16 pairs per strip, columns padded to
 * a whole pair of strips at least: infvsr_cpu_linear_bf16_pack's output for an imported
 * weight), read in place as one panel; NULL: w is packed here panel by panel. */
static enum infvsr_status amx_linear(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M, int64_t K,
                                     struct infvsr_cpu_w w, const uint16_t * packed, int64_t N,
                                     struct infvsr_cpu_w b, enum infvsr_unary_op act, void * y,
                                     enum infvsr_dtype y_dtype) {
    const int64_t KT = (K + AMX_TK - 1) / AMX_TK, Kp = KT * AMX_TK, n_m16 = (M + AMX_TM - 1) / AMX_TM;
    const int     n_threads = infvsr_threadpool_n_threads(c->pool);
    /* columns per panel: whole AMX_NB blocks (a task's columns divide it), at least one;
     * packed: all */
    int64_t pn = (int64_t)(amx_panel_bytes / ((size_t)Kp * sizeof(uint16_t))) / AMX_NB * AMX_NB;
    if (pn < AMX_NB) pn = AMX_NB;
    const int64_t n_pad = (N + AMX_NB - 1) / AMX_NB * AMX_NB;
    if (pn > n_pad || packed) pn = n_pad;
    float * bias = NULL;
    if (b.data) {
        if (!(bias = infvsr__buf_reserve(&c->col, (size_t)N))) return INFVSR_ERR_NOMEM;
        infvsr__w_widen(bias, b, 0, (size_t)N);
    }
    struct amx_gemm g = { .panel = packed, .bias = bias, .y = y, .y_dtype = y_dtype, .act = act, .M = M, .N = N,
                          .KT = KT, .n_mb = (M + AMX_MB - 1) / AMX_MB, .n_threads = n_threads };
    amx_tasks(&g, N < pn ? N : pn, n_threads); /* one nb and mg for every panel: nb divides AMX_NB */
    /* the buffers hold floats: 2 bf16 each (Kp is even); scratch: packed x, then each
     * thread's partial sums (the packed x is a whole number of 1 KB tiles) */
    const size_t a_floats = (size_t)n_m16 * AMX_TM * (size_t)Kp / 2, ct_floats = (size_t)(g.mg * AMX_MB * g.nb);
    uint16_t * panel = packed ? NULL : (uint16_t *)infvsr__buf_reserve(&c->panel, (size_t)pn * (size_t)Kp / 2);
    float *    scratch = infvsr__buf_reserve(&c->scratch, a_floats + (size_t)n_threads * ct_floats);
    if ((!packed && !panel) || !scratch) return INFVSR_ERR_NOMEM;
    uint16_t * apack = (uint16_t *)scratch;
    g.a  = apack;
    g.ct = scratch + a_floats;
    if (!packed) g.panel = panel;
    struct amx_pack_a pa = { .x = x, .dst = apack, .M = M, .K = K, .KT = KT };
    infvsr__par(c, n_m16, amx_pack_a_task, &pa);
    const int64_t n_mg = (g.n_mb + g.mg - 1) / g.mg;
    for (int64_t n0 = 0; n0 < N; n0 += pn) {
        const int64_t cols = N - n0 < pn ? N - n0 : pn;
        /* whole pairs of strips: a micro-kernel always reads two */
        const int64_t strips = (cols + 2 * AMX_TN - 1) / (2 * AMX_TN) * 2;
        if (!packed) {
            struct amx_pack_b pb = { .panel = panel, .w = w, .n0 = n0, .N = N, .K = K, .KT = KT };
            infvsr__par(c, strips, amx_pack_b_task, &pb);
        }
        g.n0      = n0;
        g.n_nb    = (cols + g.nb - 1) / g.nb;
        g.n_tasks = n_mg * g.n_nb;
        infvsr__par(c, g.n_tasks, amx_gemm_task, &g);
    }
    return INFVSR_OK;
}
