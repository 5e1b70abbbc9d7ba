/* conv3d for 3x3 spatial kernels with stride 1 in t, h and w: Winograd F(2x2, 3x3) over
 * (h, w), the temporal taps accumulated as separate GEMMs.
 *
 * Every 2x2 output tile comes from a 4x4 input tile d: y = A^T [ (G g G^T) (.) (B^T d B) ] A.
 * For each of the 16 transform points e the elementwise product summed over (ci, dt) is a
 * GEMM:   M_e[co, to, j] = sum_dt  U_e,dt[co, ci] . V_e[ci, to + dt, j]
 * with j the tile index. V is laid out [e][ci][t][j], so for a fixed dt the frames
 * to + dt (to = 0..To-1) are one contiguous run: one sgemm of N = To * nb per (e, dt),
 * accumulated over dt with beta = 1. That is 16 multiplies per 4 outputs instead of 36
 * (2.25x fewer), at the price of an input and an output transform (O(Cin) and O(Cout)
 * work per tile, tiny next to the O(Cin Cout) GEMM).
 *
 * Memory stays bounded: tiles are processed in blocks of nb tiles per frame so that
 * V (16 Cin T nb) and M (16 Cout To nb) fit in 64 MiB together; both live in the
 * backend's reusable buffers (col and scratch), U (16 kt Cout Cin) in the panel buffer.
 * Weights are transformed on every call (<= 384 x 384 x 3 x 16 floats); that is only
 * amortised over enough tiles, hence the size gate in infvsr__conv3d_winograd_fits.
 *
 * Accuracy: F(2x2, 3x3) only uses the constants 0, +-1 and 1/2, so its f32 rounding is
 * of the same order as a direct dot product (tests/ops checks it against the float64
 * reference at 1e-5). */
#include <cblas.h>
#include <string.h>

#include "conv3d_winograd.h"
#include "simd.h"

/* bytes of V + M per block; a variable only so that tests/ops can force small blocks */
static size_t wino_bytes = (size_t)64 << 20;

size_t infvsr__conv3d_winograd_set_block_bytes(size_t bytes) {
    size_t old = wino_bytes;
    wino_bytes = bytes ? bytes : (size_t)64 << 20;
    return old;
}

struct wino_job {
    const struct infvsr_cpu_conv * a;
    float *                        u;       /* [16][kt][cout][cin]        */
    float *                        v;       /* [16][cin][t][nb]           */
    float *                        m;       /* [16][cout][to][nb]         */
    const float *                  bias;    /* NULL or cout floats (f32)  */
    int64_t                        tiles_w; /* tiles per row of a frame   */
    int64_t                        j0, nb;  /* tiles [j0, j0 + nb) of each frame */
    int64_t                        row_len;       /* 2 tiles_w + 2, + 16 of vector slack */
    int64_t                        thread_stride; /* floats of scratch per thread (>= 4 row_len) */
    float *                        thread_rows;   /* scratch of the tile transforms: 4 rows */
    float *                        thread_w;      /* scratch of weight_task: cin kt 9 + kt 9 cinp */
};

/* Smallest GEMM volume Cout Cin N that takes a Winograd path. OpenBLAS 0.3.21 mallocs
 * and frees a small buffer on most sgemm calls (measured: e.g. its small-matrix kernel
 * sgemm_small_kernel_nn for 16 x 200 x 48); Winograd makes 16 kt (F(4x4): 36 kt) calls per
 * conv instead of one, so on the tiny convs of test models (dim 8) that churn became
 * visible (under ASan the quarantine made tests/vae's flat-RSS check fail). Such convs
 * gain little from Winograd anyway and stay on the im2col path. Tests lower it to reach
 * the path. */
static double wino_min_volume = 100.0 * 100.0 * 100.0;
/* Fewest GEMM columns N = To tiles for each tile size. The weight transform writes
 * 16 (36) kt Cout Cin floats per call, about a GEMM column's worth of work per U element,
 * so it only pays off over enough columns. Measured on the full-width VAE (2 threads):
 * 384 channels at 16x16, 2 output frames (128 F(2x2) columns) is ~1.3-1.9x faster with
 * F(2x2) than with im2col; one frame (64 columns) was a wash, so it stays on im2col, as
 * does 8x8 (16 columns). F(4x4) is taken from 64 of its columns (e.g. 192 channels at
 * 32x32, one frame), F(2x2) below that. */
#define WINO_MIN_COLUMNS 128.0
#define WINO4_MIN_COLUMNS 64.0
static int wino_forced_tile = 0;

double infvsr__conv3d_winograd_set_min_volume(double volume) {
    double old = wino_min_volume;
    wino_min_volume = volume;
    return old;
}

int infvsr__conv3d_winograd_set_tile(int m) {
    int old = wino_forced_tile;
    wino_forced_tile = m == 2 || m == 4 ? m : 0;
    return old;
}

size_t infvsr__conv3d_winograd_block_bytes(void) {
    return wino_bytes;
}

int infvsr__conv3d_winograd_tile(const struct infvsr_cpu_conv * a) {
    if (!(a->kh == 3 && a->kw == 3 && a->st == 1 && a->sh == 1 && a->sw == 1 && a->to >= 1 && a->ho >= 1 &&
          a->wo >= 1))
        return 0;
    if (wino_min_volume <= 0) return wino_forced_tile ? wino_forced_tile : 2; /* tests: every fitting shape */
    const double tiles2 = (double)((a->ho + 1) / 2) * (double)((a->wo + 1) / 2);
    const double tiles4 = (double)((a->ho + 3) / 4) * (double)((a->wo + 3) / 4);
    if ((double)a->cout * (double)a->cin * (double)a->to * tiles2 <= wino_min_volume) return 0;
    const int m = (double)a->to * tiles4 >= WINO4_MIN_COLUMNS ? 4 : (double)a->to * tiles2 >= WINO_MIN_COLUMNS ? 2 : 0;
    return m && wino_forced_tile ? wino_forced_tile : m;
}

bool infvsr__conv3d_winograd_fits(const struct infvsr_cpu_conv * a) {
    return infvsr__conv3d_winograd_tile(a) != 0;
}

/* Lanes [0, n) set, n in [1, 8]: masked loads/stores of a partial group of tiles. */
static __m256i lane_mask(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* U = G g G^T for every (ci, dt) of one output channel co (one task per co), 8 input
 * channels per vector. The kernels of co are widened into the thread's scratch and
 * transposed there to [dt][9][ci] (Cin padded to a multiple of 8 with zeros), so that
 * every U row segment is computed and stored 8 channels at a time. */
static void weight_task(void * ctx, int64_t co, int tid) {
    const struct wino_job *        j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t kvol = a->kt * 9, es = a->kt * a->cout * a->cin, cinp = (a->cin + 7) & ~(int64_t)7;
    float *       g_all = j->thread_w + (int64_t)tid * j->thread_stride; /* cin kt 9 widened weights */
    float *       gt    = g_all + a->cin * kvol;                       /* [kt][9][cinp] */
    infvsr__w_widen(g_all, a->w, (size_t)(co * a->cin * kvol), (size_t)(a->cin * kvol));
    for (int64_t k = 0; k < kvol; k++) {
        float * row = gt + k * cinp;
        for (int64_t ci = 0; ci < a->cin; ci++) row[ci] = g_all[ci * kvol + k];
        for (int64_t ci = a->cin; ci < cinp; ci++) row[ci] = 0.0f;
    }
    const __m256 half = _mm256_set1_ps(0.5f);
    for (int64_t dt = 0; dt < a->kt; dt++) {
        float * u_dt = j->u + (dt * a->cout + co) * a->cin;
        for (int64_t ci = 0; ci < cinp; ci += 8) {
            const int64_t n   = a->cin - ci < 8 ? a->cin - ci : 8;
            const __m256i msk = lane_mask(n);
            __m256        t[4][3];
            for (int s = 0; s < 3; s++) { /* G g: rows */
                const __m256 g0 = _mm256_loadu_ps(gt + (dt * 9 + s) * cinp + ci);
                const __m256 g1 = _mm256_loadu_ps(gt + (dt * 9 + 3 + s) * cinp + ci);
                const __m256 g2 = _mm256_loadu_ps(gt + (dt * 9 + 6 + s) * cinp + ci);
                t[0][s] = g0;
                t[1][s] = _mm256_mul_ps(half, _mm256_add_ps(_mm256_add_ps(g0, g1), g2));
                t[2][s] = _mm256_mul_ps(half, _mm256_add_ps(_mm256_sub_ps(g0, g1), g2));
                t[3][s] = g2;
            }
            for (int r = 0; r < 4; r++) { /* (G g) G^T: columns */
                const __m256 o[4] = { t[r][0],
                                      _mm256_mul_ps(half, _mm256_add_ps(_mm256_add_ps(t[r][0], t[r][1]), t[r][2])),
                                      _mm256_mul_ps(half, _mm256_add_ps(_mm256_sub_ps(t[r][0], t[r][1]), t[r][2])),
                                      t[r][2] };
                for (int c = 0; c < 4; c++) {
                    float * dst = u_dt + (r * 4 + c) * es + ci;
                    if (n == 8) _mm256_storeu_ps(dst, o[c]);
                    else _mm256_maskstore_ps(dst, msk, o[c]);
                }
            }
        }
    }
}

/* even / odd elements of the 16 floats lo, hi */
static inline __m256 evens(__m256 lo, __m256 hi) {
    __m256 t = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline __m256 odds(__m256 lo, __m256 hi) {
    __m256 t = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* V = B^T d B for every tile of the block, one task per (ci, ti) input plane, 8 tiles of
 * a tile row at a time. The 4 input rows of a tile row are first copied into zero-padded
 * rows (the thread's scratch), so border tiles need no special case: row[k] holds input
 * column k - pad_left, and tile tw reads row[2 tw .. 2 tw + 3]. */
static void input_task(void * ctx, int64_t r, int tid) {
    const struct wino_job *        j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t ci = r / a->t, ti = r % a->t;
    const float * src = a->x + (ci * a->t + ti) * a->h * a->w_in;
    const int64_t es = a->cin * a->t * j->nb; /* stride between transform points */
    float *       dst = j->v + (ci * a->t + ti) * j->nb;
    float *       pr  = j->thread_rows + (int64_t)tid * j->thread_stride;
    const int64_t j1  = j->j0 + j->nb;
    for (int64_t tile = j->j0; tile < j1;) {
        const int64_t th = tile / j->tiles_w, tw0 = tile % j->tiles_w;
        const int64_t n_row = j->tiles_w - tw0 < j1 - tile ? j->tiles_w - tw0 : j1 - tile; /* tiles of this row */
        const int64_t y0 = th * 2 - a->pad_top;
        /* the padded rows: columns [2 tw0, 2 (tw0 + n_row) + 2) are read, plus vector slack */
        const int64_t k0 = 2 * tw0, k1 = 2 * (tw0 + n_row) + 2;
        const int64_t k2 = k1 + 16 < j->row_len ? k1 + 16 : j->row_len;
        infvsr__wino_pad_rows(pr, j->row_len, 4, src, a->h, a->w_in, a->pad_left, y0, k0, k2);
        const int64_t q0 = tile - j->j0;
        for (int64_t g = 0; g < n_row; g += 8) {
            const int64_t k = 2 * (tw0 + g);
            __m256        h[4][4];
            for (int rr = 0; rr < 4; rr++) {
                const float * row = pr + rr * j->row_len + k;
                __m256 l0 = _mm256_loadu_ps(row), l1 = _mm256_loadu_ps(row + 8);
                __m256 m0 = _mm256_loadu_ps(row + 2), m1 = _mm256_loadu_ps(row + 10);
                __m256 d0 = evens(l0, l1), d1 = odds(l0, l1), d2 = evens(m0, m1), d3 = odds(m0, m1);
                h[rr][0] = _mm256_sub_ps(d0, d2); /* d B: columns */
                h[rr][1] = _mm256_add_ps(d1, d2);
                h[rr][2] = _mm256_sub_ps(d2, d1);
                h[rr][3] = _mm256_sub_ps(d1, d3);
            }
            float *       out = dst + q0 + g;
            const int64_t n   = n_row - g < 8 ? n_row - g : 8;
            const __m256i msk = lane_mask(n);
            for (int s = 0; s < 4; s++) { /* B^T (d B): rows */
                __m256 v[4] = { _mm256_sub_ps(h[0][s], h[2][s]), _mm256_add_ps(h[1][s], h[2][s]),
                                _mm256_sub_ps(h[2][s], h[1][s]), _mm256_sub_ps(h[1][s], h[3][s]) };
                for (int rr = 0; rr < 4; rr++) {
                    if (n == 8) _mm256_storeu_ps(out + (rr * 4 + s) * es, v[rr]);
                    else _mm256_maskstore_ps(out + (rr * 4 + s) * es, msk, v[rr]);
                }
            }
        }
        tile += n_row;
    }
}

/* y = A^T M A (+ bias) for every tile of the block, one task per (co, to) output plane,
 * 8 tiles at a time; the two output rows of a tile row are assembled in the thread's
 * scratch and copied out clipped to [0, Ho) x [0, Wo). */
static void output_task(void * ctx, int64_t r, int tid) {
    const struct wino_job *        j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t co = r / a->to, to = r % a->to;
    const int64_t es = a->cout * a->to * j->nb;
    const float * src = j->m + (co * a->to + to) * j->nb;
    float *       dst = a->y + (co * a->to + to) * a->ho * a->wo;
    float *       orow = j->thread_rows + (int64_t)tid * j->thread_stride; /* 2 rows of row_len */
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
            __m256        m[16], s0[4], s1[4];
            for (int e = 0; e < 16; e++)
                m[e] = n == 8 ? _mm256_loadu_ps(in + e * es) : _mm256_maskload_ps(in + e * es, msk);
            for (int c = 0; c < 4; c++) { /* A^T M: rows */
                s0[c] = _mm256_add_ps(_mm256_add_ps(m[c], m[4 + c]), m[8 + c]);
                s1[c] = _mm256_sub_ps(_mm256_sub_ps(m[4 + c], m[8 + c]), m[12 + c]);
            }
            for (int rr = 0; rr < 2; rr++) { /* (A^T M) A: columns, then interleave y0 y1 */
                const __m256 * sr = rr ? s1 : s0;
                __m256 y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(sr[0], sr[1]), sr[2]), b);
                __m256 y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(sr[1], sr[2]), sr[3]), b);
                __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);
                float * o = orow + rr * j->row_len + 2 * (tw0 + g);
                _mm256_storeu_ps(o, _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
            }
        }
        /* copy out output columns [2 tw0, 2 (tw0 + n_row)) clipped to Wo, rows clipped to Ho */
        const int64_t ox0 = 2 * tw0, ox1 = 2 * (tw0 + n_row) < a->wo ? 2 * (tw0 + n_row) : a->wo;
        for (int rr = 0; rr < 2 && th * 2 + rr < a->ho; rr++)
            memcpy(dst + (th * 2 + rr) * a->wo + ox0, orow + rr * j->row_len + ox0, (size_t)(ox1 - ox0) * sizeof(float));
        tile += n_row;
    }
}

/* M_e = sum_dt U_e,dt . V_e (frames dt .. dt + To - 1) for one transform point e. */
static void gemm_task(void * ctx, int64_t e, int tid) {
    (void)tid;
    const struct wino_job *        j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int N = (int)(a->to * j->nb), K = (int)a->cin, M = (int)a->cout;
    for (int64_t dt = 0; dt < a->kt; dt++) {
        const float * A = j->u + (e * a->kt + dt) * a->cout * a->cin;
        const float * B = j->v + e * a->cin * a->t * j->nb + dt * j->nb;
        float *       C = j->m + e * a->cout * a->to * j->nb;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, (int)(a->t * j->nb),
                    dt == 0 ? 0.0f : 1.0f, C, N);
    }
}

enum infvsr_status infvsr__conv3d_winograd(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a) {
    const int64_t tiles_h = (a->ho + 1) / 2, tiles_w = (a->wo + 1) / 2, n_tiles = tiles_h * tiles_w;
    const int64_t per_tile = 16 * (a->cin * a->t + a->cout * a->to); /* floats of V + M per tile */
    int64_t nb = (int64_t)(wino_bytes / sizeof(float)) / per_tile;
    if (nb < 1) nb = 1;
    if (nb > n_tiles) nb = n_tiles;

    const size_t un = (size_t)(16 * a->kt * a->cout * a->cin);
    const int64_t row_len = 2 * tiles_w + 2 + 16;
    const size_t  un_b = (un + (size_t)a->cout + 15) & ~(size_t)15; /* keep the rows 64-byte aligned */
    const int64_t w_len = (a->cin * a->kt * 9 + a->kt * 9 * ((a->cin + 7) & ~(int64_t)7) + 15) & ~(int64_t)15;
    const int64_t per_thread = 4 * row_len > w_len ? 4 * row_len : w_len; /* transforms and weights take turns */
    float * u = infvsr__buf_reserve(&c->panel, un_b + (size_t)(c->n_threads * per_thread));
    float * v = infvsr__buf_reserve(&c->col, (size_t)(16 * a->cin * a->t * nb));
    float * m = infvsr__buf_reserve(&c->scratch, (size_t)(16 * a->cout * a->to * nb));
    if (!u || !v || !m) return INFVSR_ERR_NOMEM;
    float * bias = NULL;
    if (a->b.data) {
        bias = u + un;
        infvsr__w_widen(bias, a->b, 0, (size_t)a->cout);
    }

    struct wino_job j = { .a = a, .u = u, .v = v, .m = m, .bias = bias, .tiles_w = tiles_w,
                          .thread_rows = u + un_b, .row_len = row_len, .thread_w = u + un_b,
                          .thread_stride = per_thread };
    infvsr__par(c, a->cout, weight_task, &j);
    for (int64_t j0 = 0; j0 < n_tiles; j0 += nb) {
        j.j0 = j0;
        j.nb = n_tiles - j0 < nb ? n_tiles - j0 : nb;
        infvsr__par(c, a->cin * a->t, input_task, &j);
        /* the 16 independent GEMM groups run on the pool, one single-threaded sgemm each:
         * no BLAS fork/join per call, and no idle BLAS thread spinning in sched_yield
         * beside the pool's transform tasks */
        openblas_set_num_threads(1);
        infvsr__par(c, 16, gemm_task, &j);
        openblas_set_num_threads(c->n_threads);
        infvsr__par(c, a->cout * a->to, output_task, &j);
    }
    return INFVSR_OK;
}
