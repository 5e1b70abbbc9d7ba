/* The strided copy family and gather_rows on the CPU (backend_impl.h has the contract;
 * arguments were validated by infvsr_copy_validate / infvsr_gather_validate).
 *
 * Work is split into rows: all dims but the last, flattened; each task takes a run of
 * rows and walks the last dim with the three strides. Dense same-dtype SET rows become a
 * memcpy, overlapping dense SETs one memmove (the VAE's arena settle), so the common
 * cases run at memory speed. Arithmetic is scalar f32 with the rounding order of the
 * contract (no contraction: the build is ISO C, -ffp-contract=off). */
#include <string.h>

#include "cpu_impl.h"
#include "simd.h"

static inline float ld(const void * p, enum infvsr_dtype d, int64_t i) {
    switch (d) {
    case INFVSR_TYPE_BF16: return infvsr_bf16_to_f32(((const uint16_t *)p)[i]);
    case INFVSR_TYPE_F16:  return infvsr_f16_to_f32(((const uint16_t *)p)[i]);
    case INFVSR_TYPE_U8:   return (float)((const uint8_t *)p)[i];
    default:               return ((const float *)p)[i];
    }
}

static inline void st(void * p, enum infvsr_dtype d, int64_t i, float v) {
    switch (d) {
    case INFVSR_TYPE_BF16: ((uint16_t *)p)[i] = infvsr_f32_to_bf16(v); break;
    case INFVSR_TYPE_F16:  ((uint16_t *)p)[i] = infvsr_f32_to_f16(v); break;
    default:               ((float *)p)[i] = v; break;
    }
}

static inline uint8_t to_u8(float x) {
    float v = (x + 1.0f) * 127.5f;
    v = v >= 0.0f ? (v <= 255.0f ? v : 255.0f) : 0.0f; /* NaN -> 0 */
    return (uint8_t)v;                                  /* truncation, as astype(uint8) */
}

struct copy_job {
    const struct infvsr_copy_args * a;
    int64_t                         rows, len;      /* rows x last-dim length           */
    int64_t                         rows_per_task;
    size_t                          es_x, es_y;
    bool                            vec_bf16; /* accumulate_bf16 on dense bf16 rows */
};

/* Same-dtype strided elements as whole words (bytes as they are: NaN payloads kept). */
static void copy_strided(void * y, int64_t yo, int64_t ys, const void * x, int64_t xo, int64_t xs, int64_t n, size_t es) {
    switch (es) {
    case 1: for (int64_t i = 0; i < n; i++) ((uint8_t *)y)[yo + i * ys] = ((const uint8_t *)x)[xo + i * xs]; break;
    case 2: for (int64_t i = 0; i < n; i++) ((uint16_t *)y)[yo + i * ys] = ((const uint16_t *)x)[xo + i * xs]; break;
    case 4: for (int64_t i = 0; i < n; i++) ((uint32_t *)y)[yo + i * ys] = ((const uint32_t *)x)[xo + i * xs]; break;
    case 8: for (int64_t i = 0; i < n; i++) ((uint64_t *)y)[yo + i * ys] = ((const uint64_t *)x)[xo + i * xs]; break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy((char *)y + (yo + i * ys) * (int64_t)es, (const char *)x + (xo + i * xs) * (int64_t)es, es);
        break;
    }
}

/* Element offsets of row r in the three views. */
static void row_offsets(const struct infvsr_copy_args * a, int64_t r, int64_t * xo, int64_t * mo, int64_t * yo) {
    *xo = a->x_offset, *mo = a->m_offset, *yo = a->y_offset;
    for (int d = a->ndim - 2; d >= 0; d--) {
        int64_t i = r % a->extent[d];
        r /= a->extent[d];
        *xo += i * a->x_stride[d];
        *mo += i * a->m_stride[d];
        *yo += i * a->y_stride[d];
    }
}

/* 8 f32 of a dense F32 or BF16 row */
static inline __m256 ld8(const void * p, enum infvsr_dtype d, int64_t i) {
    return d == INFVSR_TYPE_BF16 ? infvsr__load8_bf16((const uint16_t *)p + i) : _mm256_loadu_ps((const float *)p + i);
}

/* ACCUMULATE into a dense bf16 row from dense F32/BF16 x (and m): the scalar loop's math
 * (p = alpha x, p = p m, y = y + p, each an f32 rounding, one bf16 rounding on store; no
 * FMA) 8 lanes at a time, so the same bits. The bf16 Swin encoder adds its relative-position
 * bias to the scores this way (as many elements as the scores): the scalar loop's per-element
 * dtype switches were ~9% of the encode. Only on the avx512bf16 and amx levels, as the other
 * native bf16 ops (backend.c native_bf16). */
static int64_t accumulate_bf16(uint16_t * y, const void * x, enum infvsr_dtype xd, const void * m,
                               enum infvsr_dtype md, float alpha, int64_t n) {
    const __m256 al = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 p = _mm256_mul_ps(al, ld8(x, xd, i));
        if (m) p = _mm256_mul_ps(p, ld8(m, md, i));
        __m256 v = _mm256_add_ps(infvsr__load8_bf16(y + i), p);
        _mm_storeu_si128((__m128i *)(y + i), infvsr__round8_bf16(v));
    }
    return i;
}

/* A dense same-dtype run: the Swin encoder's head permutes copy rows of one head's 32 bf16
 * (64 bytes), millions per encode, where a memcpy call cost more than the copy. */
static inline void copy_dense(char * y, const char * x, size_t bytes) {
    if (bytes == 64) {
        const __m256i lo = _mm256_loadu_si256((const __m256i *)x), hi = _mm256_loadu_si256((const __m256i *)(x + 32));
        _mm256_storeu_si256((__m256i *)y, lo);
        _mm256_storeu_si256((__m256i *)(y + 32), hi);
    } else {
        memcpy(y, x, bytes);
    }
}

/* One row at element offsets xo, mo, yo of x, m and y. */
static void copy_row(const struct copy_job * j, int64_t xo, int64_t mo, int64_t yo) {
    const struct infvsr_copy_args * a = j->a;
    const int     last = a->ndim - 1;
    const int64_t n = j->len, xs = a->x_stride[last], ms = a->m_stride[last], ys = a->y_stride[last];
    const void *       x  = a->x ? a->x->data : NULL;
    const void *       m  = a->m ? a->m->data : NULL;
    void *             y  = a->y->data;
    enum infvsr_dtype  xd = a->x ? a->x->dtype : INFVSR_TYPE_F32, md = a->m ? a->m->dtype : INFVSR_TYPE_F32;
    enum infvsr_dtype  yd = a->y->dtype;
    switch (a->mode) {
    case INFVSR_COPY_SET:
        if (xd == yd && xs == 1 && ys == 1) {
            /* x and y may be the same view (an in-place SET): memcpy onto itself is UB */
            if ((char *)y + yo * j->es_y != (const char *)x + xo * j->es_x)
                copy_dense((char *)y + yo * j->es_y, (const char *)x + xo * j->es_x, (size_t)n * j->es_y);
        } else if (xd == yd) {
            copy_strided(y, yo, ys, x, xo, xs, n, j->es_y);
        } else {
            for (int64_t i = 0; i < n; i++) st(y, yd, yo + i * ys, ld(x, xd, xo + i * xs));
        }
        break;
    case INFVSR_COPY_ACCUMULATE: {
        int64_t i = 0;
        if (j->vec_bf16 && yd == INFVSR_TYPE_BF16 && ys == 1 && xs == 1 && (xd == INFVSR_TYPE_F32 || xd == INFVSR_TYPE_BF16) &&
            (!m || (ms == 1 && (md == INFVSR_TYPE_F32 || md == INFVSR_TYPE_BF16)))) {
            i = accumulate_bf16((uint16_t *)y + yo, (const char *)x + xo * (int64_t)j->es_x, xd,
                                m ? (const char *)m + mo * (int64_t)infvsr_dtype_size(md) : NULL, md, a->alpha, n);
        }
        for (; i < n; i++) {
            float p = a->alpha * ld(x, xd, xo + i * xs);
            if (m) p = p * ld(m, md, mo + i * ms);
            st(y, yd, yo + i * ys, ld(y, yd, yo + i * ys) + p);
        }
        break;
    }
    case INFVSR_COPY_DIVIDE:
        for (int64_t i = 0; i < n; i++) st(y, yd, yo + i * ys, ld(x, xd, xo + i * xs) / ld(m, md, mo + i * ms));
        break;
    case INFVSR_COPY_U8_TO_MODEL:
    case INFVSR_COPY_U8_TO_UNIT:
        for (int64_t i = 0; i < n; i++) {
            /* Separate f32 roundings, as torch evaluates x / 255 * 2 - 1 (then / 2 + 0.5). */
            float v = ld(x, INFVSR_TYPE_U8, xo + i * xs) / 255.0f;
            v = v * 2.0f;
            v = v - 1.0f;
            if (a->mode == INFVSR_COPY_U8_TO_UNIT) {
                v = v / 2.0f;
                v = v + 0.5f;
            }
            st(y, yd, yo + i * ys, v);
        }
        break;
    case INFVSR_COPY_MODEL_TO_U8:
        for (int64_t i = 0; i < n; i++) ((uint8_t *)y)[yo + i * ys] = to_u8(ld(x, xd, xo + i * xs));
        break;
    case INFVSR_COPY_FILL:
        if (yd == INFVSR_TYPE_F64) {
            for (int64_t i = 0; i < n; i++) ((double *)y)[yo + i * ys] = (double)a->alpha;
        } else {
            for (int64_t i = 0; i < n; i++) st(y, yd, yo + i * ys, a->alpha);
        }
        break;
    default:
        break;
    }
}

static void copy_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    const struct copy_job * j = ctx;
    const struct infvsr_copy_args * a = j->a;
    const int64_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    /* the first row's offsets by division, the next ones by stepping an odometer over the
     * leading dims (a division per dim per row was most of a short row's cost) */
    int64_t idx[INFVSR_COPY_MAX_DIMS] = { 0 }, xo, mo, yo;
    row_offsets(a, r0, &xo, &mo, &yo);
    for (int64_t q = r0, d = a->ndim - 2; d >= 0; d--) {
        idx[d] = q % a->extent[d];
        q /= a->extent[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        copy_row(j, xo, mo, yo);
        for (int d = a->ndim - 2; d >= 0; d--) {
            xo += a->x_stride[d], mo += a->m_stride[d], yo += a->y_stride[d];
            if (++idx[d] < a->extent[d]) break;
            xo -= a->extent[d] * a->x_stride[d], mo -= a->extent[d] * a->m_stride[d], yo -= a->extent[d] * a->y_stride[d];
            idx[d] = 0;
        }
    }
}

void infvsr_cpu_op_copy(struct infvsr_cpu_ctx * c, const struct infvsr_copy_args * a,
                        const struct infvsr_copy_plan * plan) {
    size_t es_y = infvsr_dtype_size(a->y->dtype);
    if (plan->memmove) {
        memmove((char *)a->y->data + a->y_offset * es_y, (const char *)a->x->data + a->x_offset * es_y,
                (size_t)plan->n * es_y);
        return;
    }
    struct copy_job j = { .a = a, .len = a->extent[a->ndim - 1], .es_y = es_y,
                          .es_x = a->x ? infvsr_dtype_size(a->x->dtype) : 0,
                          .vec_bf16 = infvsr_cpu_act_bf16_native(c) };
    j.rows = j.len > 0 ? plan->n / j.len : 0;
    if (j.rows == 0) return;
    /* Tasks of >= 64 Ki elements: copies are memory bound, more tasks only add overhead. */
    int64_t rows_per = (65536 + j.len - 1) / j.len;
    int64_t tasks = infvsr__n_chunks(c, j.rows, rows_per);
    j.rows_per_task = (j.rows + tasks - 1) / tasks;
    infvsr__par(c, (j.rows + j.rows_per_task - 1) / j.rows_per_task, copy_task, &j);
}

struct gather_job {
    const char *    x;
    const int32_t * idx;
    char *          y;
    size_t          row_bytes;
    int64_t         rows, per_task;
};

static void gather_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    const struct gather_job * j = ctx;
    int64_t r1 = (t + 1) * j->per_task < j->rows ? (t + 1) * j->per_task : j->rows;
    for (int64_t r = t * j->per_task; r < r1; r++)
        memcpy(j->y + (size_t)r * j->row_bytes, j->x + (size_t)j->idx[r] * j->row_bytes, j->row_bytes);
}

void infvsr_cpu_op_gather_rows(struct infvsr_cpu_ctx * c, const void * x, const int32_t * idx, int64_t rows,
                               size_t row_bytes, void * y) {
    struct gather_job j = { .x = x, .idx = idx, .y = y, .row_bytes = row_bytes, .rows = rows };
    int64_t per = (int64_t)(65536 / (row_bytes ? row_bytes : 1)) + 1;
    int64_t tasks = infvsr__n_chunks(c, rows, per);
    j.per_task = (rows + tasks - 1) / tasks;
    infvsr__par(c, (rows + j.per_task - 1) / j.per_task, gather_task, &j);
}
