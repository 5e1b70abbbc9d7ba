/* The AMX-BF16 (TDPBF16PS) conv3d for bf16 activations: an implicit GEMM on tiles with f32
 * accumulation over the whole K, bias in f32 in the epilogue, y rounded once to bf16 (or
 * stored f32), the contract of infvsr_cpu_op_conv3d_bf16.
 *
 * Not a normal header: the kernel's one source, included twice, like gemm_amx_body.h:
 * conv3d_amx.c includes it after amx_tile.h with the real tile instructions (the product),
 * tests/ops/test_conv3d_amx.c after amx_tile.h with INFVSR_AMX_EMULATE, so the test runs
 * exactly this tiling and edge handling on machines without AMX. Everything here is static.
 * The input copy, weight packing and epilogue exist twice: plain C here (`fast` false: any
 * x86-64-v3 machine) and conv3d_bf16.c's AVX-512 ones (`fast` true, what the product runs;
 * the test checks the two give the same bits where AVX512-BF16 exists).
 *
 *   y[P, Cout] = A[P, K] . B[K, Cout],  K = taps x Cp,  Cp = Cin rounded up to 32
 *
 * Layout (palette 1; TDPBF16PS multiplies pairs of k):
 *  - xp: the input copied once per frame group to a zero-padded channels-last buffer
 *    [T][Hp][Wp][Cp] (conv3d_bf16.c's, with Cp a multiple of 32: zero channels past Cin).
 *    A k-step is 32 channels of one tap. An A tile is 16 consecutive output positions of
 *    one output row at one k-step: a tile load straight from xp, row r at the input of
 *    position ow + r, so the row stride is sw * Cp * 2 bytes. No A packing, no im2col.
 *  - B: the weights in 16-column strips of bf16 pairs [strip][k pair][16][2]: the VNNI
 *    layout TDPBF16PS reads, so a B tile (16 pairs = one k-step x 16 columns) is 1 KB
 *    contiguous. Zero past Cout (whole 64-column groups) and for the padding channels.
 *    Packed per call, or once for a weight of an imported set (weight_pack.c; `fast` only).
 *  - Micro-kernel: 2 x 2 C tiles (32 positions x 32 channels, tmm0..3) from 2 A tiles
 *    (tmm4, 5) and 2 B tiles (tmm6, 7): 4 tile loads per 4 TDPBF16PS, over the whole K
 *    (taps x channel blocks): K blocks of 4 or 8 k-steps with C through memory (B in L1)
 *    measured no faster on Sapphire Rapids, so amxc_kblk is the whole K (the test runs
 *    smaller blocks: the same bits). The column blocks run innermost, so the A tiles are
 *    read again from L1.
 *  - Ragged rows: positions come in blocks of 32 along an output row; the last block of a
 *    row (wo not a multiple of 32) runs on a second tile configuration whose A and C tiles
 *    have fewer rows (16 + r or r). Every row of a task has the same tail, so a task
 *    configures twice at most. Rows of at most 16 positions (the 8x8 and 16x16 latents)
 *    run two rows per micro-kernel, one per A tile, so they keep the 2 x 2 kernel.
 *  - Task: whole output rows (up to AMXC_MP positions; a wider row is split into segments)
 *    x AMXC_NB output channels: a contiguous run of positions, so the epilogue (16x16
 *    transposes into y [Cout, P]) is conv3d_bf16.c's. 128 positions x 64 channels: 64 x 128,
 *    256 x 64 and 128 x 128 measured no faster, the wider ones slower on the 384-channel
 *    latents (too few tasks for 2 threads). LDTILECFG per configuration and
 *    TILERELEASE at the task's end: the tile state belongs to the thread, and the pool's
 *    threads run other ops between. */
#include <string.h>

#include "cpu_impl.h"

#define AMXC_TK   32  /* channels per k-step: one A tile row (64 bytes), one B tile's 16 pairs */
#define AMXC_TILE 512 /* bf16 in one B tile (16 pairs x 16 columns x 2)                       */
#define AMXC_NB   64  /* output channels per task: 2 micro-kernel column blocks              */
#define AMXC_MP   128 /* output positions per task, at most                                  */

static int64_t amxc_kblk     = (int64_t)1 << 40; /* k-steps per K block: the whole K (a variable for the test) */
static size_t  amxc_xp_bytes = (size_t)64 << 20;  /* xp per frame group (tests: small groups)    */

/* ---- plain C input copy and weight packing (conv3d_bf16.c has the AVX-512 ones) ---- */

struct amxc_xp_job {
    const struct infvsr_cpu_conv * a;
    const uint16_t *               x;
    uint16_t *                     xp;
    int64_t                        t0, Hp, Wp, Cp;
};

static void amxc_xp_task(void * ctx, int64_t row, int tid) {
    (void)tid;
    const struct amxc_xp_job * j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t tl = row / j->Hp, h = row % j->Hp - a->pad_top, Cp = j->Cp;
    uint16_t * d = j->xp + row * j->Wp * Cp;
    memset(d, 0, (size_t)(j->Wp * Cp) * sizeof *d);
    if (h < 0 || h >= a->h) return;
    const int64_t plane = a->t * a->h * a->w_in;
    const uint16_t * s = j->x + ((j->t0 + tl) * a->h + h) * a->w_in;
    for (int64_t w = 0; w < a->w_in; w++) {
        uint16_t * dd = d + (a->pad_left + w) * Cp;
        for (int64_t ci = 0; ci < a->cin; ci++) dd[ci] = s[ci * plane + w];
    }
}

struct amxc_wp_job {
    const struct infvsr_cpu_conv * a;
    uint16_t *                     wp;
    int64_t                        Cp, taps;
};

static void amxc_wp_task(void * ctx, int64_t s, int tid) {
    (void)tid;
    const struct amxc_wp_job * j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t K2 = j->taps * j->Cp / 2;
    uint16_t * dst = j->wp + s * K2 * 32;
    for (int64_t q = 0; q < K2; q++) {
        const int64_t tap = 2 * q / j->Cp, ci0 = 2 * q % j->Cp;
        for (int64_t c = 0; c < 16; c++) {
            const int64_t co = s * 16 + c;
            for (int e = 0; e < 2; e++) {
                const int64_t ci = ci0 + e;
                uint16_t v = 0;
                if (co < a->cout && ci < a->cin) {
                    const size_t at = (size_t)((co * a->cin + ci) * j->taps + tap);
                    v = a->w.dtype == INFVSR_TYPE_BF16 ? ((const uint16_t *)a->w.data)[at]
                                                       : infvsr_f32_to_bf16(infvsr__w_get(a->w, at));
                }
                dst[q * 32 + 2 * c + e] = v;
            }
        }
    }
}

/* y's run for one task, as infvsr__conv3d_bf16_epilogue does it (the same bits). */
static void amxc_epilogue_c(const float * ct, int64_t nt, int64_t rows, int64_t col0, int64_t cols,
                            const float * bias, void * y, enum infvsr_dtype y_dtype, size_t P, size_t ybase) {
    for (int64_t i = 0; i < cols; i++) {
        const int64_t co = col0 + i;
        for (int64_t r = 0; r < rows; r++) {
            float v = ct[r * nt + i];
            if (bias) v = v + bias[co];
            const size_t at = (size_t)co * P + ybase + (size_t)r;
            if (y_dtype == INFVSR_TYPE_F32) ((float *)y)[at] = v;
            else ((uint16_t *)y)[at] = infvsr_f32_to_bf16(v);
        }
    }
}

/* ---- the tiles ---- */

/* Palette 1: C tiles 0, 1 and A tile 4 have m0 rows, C tiles 2, 3 and A tile 5 m1 rows (0:
 * unconfigured, the one-A-tile kernel), B tiles 6, 7 16 pairs x 16 columns. */
static void amxc_cfg(struct infvsr_amx_cfg * cfg, int m0, int m1) {
    memset(cfg, 0, sizeof *cfg);
    cfg->palette = 1;
    const int rows[8] = { m0, m0, m1, m1, m0, m1, 16, 16 };
    for (int t = 0; t < 8; t++) {
        cfg->rows[t]  = (uint8_t)rows[t];
        cfg->colsb[t] = rows[t] ? 64 : 0;
    }
}

/* C[2 x 16 or 16 positions][32 channels] (+)= A . B over k-steps k0 .. k0 + nk: the rows of
 * A tile 4 are positions at a0, those of A tile 5 at a1 (the next 16 of the row, or the
 * next output row when rows are short), each + the k-step's tap offset and channel block,
 * row stride `as` bytes; B of k-step k at b0/b1 + k * AMXC_TILE; C tiles 0, 1 at c0, tiles
 * 2, 3 at c1 (row stride AMXC_NB floats). */
static inline __attribute__((always_inline)) AMX_FN void amxc_micro(const bool two, const uint16_t * a0,
                                                                    const uint16_t * a1, int64_t as,
                                                                    const int64_t * tap_off, int64_t cpt, int64_t k0,
                                                                    int64_t nk, const uint16_t * b0,
                                                                    const uint16_t * b1, float * c0, float * c1,
                                                                    bool first) {
    const int64_t cs = AMXC_NB * (int64_t)sizeof(float);
    if (first) {
        amx_zero(0);
        amx_zero(1);
        if (two) {
            amx_zero(2);
            amx_zero(3);
        }
    } else {
        amx_load(0, c0, cs);
        amx_load(1, c0 + 16, cs);
        if (two) {
            amx_load(2, c1, cs);
            amx_load(3, c1 + 16, cs);
        }
    }
    int64_t tap = k0 / cpt, ch = (k0 % cpt) * AMXC_TK;
    for (int64_t k = k0; k < k0 + nk; k++) {
        const int64_t off = tap_off[tap] + ch, o = k * AMXC_TILE;
        amx_load(4, a0 + off, as);
        amx_load(6, b0 + o, 64);
        amx_load(7, b1 + o, 64);
        amx_dpbf16ps(0, 4, 6);
        amx_dpbf16ps(1, 4, 7);
        if (two) {
            amx_load(5, a1 + off, as);
            amx_dpbf16ps(2, 5, 6);
            amx_dpbf16ps(3, 5, 7);
        }
        if ((ch += AMXC_TK) == cpt * AMXC_TK) ch = 0, tap++;
    }
    amx_store(0, c0, cs);
    amx_store(1, c0 + 16, cs);
    if (two) {
        amx_store(2, c1, cs);
        amx_store(3, c1 + 16, cs);
    }
}

struct amxc_job {
    const struct infvsr_cpu_conv * a;
    const uint16_t *               xp, * wp;
    const float *                  bias;    /* f32 [Cout] or NULL */
    const int64_t *                tap_off; /* element offset of each tap in xp */
    void *                         y;
    enum infvsr_dtype              y_dtype;
    bool                           fast;    /* conv3d_bf16.c's AVX-512 epilogue */
    int64_t                        Cp, cpt, ksteps, Hp, Wp;
    int64_t                        f0, P, rows_g; /* this frame group: output frames from f0, its output rows */
    int64_t                        R, seg, n_seg, n_pt; /* task: R rows, or a segment of seg positions of one row */
};

/* Positions [ow0, ow1) of every row of a task in blocks of 32, the ones of length n only
 * (32 for the full blocks, the tail's length for the last block of each row). `pairs`
 * (rows of at most 16 positions: the 8x8 and 16x16 latents): two rows per micro-kernel
 * instead, one per A tile, so those rows still run the 2 x 2 kernel (1 tile load per
 * TDPBF16PS, not 1.5); a task's odd last row runs alone. */
static inline __attribute__((always_inline)) AMX_FN void amxc_blocks(const struct amxc_job * j, int64_t row0, int64_t nrows,
                                                                     int64_t ow0, int64_t ow1, int64_t n, bool pairs,
                                                                     float * ct, int64_t ncb, const uint16_t * bt) {
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t as = a->sw * j->Cp * (int64_t)sizeof(uint16_t), bstride = j->ksteps * AMXC_TILE, width = ow1 - ow0;
    for (int64_t k0 = 0; k0 < j->ksteps; k0 += amxc_kblk) {
        const int64_t nk = j->ksteps - k0 < amxc_kblk ? j->ksteps - k0 : amxc_kblk;
        for (int64_t r = 0; r < nrows; r += pairs ? 2 : 1) {
            const int64_t rg = row0 + r, to = rg / a->ho, oh = rg % a->ho;
            const uint16_t * xrow = j->xp + ((to * a->st * j->Hp + oh * a->sh) * j->Wp + ow0 * a->sw) * j->Cp;
            const bool two = pairs ? r + 1 < nrows : n > 16;
            const uint16_t * xrow1 = xrow;
            if (pairs && two) {
                const int64_t to1 = (rg + 1) / a->ho, oh1 = (rg + 1) % a->ho;
                xrow1 = j->xp + ((to1 * a->st * j->Hp + oh1 * a->sh) * j->Wp + ow0 * a->sw) * j->Cp;
            }
            for (int64_t ow = ow0; ow < ow1; ow += 32) {
                if ((ow1 - ow < 32 ? ow1 - ow : 32) != n) continue;
                const int64_t e = (ow - ow0) * a->sw * j->Cp; /* the block's first input */
                const uint16_t * ap0 = xrow + e, * ap1 = pairs ? xrow1 + e : ap0 + 16 * a->sw * j->Cp;
                for (int64_t cb = 0; cb < ncb; cb++) { /* A's block again while it is in L1 */
                    const uint16_t * b0 = bt + 2 * cb * bstride, * b1 = b0 + bstride;
                    float * c0 = ct + (r * width + ow - ow0) * AMXC_NB + cb * 32;
                    float * c1 = pairs ? c0 + width * AMXC_NB : c0 + 16 * AMXC_NB;
                    if (two) amxc_micro(true, ap0, ap1, as, j->tap_off, j->cpt, k0, nk, b0, b1, c0, c1, k0 == 0);
                    else amxc_micro(false, ap0, ap1, as, j->tap_off, j->cpt, k0, nk, b0, b1, c0, c1, k0 == 0);
                }
            }
        }
    }
}

AMX_FN static void amxc_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    const struct amxc_job * j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t pi = t % j->n_pt, ni = t / j->n_pt;
    int64_t row0, nrows, ow0, ow1;
    if (j->n_seg == 1) { /* R whole rows */
        row0 = pi * j->R, nrows = j->rows_g - row0 < j->R ? j->rows_g - row0 : j->R, ow0 = 0, ow1 = a->wo;
    } else { /* one segment of one row */
        row0 = pi / j->n_seg, nrows = 1, ow0 = pi % j->n_seg * j->seg;
        ow1 = ow0 + j->seg < a->wo ? ow0 + j->seg : a->wo;
    }
    const int64_t col0 = ni * AMXC_NB, cols = a->cout - col0 < AMXC_NB ? a->cout - col0 : AMXC_NB;
    const int64_t ncb = (cols + 31) / 32, npos = nrows * (ow1 - ow0), tail = (ow1 - ow0) % 32;
    _Alignas(64) float ct[(AMXC_MP + 15) * AMXC_NB];
    const uint16_t * bt = j->wp + ni * (AMXC_NB / 16) * j->ksteps * AMXC_TILE;
    struct infvsr_amx_cfg cfg;
    if (ow1 - ow0 <= 16) { /* short rows: two per micro-kernel */
        amxc_cfg(&cfg, (int)tail, nrows > 1 ? (int)tail : 0);
        amx_config(&cfg);
        amxc_blocks(j, row0, nrows, ow0, ow1, tail, true, ct, ncb, bt);
    } else {
        if (ow1 - ow0 >= 32) {
            amxc_cfg(&cfg, 16, 16);
            amx_config(&cfg);
            amxc_blocks(j, row0, nrows, ow0, ow1, 32, false, ct, ncb, bt);
        }
        if (tail) {
            amxc_cfg(&cfg, tail < 16 ? (int)tail : 16, tail > 16 ? (int)tail - 16 : 0);
            amx_config(&cfg);
            amxc_blocks(j, row0, nrows, ow0, ow1, tail, false, ct, ncb, bt);
        }
    }
    amx_release();
    const size_t ybase = (size_t)(j->f0 * a->ho * a->wo + row0 * a->wo + ow0);
    if (j->fast) infvsr__conv3d_bf16_epilogue(ct, AMXC_NB, npos, col0, cols, j->bias, j->y, j->y_dtype, (size_t)j->P, ybase);
    else amxc_epilogue_c(ct, AMXC_NB, npos, col0, cols, j->bias, j->y, j->y_dtype, (size_t)j->P, ybase);
}

/* The conv (contract of infvsr_cpu_op_conv3d_bf16); fast: conv3d_bf16.c's AVX-512 input
 * copy, packing and epilogue (only where the CPU has AVX512-BF16), else the plain C ones. */
static enum infvsr_status amxc_conv(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a, const uint16_t * x,
                                    void * y, enum infvsr_dtype y_dtype, bool fast) {
    const int64_t taps = a->kt * a->kh * a->kw, Cp = (a->cin + AMXC_TK - 1) / AMXC_TK * AMXC_TK, cpt = Cp / AMXC_TK;
    const int64_t n_ng = (a->cout + AMXC_NB - 1) / AMXC_NB, strips = n_ng * (AMXC_NB / 16);
    const int64_t Hp = a->h + a->pad_top + a->pad_bottom, Wp = a->w_in + a->pad_left + a->pad_right;
    /* the weights packed once, when they belong to an imported weight set (weight_pack.c) */
    const uint16_t * cached = fast ? infvsr__wcache_conv_amx(c, a, strips, Cp) : NULL;
    /* panel: packed weights (unless cached) | f32 bias | tap offsets (int64), in float units */
    const size_t wp_f = cached ? 0 : (size_t)(strips * taps * Cp * 8), bias_f = ((size_t)a->cout + 15) / 16 * 16;
    float * panel = infvsr__buf_reserve(&c->panel, wp_f + bias_f + 2 * (size_t)taps);
    if (!panel) return INFVSR_ERR_NOMEM;
    uint16_t * wp = (uint16_t *)panel;
    float * bias = a->b.data ? panel + wp_f : NULL;
    int64_t * tap_off = (int64_t *)(void *)(panel + wp_f + bias_f);
    if (bias) infvsr__w_widen(bias, a->b, 0, (size_t)a->cout);
    for (int64_t dt = 0, i = 0; dt < a->kt; dt++)
        for (int64_t dh = 0; dh < a->kh; dh++)
            for (int64_t dw = 0; dw < a->kw; dw++, i++) tap_off[i] = ((dt * Hp + dh) * Wp + dw) * Cp;
    if (cached) {
        /* served from the cache */
    } else if (fast) {
        infvsr__conv3d_bf16_pack_w(c, a, wp, strips, Cp);
    } else {
        struct amxc_wp_job wj = { .a = a, .wp = wp, .Cp = Cp, .taps = taps };
        infvsr__par(c, strips, amxc_wp_task, &wj);
    }
    /* output frames per group: its input frames' xp within amxc_xp_bytes (at least one) */
    const size_t frame_bytes = (size_t)(Hp * Wp * Cp) * sizeof(uint16_t);
    int64_t fg = ((int64_t)(amxc_xp_bytes / frame_bytes) - a->kt) / a->st + 1;
    if (fg < 1) fg = 1;
    if (fg > a->to) fg = a->to;
    const int64_t tl_max = (fg - 1) * a->st + a->kt;
    uint16_t * xp = (uint16_t *)infvsr__buf_reserve(&c->col, ((size_t)tl_max * frame_bytes + 3) / 4);
    if (!xp) return INFVSR_ERR_NOMEM;

    struct amxc_job g = { .a = a, .xp = xp, .wp = cached ? cached : wp, .bias = bias, .tap_off = tap_off, .y = y, .y_dtype = y_dtype,
                          .fast = fast, .Cp = Cp, .cpt = cpt, .ksteps = taps * cpt, .Hp = Hp, .Wp = Wp,
                          .P = a->to * a->ho * a->wo };
    if (a->wo <= AMXC_MP) g.R = AMXC_MP / a->wo, g.seg = a->wo, g.n_seg = 1;
    else g.R = 1, g.seg = AMXC_MP, g.n_seg = (a->wo + AMXC_MP - 1) / AMXC_MP;
    for (int64_t f0 = 0; f0 < a->to; f0 += fg) {
        const int64_t nf = a->to - f0 < fg ? a->to - f0 : fg, tl = (nf - 1) * a->st + a->kt;
        if (fast) {
            infvsr__conv3d_bf16_fill_xp(c, a, x, xp, f0 * a->st, tl, Hp, Wp, Cp);
        } else {
            struct amxc_xp_job xj = { .a = a, .x = x, .xp = xp, .t0 = f0 * a->st, .Hp = Hp, .Wp = Wp, .Cp = Cp };
            infvsr__par(c, tl * Hp, amxc_xp_task, &xj);
        }
        g.f0 = f0;
        g.rows_g = nf * a->ho;
        g.n_pt = g.n_seg == 1 ? (g.rows_g + g.R - 1) / g.R : g.rows_g * g.n_seg;
        infvsr__par(c, g.n_pt * n_ng, amxc_task, &g);
    }
    return INFVSR_OK;
}
