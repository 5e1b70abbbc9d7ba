/* conv3d for 3x3 spatial kernels with stride 1 in t, h and w: Winograd F(4x4, 3x3) over
 * (h, w), the temporal taps folded into the GEMM depth. Same scheme as the F(2x2, 3x3)
 * path (conv3d_winograd.c, read its header first) with 6x6 input tiles and 36 transform
 * points: 36 multiplies per 16 outputs instead of 16 per 4 (1.78x fewer GEMM flops), and
 * V and M hold 2.25 floats per output pixel instead of 4, so the transforms move less
 * memory too. Taken for convs with many tiles (conv3d_winograd.c decides): the weight
 * transform writes 36 kt Cout Cin floats per call, amortised only over enough columns.
 *
 * Interpolation points 0, +-1, +-2 and infinity (Lavin and Gray's matrices):
 *   B^T = [4  0 -5  0 1 0]   G = [ 1/4     0     0]   A^T = [1 1  1 1  1 0]
 *         [0 -4 -4  1 1 0]       [-1/6  -1/6  -1/6]         [0 1 -1 2 -2 0]
 *         [0  4 -4 -1 1 0]       [-1/6   1/6  -1/6]         [0 1  1 4  4 0]
 *         [0 -2 -1  2 1 0]       [1/24  1/12   1/6]         [0 1 -1 8 -8 1]
 *         [0  2 -1 -2 1 0]       [1/24 -1/12   1/6]
 *         [0  4  0 -5 0 1]       [   0     0     1]
 * Accuracy: in f32 the larger constants cost about an order of magnitude over a direct
 * dot product: measured ~1e-6 to 2e-6 relative to a float64 conv (tests/ops checks
 * <= 1e-5 against the float64 reference). */
#include <cblas.h>
#include <string.h>

#include "conv3d_winograd.h"
#include "simd.h"

#define NP 36 /* transform points */

struct wino4_job {
    const struct infvsr_cpu_conv * a;
    float *                        u;       /* [36][cout][kt][cin]        */
    float *                        v;       /* [36][t][cin][nb]           */
    float *                        m;       /* [36][to][cout][nb]         */
    const float *                  bias;    /* NULL or cout floats (f32)  */
    int64_t                        tiles_w; /* tiles per row of a frame   */
    int64_t                        j0, nb;  /* tiles [j0, j0 + nb) of each frame */
    int64_t                        row_len;       /* 4 tiles_w + 2, + 32 of gather/store slack */
    int64_t                        thread_stride; /* floats of scratch per thread */
    float *                        thread_buf;    /* scratch: 6 input rows, 4 output rows or weights */
};

/* Lanes [0, n) set, n in [1, 8]. */
static __m256i lane_mask(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* U = G g G^T for every (ci, dt) of one output channel co (one task per co), 8 input
 * channels per vector. G = S G' with G' integer (rows (1 0 0), (1 1 1), (1 -1 1),
 * (1 2 4), (1 -2 4), (0 0 1)) and S = diag(1/4, -1/6, -1/6, 1/24, 1/24, 1): U[r][c] =
 * S_r S_c (G' g G'^T)[r][c], one scaling per value. The kernels of co are widened
 * into the thread's scratch, transposed there to [dt][9][ci] (Cin padded to a multiple
 * of 8 with zeros), and each U row segment is stored in place. */
static void weight_task(void * ctx, int64_t co, int tid) {
    const struct wino4_job *       j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t kvol = a->kt * 9, es = a->kt * a->cout * a->cin, cinp = (a->cin + 7) & ~(int64_t)7;
    float *       g_all = j->thread_buf + (int64_t)tid * j->thread_stride; /* cin kt 9 widened weights */
    float *       gt    = g_all + a->cin * kvol;                         /* [kt][9][cinp] */
    infvsr__w_widen(g_all, a->w, (size_t)(co * a->cin * kvol), (size_t)(a->cin * kvol));
    for (int64_t k = 0; k < kvol; k++) {
        float * row = gt + k * cinp;
        for (int64_t ci = 0; ci < a->cin; ci++) row[ci] = g_all[ci * kvol + k];
        for (int64_t ci = a->cin; ci < cinp; ci++) row[ci] = 0.0f;
    }
    static const float scale[6] = { 1.0f / 4, -1.0f / 6, -1.0f / 6, 1.0f / 24, 1.0f / 24, 1.0f };
    const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f);
    for (int64_t dt = 0; dt < a->kt; dt++) {
        float * u_dt = j->u + (co * a->kt + dt) * a->cin;
        for (int64_t ci = 0; ci < cinp; ci += 8) {
            const int64_t n   = a->cin - ci < 8 ? a->cin - ci : 8;
            const __m256i msk = lane_mask(n);
            __m256        t[6][3];
            for (int s = 0; s < 3; s++) { /* G' g: rows */
                const __m256 g0 = _mm256_loadu_ps(gt + (dt * 9 + s) * cinp + ci);
                const __m256 g1 = _mm256_loadu_ps(gt + (dt * 9 + 3 + s) * cinp + ci);
                const __m256 g2 = _mm256_loadu_ps(gt + (dt * 9 + 6 + s) * cinp + ci);
                const __m256 s02 = _mm256_add_ps(g0, g2), s04 = _mm256_fmadd_ps(four, g2, g0);
                t[0][s] = g0;
                t[1][s] = _mm256_add_ps(s02, g1);
                t[2][s] = _mm256_sub_ps(s02, g1);
                t[3][s] = _mm256_fmadd_ps(two, g1, s04);
                t[4][s] = _mm256_fnmadd_ps(two, g1, s04);
                t[5][s] = g2;
            }
            for (int r = 0; r < 6; r++) { /* (G' g) G'^T: columns, then S . S */
                const __m256 g0 = t[r][0], g1 = t[r][1], g2 = t[r][2];
                const __m256 s02 = _mm256_add_ps(g0, g2), s04 = _mm256_fmadd_ps(four, g2, g0);
                const __m256 o[6] = { g0, _mm256_add_ps(s02, g1), _mm256_sub_ps(s02, g1), _mm256_fmadd_ps(two, g1, s04),
                                      _mm256_fnmadd_ps(two, g1, s04), g2 };
                for (int c = 0; c < 6; c++) {
                    const __m256 val = _mm256_mul_ps(o[c], _mm256_set1_ps(scale[r] * scale[c]));
                    float *      dst = u_dt + (r * 6 + c) * es + ci;
                    if (n == 8) _mm256_storeu_ps(dst, val);
                    else _mm256_maskstore_ps(dst, msk, val);
                }
            }
        }
    }
}

/* 1-D B^T d over 6 values (8 tiles per vector) */
static inline void bt6(const __m256 d[6], __m256 v[6]) {
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    const __m256 s12 = _mm256_add_ps(d[1], d[2]), s34 = _mm256_add_ps(d[3], d[4]);
    const __m256 d12 = _mm256_sub_ps(d[1], d[2]), d43 = _mm256_sub_ps(d[4], d[3]);
    const __m256 d42 = _mm256_sub_ps(d[4], d[2]), d31 = _mm256_sub_ps(d[3], d[1]);
    v[0] = _mm256_add_ps(_mm256_fnmadd_ps(five, d[2], _mm256_mul_ps(four, d[0])), d[4]);
    v[1] = _mm256_fnmadd_ps(four, s12, s34);
    v[2] = _mm256_fmadd_ps(four, d12, d43);
    v[3] = _mm256_fmadd_ps(two, d31, d42);
    v[4] = _mm256_fnmadd_ps(two, d31, d42);
    v[5] = _mm256_add_ps(_mm256_fnmadd_ps(five, d[3], _mm256_mul_ps(four, d[1])), d[5]);
}

/* 1-D A^T m over 6 values */
static inline void at6(const __m256 m[6], __m256 y[4]) {
    const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
    const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
    const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
    y[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
    y[1] = _mm256_fmadd_ps(two, d34, d12);
    y[2] = _mm256_fmadd_ps(four, s34, s12);
    y[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d34, d12), m[5]);
}

/* d[q][i] = row[4 i + q] for q in [0, 6), i in [0, 8): the 6 columns of 8 consecutive
 * tiles (34 floats from row). A 4 x 8 transpose of row[0, 32) gives columns 0-3; 4 and
 * 5 are columns 0 and 1 of the next tile, i.e. those shifted by one lane, row[32] and
 * row[33] entering last. */
static inline void deinterleave(const float * row, __m256 d[6]) {
    const __m256 a = _mm256_loadu_ps(row), b = _mm256_loadu_ps(row + 8);
    const __m256 c = _mm256_loadu_ps(row + 16), e = _mm256_loadu_ps(row + 24);
    const __m256 t04 = _mm256_permute2f128_ps(a, c, 0x20), t15 = _mm256_permute2f128_ps(a, c, 0x31);
    const __m256 t26 = _mm256_permute2f128_ps(b, e, 0x20), t37 = _mm256_permute2f128_ps(b, e, 0x31);
    const __m256 x0 = _mm256_unpacklo_ps(t04, t15), x1 = _mm256_unpackhi_ps(t04, t15);
    const __m256 x2 = _mm256_unpacklo_ps(t26, t37), x3 = _mm256_unpackhi_ps(t26, t37);
    d[0] = _mm256_shuffle_ps(x0, x2, 0x44);
    d[1] = _mm256_shuffle_ps(x0, x2, 0xEE);
    d[2] = _mm256_shuffle_ps(x1, x3, 0x44);
    d[3] = _mm256_shuffle_ps(x1, x3, 0xEE);
    const __m256i next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
    d[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(d[0], next), _mm256_broadcast_ss(row + 32), 0x80);
    d[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(d[1], next), _mm256_broadcast_ss(row + 33), 0x80);
}

/* V = B^T d B for every tile of the block, one task per (ci, ti) input plane, 8 tiles of
 * a tile row at a time. The 6 input rows of a tile row are copied into zero-padded rows
 * first (row[k] holds input column k - pad_left), so border tiles need no special case;
 * tile tw reads row[4 tw .. 4 tw + 5]. */
static void input_task(void * ctx, int64_t r, int tid) {
    const struct wino4_job *       j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t ci = r / a->t, ti = r % a->t;
    const float * src = a->x + (ci * a->t + ti) * a->h * a->w_in;
    const int64_t es = a->cin * a->t * j->nb; /* stride between transform points */
    float *       dst = j->v + (ti * a->cin + ci) * j->nb;
    float *       pr  = j->thread_buf + (int64_t)tid * j->thread_stride;
    const int64_t j1  = j->j0 + j->nb;
    for (int64_t tile = j->j0; tile < j1;) {
        const int64_t th = tile / j->tiles_w, tw0 = tile % j->tiles_w;
        const int64_t n_row = j->tiles_w - tw0 < j1 - tile ? j->tiles_w - tw0 : j1 - tile; /* tiles of this row */
        const int64_t y0 = th * 4 - a->pad_top;
        /* columns [4 tw0, 4 (tw0 + n_row) + 2) are used; a partial group of tiles reads up
         * to 28 more (masked out on store, but kept initialised) */
        const int64_t k0 = 4 * tw0, k1 = 4 * (tw0 + n_row) + 2;
        const int64_t k2 = k1 + 32 < j->row_len ? k1 + 32 : j->row_len;
        infvsr__wino_pad_rows(pr, j->row_len, 6, src, a->h, a->w_in, a->pad_left, y0, k0, k2);
        const int64_t q0 = tile - j->j0;
        for (int64_t g = 0; g < n_row; g += 8) {
            const int64_t k = 4 * (tw0 + g);
            __m256        h[6][6]; /* [row][column point] */
            for (int rr = 0; rr < 6; rr++) {
                __m256 d[6];
                deinterleave(pr + rr * j->row_len + k, d);
                bt6(d, h[rr]); /* d B: columns */
            }
            float *       out = dst + q0 + g;
            const int64_t n   = n_row - g < 8 ? n_row - g : 8;
            const __m256i msk = lane_mask(n);
            for (int s = 0; s < 6; s++) { /* B^T (d B): rows */
                __m256 col[6], v[6];
                for (int rr = 0; rr < 6; rr++) col[rr] = h[rr][s];
                bt6(col, v);
                for (int rr = 0; rr < 6; rr++) {
                    if (n == 8) _mm256_storeu_ps(out + (rr * 6 + s) * es, v[rr]);
                    else _mm256_maskstore_ps(out + (rr * 6 + s) * es, msk, v[rr]);
                }
            }
        }
        tile += n_row;
    }
}

/* y = A^T M A (+ bias) for every tile of the block, one task per (co, to) output plane,
 * 8 tiles at a time; the 4 output rows of a tile row are assembled in the thread's
 * scratch (a 4 x 8 transpose interleaves the 4 columns of 8 tiles) and copied out
 * clipped to [0, Ho) x [0, Wo). */
static void output_task(void * ctx, int64_t r, int tid) {
    const struct wino4_job *       j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t co = r / a->to, to = r % a->to;
    const int64_t es = a->cout * a->to * j->nb;
    const float * src = j->m + (to * a->cout + co) * j->nb;
    float *       dst = a->y + (co * a->to + to) * a->ho * a->wo;
    float *       orow = j->thread_buf + (int64_t)tid * j->thread_stride; /* 4 rows of row_len */
    const __m256  b = _mm256_set1_ps(j->bias ? j->bias[co] : 0.0f);
    const int64_t j1 = j->j0 + j->nb;
    for (int64_t tile = j->j0; tile < j1;) {
        const int64_t th = tile / j->tiles_w, tw0 = tile % j->tiles_w;
        const int64_t n_row = j->tiles_w - tw0 < j1 - tile ? j->tiles_w - tw0 : j1 - tile;
        const int64_t q0 = tile - j->j0;
        for (int64_t g = 0; g < n_row; g += 8) {
            const int64_t n   = n_row - g < 8 ? n_row - g : 8;
            const __m256i msk = lane_mask(n);
            const float * in  = src + q0 + g;
            __m256        s[4][6]; /* A^T M: [output row][column point] */
            for (int c = 0; c < 6; c++) {
                __m256 m[6], y[4];
                for (int rr = 0; rr < 6; rr++) {
                    const float * p = in + (rr * 6 + c) * es;
                    m[rr] = n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, msk);
                }
                at6(m, y);
                for (int rr = 0; rr < 4; rr++) s[rr][c] = y[rr];
            }
            for (int rr = 0; rr < 4; rr++) { /* (A^T M) A: columns, then interleave */
                __m256 y[4];
                at6(s[rr], y);
                for (int c = 0; c < 4; c++) y[c] = _mm256_add_ps(y[c], b);
                const __m256 lo01 = _mm256_unpacklo_ps(y[0], y[1]), hi01 = _mm256_unpackhi_ps(y[0], y[1]);
                const __m256 lo23 = _mm256_unpacklo_ps(y[2], y[3]), hi23 = _mm256_unpackhi_ps(y[2], y[3]);
                const __m256 t04 = _mm256_shuffle_ps(lo01, lo23, 0x44), t15 = _mm256_shuffle_ps(lo01, lo23, 0xEE);
                const __m256 t26 = _mm256_shuffle_ps(hi01, hi23, 0x44), t37 = _mm256_shuffle_ps(hi01, hi23, 0xEE);
                float *      o = orow + rr * j->row_len + 4 * (tw0 + g);
                _mm256_storeu_ps(o, _mm256_permute2f128_ps(t04, t15, 0x20));
                _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(t26, t37, 0x20));
                _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(t04, t15, 0x31));
                _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(t26, t37, 0x31));
            }
        }
        const int64_t ox0 = 4 * tw0, ox1 = 4 * (tw0 + n_row) < a->wo ? 4 * (tw0 + n_row) : a->wo;
        for (int rr = 0; rr < 4 && th * 4 + rr < a->ho; rr++)
            memcpy(dst + (th * 4 + rr) * a->wo + ox0, orow + rr * j->row_len + ox0, (size_t)(ox1 - ox0) * sizeof(float));
        tile += n_row;
    }
}

/* M_e[to] = U_e . V_e[to .. to + kt - 1] for one transform point e and output frame to:
 * the kt temporal taps are one GEMM of depth kt Cin, their input frames being adjacent
 * row blocks of V_e. Deeper than kt GEMMs of depth Cin accumulated into M (measured
 * ~15% faster for Cin = 96), and To times more tasks to spread over the pool. */
static void gemm_task(void * ctx, int64_t r, int tid) {
    (void)tid;
    const struct wino4_job *       j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t e = r / a->to, to = r % a->to;
    const int     N = (int)j->nb, K = (int)(a->kt * a->cin), M = (int)a->cout;
    const float * A = j->u + e * a->kt * a->cout * a->cin;
    const float * B = j->v + (e * a->t + to) * a->cin * j->nb;
    float *       C = j->m + (e * a->to + to) * a->cout * j->nb;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
}

enum infvsr_status infvsr__conv3d_winograd4(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a) {
    const int64_t tiles_h = (a->ho + 3) / 4, tiles_w = (a->wo + 3) / 4, n_tiles = tiles_h * tiles_w;
    const int64_t per_tile = NP * (a->cin * a->t + a->cout * a->to); /* floats of V + M per tile */
    int64_t       nb = (int64_t)(infvsr__conv3d_winograd_block_bytes() / sizeof(float)) / per_tile;
    if (nb < 1) nb = 1;
    if (nb > n_tiles) nb = n_tiles;

    const size_t  un = (size_t)(NP * a->kt * a->cout * a->cin);
    const int64_t row_len = 4 * tiles_w + 2 + 32;
    const size_t  un_b = (un + (size_t)a->cout + 15) & ~(size_t)15; /* keep the rows 64-byte aligned */
    const int64_t w_len = (a->cin * a->kt * 9 + a->kt * 9 * ((a->cin + 7) & ~(int64_t)7) + 15) & ~(int64_t)15;
    const int64_t per_thread = 6 * row_len > w_len ? 6 * row_len : w_len; /* transforms and weights take turns */
    float *       u = infvsr__buf_reserve(&c->panel, un_b + (size_t)(c->n_threads * per_thread));
    float *       v = infvsr__buf_reserve(&c->col, (size_t)(NP * a->cin * a->t * nb));
    float *       m = infvsr__buf_reserve(&c->scratch, (size_t)(NP * a->cout * a->to * nb));
    if (!u || !v || !m) return INFVSR_ERR_NOMEM;
    float * bias = NULL;
    if (a->b.data) {
        bias = u + un;
        infvsr__w_widen(bias, a->b, 0, (size_t)a->cout);
    }

    struct wino4_job j = { .a = a, .u = u, .v = v, .m = m, .bias = bias, .tiles_w = tiles_w, .row_len = row_len,
                           .thread_buf = u + un_b, .thread_stride = per_thread };
    infvsr__par(c, a->cout, weight_task, &j);
    for (int64_t j0 = 0; j0 < n_tiles; j0 += nb) {
        j.j0 = j0;
        j.nb = n_tiles - j0 < nb ? n_tiles - j0 : nb;
        infvsr__par(c, a->cin * a->t, input_task, &j);
        /* the 36 To GEMMs on the pool, single-threaded sgemm each (see conv3d_winograd.c) */
        openblas_set_num_threads(1);
        infvsr__par(c, NP * a->to, gemm_task, &j);
        openblas_set_num_threads(c->n_threads);
        infvsr__par(c, a->cout * a->to, output_task, &j);
    }
    return INFVSR_OK;
}
