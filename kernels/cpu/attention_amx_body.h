/* The bf16 attention's two products on AMX-BF16 tiles (TDPBF16PS): the kernel set of the
 * shared flash driver (attention_impl.h) for the `amx` level.
 *
 * Why: on Sapphire Rapids VDPBF16PS (attention_bf16.c) tops out near 200 GFLOP/s on 2
 * threads against ~5900 for TDPBF16PS, and with the GEMMs on AMX the VDPBF16PS attention
 * had become ~15% of a bf16 DiT chunk. The driver, its f32 softmax statistics (scale, bias,
 * running max/sum, rescaling of O), the walk over the two key segments and the final
 * scaling/rounding (infvsr__attention_store_bf16) are the same code as the AVX512-BF16
 * kernel's; only the layouts and the products differ. Numerics: bf16 x bf16 products with
 * f32 accumulation as there (the order of the sums within a tile differs, TDPBF16PS's).
 *
 * Not a normal header: the kernel's one source, included twice like gemm_amx_body.h:
 * attention_amx.c includes it after amx_tile.h with the real instructions (the product),
 * tests/ops/test_attention_amx.c after amx_tile.h with INFVSR_AMX_EMULATE, so machines
 * without AMX (CI) verify these layouts and edges. Outside the tile primitives only plain C
 * and AVX2 (the build's baseline).
 *
 * Work split: the driver's, one task per head and group of up to 256 queries. Each key
 * block of a (head, segment) is packed once per call and serves all of the head's queries:
 * at the DiT's 192 tokens by the head's one task, into its tiles; with more groups per head
 * by a pass before the tasks (struct atx_pre: 10-15% less time at 2400 and 4096 queries).
 * LDTILECFG at a task's start and TILERELEASE at its end (the begin/end hooks): the pool's
 * threads run other ops between.
 *
 * Layouts (palette 1, all 8 tiles 16 rows x 64 bytes; Dk = D rounded up to 32):
 *   Qp [QGROUP rows][Dk] bf16         A tiles of S = Q K^T: 16 rows x 32 channels at
 *                                     stride 2 Dk; channels past D and rows past Nq zero
 *   Kt [BK / 16 strips][Dk / 2 pairs][16 keys][2]   VNNI B tiles: 16 pairs of channels x
 *                                     16 keys, 1 KB contiguous; keys past the block zero
 *   Vp [Dp / 16 strips][BK / 2 pairs][16 channels][2]   VNNI B tiles of O += P V: 16 pairs
 *                                     of keys x 16 channels; keys past the block zero
 *   P  [BQ][BK] bf16                  A tiles of P V: the probabilities rounded once (the
 *                                     columns past the block's keys zero, to 32)
 *   S  [BQ][BK] f32, O [QGROUP][Dp] f32: the driver's; C tiles stored/loaded in place.
 * Products (atx_gemm): 2 x 2 C tiles at a time (32 query rows x 2 strips of 16 keys of S,
 * or of 16 channels of O) from 2 A and 2 B tiles per k tile. */
#include <immintrin.h>
#include <string.h>

#include "attention_impl.h"
#include "simd.h"
#include "transpose8.h"

#define ATX_BQ     ATTN_BQ
#define ATX_BK     ATTN_BK
#define ATX_QGROUP ATTN_QGROUP

static const struct infvsr_amx_cfg atx_cfg = {
    .palette = 1,
    .colsb   = { 64, 64, 64, 64, 64, 64, 64, 64 },
    .rows    = { 16, 16, 16, 16, 16, 16, 16, 16 },
};

static inline int64_t atx_dk(int64_t D) { return (D + 31) / 32 * 32; }

static void atx_tile_bytes(int64_t D, int64_t Dp, size_t bytes[4]) {
    const int64_t Dk = atx_dk(D);
    bytes[0] = (size_t)(ATX_QGROUP * Dk) * 2; /* Qp */
    bytes[1] = (size_t)(ATX_BK * Dk) * 2;     /* Kt */
    bytes[2] = (size_t)(Dp * ATX_BK) * 2;     /* Vp */
    bytes[3] = (size_t)(ATX_BQ * ATX_BK) * 2; /* P  */
}

static void atx_load_q(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t rows,
                       const struct attn_tiles * t) {
    const int64_t D = a->head_dim, HD = a->n_heads * D, Dk = atx_dk(D);
    uint16_t * Qp = t->Qp;
    for (int64_t i = 0; i < rows; i++) {
        uint16_t * row = Qp + i * Dk;
        if (i < nq) {
            memcpy(row, (const uint16_t *)a->q + (i0 + i) * HD + h * D, (size_t)D * 2);
            memset(row + D, 0, (size_t)(Dk - D) * 2);
        } else {
            memset(row, 0, (size_t)Dk * 2);
        }
    }
}

/* Keys/values j0 .. j0 + nk of (kv, vv) for head h into Kt, Vp (the layouts above). */
static void atx_pack_into(const struct infvsr_cpu_attn * a, int64_t h, const void * kv, const void * vv, int64_t j0,
                          int64_t nk, int64_t Dp, uint16_t * Kt, uint16_t * Vp) {
    const int64_t D = a->head_dim, HD = a->n_heads * D, Dk = atx_dk(D), D2p = Dk / 2;
    const int64_t nkp = (nk + 15) / 16 * 16;
    const uint16_t * k = (const uint16_t *)kv + j0 * HD + h * D, * v = (const uint16_t *)vv + j0 * HD + h * D;
    /* K: key j's channel pairs go to strip j / 16, column j % 16; 8 keys x 8 pairs move by
     * one transpose of 32-bit words while the 16 channels are inside the row */
    for (int64_t j8 = 0; j8 < nkp; j8 += 8) {
        uint16_t * strip = Kt + (j8 / 16) * D2p * 32 + (j8 % 16) * 2;
        int64_t p = 0;
        for (; 2 * p + 16 <= D; p += 8) {
            __m256i r[8];
            for (int i = 0; i < 8; i++)
                r[i] = j8 + i < nk ? _mm256_loadu_si256((const __m256i *)(const void *)(k + (j8 + i) * HD + 2 * p))
                                   : _mm256_setzero_si256();
            infvsr__transpose8_epi32(r);
            for (int q = 0; q < 8; q++) _mm256_storeu_si256((__m256i *)(void *)(strip + (p + q) * 32), r[q]);
        }
        for (; p < D2p; p++) { /* the channel tail (odd D: the last one with a zero) and the padding */
            for (int i = 0; i < 8; i++) {
                for (int e = 0; e < 2; e++) {
                    const int64_t d = 2 * p + e;
                    strip[p * 32 + 2 * i + e] = j8 + i < nk && d < D ? k[(j8 + i) * HD + d] : 0;
                }
            }
        }
    }
    /* V: keys (2p, 2p + 1) of 16 channels interleaved, to whole 32-key tiles */
    const int64_t n2 = (nk + 31) / 32 * 16, strips = Dp / 16;
    for (int64_t s = 0; s < strips; s++) {
        const int64_t c0 = s * 16;
        uint16_t * dst = Vp + s * (ATX_BK / 2) * 32;
        for (int64_t p = 0; p < n2; p++, dst += 32) {
            const int64_t k0 = 2 * p, k1 = 2 * p + 1;
            if (c0 + 16 <= D && k1 < nk) {
                const __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)(v + k0 * HD + c0));
                const __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(v + k1 * HD + c0));
                const __m256i a0 = _mm256_unpacklo_epi16(lo, hi), a1 = _mm256_unpackhi_epi16(lo, hi);
                _mm256_storeu_si256((__m256i *)(void *)dst, _mm256_permute2x128_si256(a0, a1, 0x20));
                _mm256_storeu_si256((__m256i *)(void *)(dst + 16), _mm256_permute2x128_si256(a0, a1, 0x31));
                continue;
            }
            for (int64_t c = 0; c < 16; c++) {
                const bool in = c0 + c < D;
                dst[2 * c]     = in && k0 < nk ? v[k0 * HD + c0 + c] : 0;
                dst[2 * c + 1] = in && k1 < nk ? v[k1 * HD + c0 + c] : 0;
            }
        }
    }
}

/* K and V packed once per call for every (segment, head, key block), when the heads have
 * more than one query group (the driver would pack each block once per group: 10 times at
 * 2400 queries, 16 on the VAE's 4096): [segment 0: head, block | segment 1: head, block],
 * each block Kt then Vp. With one group per head (the DiT's 192-token chunk) the tasks pack
 * their blocks themselves, into tiles that stay in cache. */
struct atx_pre {
    const struct infvsr_cpu_attn * a;
    uint16_t *                     buf;
    int64_t                        Dp, nb0, nb1, kt_elems, blk_elems;
};

static uint16_t * atx_pre_block(const struct atx_pre * p, int64_t seg, int64_t h, int64_t b) {
    const int64_t g = seg == 0 ? h * p->nb0 + b : p->a->n_heads * p->nb0 + h * p->nb1 + b;
    return p->buf + g * p->blk_elems;
}

static void atx_prepack_task(void * ctx, int64_t task, int tid) {
    const struct atx_pre * p = ctx;
    const struct infvsr_cpu_attn * a = p->a;
    const int64_t n_seg0 = a->n_heads * p->nb0;
    const int64_t seg = task < n_seg0 ? 0 : 1, r = seg ? task - n_seg0 : task, nb = seg ? p->nb1 : p->nb0;
    const int64_t h = r / nb, j0 = (r % nb) * ATX_BK, n = seg ? a->n1 : a->n0;
    uint16_t * dst = atx_pre_block(p, seg, h, r % nb);
    atx_pack_into(a, h, seg ? a->k1 : a->k0, seg ? a->v1 : a->v0, j0, n - j0 < ATX_BK ? n - j0 : ATX_BK, p->Dp, dst,
                  dst + p->kt_elems);
}

static void atx_pack_kv(const struct infvsr_cpu_attn * a, int64_t h, int seg, const void * kv, const void * vv,
                        int64_t j0, int64_t nk, int64_t Dp, struct attn_tiles * t) {
    const struct atx_pre * p = t->kctx;
    if (!p) {
        atx_pack_into(a, h, kv, vv, j0, nk, Dp, t->Kt, t->Vp);
        return;
    }
    uint16_t * blk = atx_pre_block(p, seg, h, j0 / ATX_BK);
    t->Kt = blk;
    t->Vp = blk + p->kt_elems;
}

/* Up to 2 x 2 C tiles (+)= sum over nkt k tiles of A times B: C rows 0-15 in tmm0 (strip
 * 0) and tmm1 (strip 1), rows 16-31 in tmm2, tmm3; A rows 0-15 in tmm4, 16-31 in tmm5; B
 * strips in tmm6, tmm7 (4 tile loads per 4 TDPBF16PS, no tile reloaded while a product
 * still reads it, as gemm_amx_body.h's micro-kernel). a: A rows 0-15, lda bytes (rows 16-31
 * 16 lda further); b: strip 0's first B tile, strip 1 bstride bf16 further, k tiles 512 bf16
 * apart; c: f32, ldc bytes per row. */
static inline __attribute__((always_inline)) AMX_FN void atx_micro(const bool two_r, const bool two_s,
                                                                   const uint16_t * a, int64_t lda,
                                                                   const uint16_t * b, int64_t bstride, int64_t nkt,
                                                                   float * c, int64_t ldc, bool init) {
    const uint16_t * a1 = (const uint16_t *)(const void *)((const char *)a + 16 * lda);
    float * c2 = (float *)(void *)((char *)c + 16 * ldc);
    if (init) {
        amx_zero(0);
        if (two_s) amx_zero(1);
        if (two_r) amx_zero(2);
        if (two_r && two_s) amx_zero(3);
    } else {
        amx_load(0, c, ldc);
        if (two_s) amx_load(1, c + 16, ldc);
        if (two_r) amx_load(2, c2, ldc);
        if (two_r && two_s) amx_load(3, c2 + 16, ldc);
    }
    for (int64_t kt = 0; kt < nkt; kt++) {
        const uint16_t * bk = b + kt * 512;
        amx_load(4, a + kt * 32, lda);
        amx_load(6, bk, 64);
        amx_dpbf16ps(0, 4, 6);
        if (two_s) {
            amx_load(7, bk + bstride, 64);
            amx_dpbf16ps(1, 4, 7);
        }
        if (two_r) {
            amx_load(5, a1 + kt * 32, lda);
            amx_dpbf16ps(2, 5, 6);
            if (two_s) amx_dpbf16ps(3, 5, 7);
        }
    }
    amx_store(0, c, ldc);
    if (two_s) amx_store(1, c + 16, ldc);
    if (two_r) amx_store(2, c2, ldc);
    if (two_r && two_s) amx_store(3, c2 + 16, ldc);
}

/* C [rows (a multiple of 16), strips x 16] (+)= A . B over nkt k tiles, 2 x 2 tiles at a
 * time. */
AMX_FN static void atx_gemm(int64_t rows, int64_t strips, const uint16_t * a, int64_t lda, const uint16_t * b,
                            int64_t bstride, int64_t nkt, float * c, int64_t ldc, bool init) {
    for (int64_t r = 0; r < rows; r += 32) {
        const bool two_r = rows - r > 16;
        const uint16_t * ar = (const uint16_t *)(const void *)((const char *)a + r * lda);
        float * cr = (float *)(void *)((char *)c + r * ldc);
        for (int64_t s = 0; s < strips; s += 2) {
            const bool two_s = strips - s > 1;
            const uint16_t * bs = b + s * bstride;
            if (two_r && two_s) atx_micro(true, true, ar, lda, bs, bstride, nkt, cr + s * 16, ldc, init);
            else if (two_r) atx_micro(true, false, ar, lda, bs, bstride, nkt, cr + s * 16, ldc, init);
            else if (two_s) atx_micro(false, true, ar, lda, bs, bstride, nkt, cr + s * 16, ldc, init);
            else atx_micro(false, false, ar, lda, bs, bstride, nkt, cr + s * 16, ldc, init);
        }
    }
}

/* S rows [0, nq_blk rounded to 16) = Qp rows r0.. times Kt; the rows past nq_blk are zero
 * queries (load_q), so their scores are 0 and their probabilities below are 0. */
AMX_FN static void atx_qk(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t D, int64_t nkp) {
    const int64_t Dk = atx_dk(D), D2p = Dk / 2;
    atx_gemm((nq_blk + 15) / 16 * 16, nkp / 16, (const uint16_t *)t->Qp + r0 * Dk, Dk * 2, t->Kt, D2p * 32, Dk / 32,
             t->S, ATX_BK * (int64_t)sizeof(float), true);
}

/* P = S rounded to bf16 (columns [nkp, 32-key tile end) zero), then O rows += P V. */
AMX_FN static void atx_pv(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t nk, int64_t Dp) {
    const int64_t nkp = (nk + 15) / 16 * 16, nkt = (nk + 31) / 32, rows = (nq_blk + 15) / 16 * 16;
    uint16_t * P = t->P;
    for (int64_t i = 0; i < rows; i++) {
        int64_t j = 0;
        for (; j < nkp; j += 8) {
            const __m128i p8 = infvsr__round8_bf16(_mm256_load_ps(t->S + i * ATX_BK + j));
            _mm_storeu_si128((__m128i *)(void *)(P + i * ATX_BK + j), p8);
        }
        for (; j < nkt * 32; j++) P[i * ATX_BK + j] = 0;
    }
    atx_gemm(rows, Dp / 16, P, ATX_BK * 2, t->Vp, (ATX_BK / 2) * 32, nkt, t->O + r0 * Dp,
             Dp * (int64_t)sizeof(float), false);
}

AMX_FN static void atx_begin(void) { amx_config(&atx_cfg); }
AMX_FN static void atx_end(void) { amx_release(); }

static const struct attn_kernels atx_kernels = {
    .tile_bytes = atx_tile_bytes, .load_q = atx_load_q, .pack_kv = atx_pack_kv,
    .qk = atx_qk, .pv = atx_pv, .store = infvsr__attention_store_bf16,
    .begin = atx_begin, .end = atx_end,
};

/* The whole call: K and V packed first where that saves repacking (struct atx_pre). */
static enum infvsr_status atx_attention(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a) {
    const int64_t D = a->head_dim, Dp = (D + 15) / 16 * 16;
    if (a->nq <= ATX_QGROUP) return infvsr__attention_run(c, a, &atx_kernels, NULL);
    struct atx_pre p = { .a = a, .Dp = Dp, .nb0 = (a->n0 + ATX_BK - 1) / ATX_BK, .nb1 = (a->n1 + ATX_BK - 1) / ATX_BK,
                         .kt_elems = ATX_BK * atx_dk(D) };
    p.blk_elems = p.kt_elems + Dp * ATX_BK;
    const int64_t blocks = a->n_heads * (p.nb0 + p.nb1);
    /* the panel buffer holds floats: 2 bf16 each (blk_elems is even) */
    if (!(p.buf = (uint16_t *)infvsr__buf_reserve(&c->panel, (size_t)(blocks * p.blk_elems / 2))))
        return INFVSR_ERR_NOMEM;
    infvsr__par(c, blocks, atx_prepack_task, &p);
    return infvsr__attention_run(c, a, &atx_kernels, &p);
}
