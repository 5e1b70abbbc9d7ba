/* Op cases: gather_rows (F32/BF16/F16/F64 rows of odd and 16-byte-multiple widths, the
 * Swin window-partition table, repeated and reversed indices, rows of views at offsets
 * that are not 16-byte aligned, no rows at all), checked bit-exactly against a host
 * loop; and refused calls: dtypes, sizes, aliasing (the same storage or an overlapping
 * view), an index out of range (the CPU backend checks; device backends need not). */
#include "backend_ops.h"

enum idx_kind { IDX_RANDOM, IDX_REVERSE, IDX_REPEAT, IDX_WINDOWS, IDX_OUT_OF_RANGE, IDX_NEGATIVE };

struct gather_p {
    enum infvsr_dtype xdt, ydt, idt;
    int64_t           xrows, cols, yrows, ycols, n_idx;
    enum idx_kind     idx;
    int64_t           x_byte, y_byte; /* >0: x / y are views this many bytes into their storage */
    int               win_h, win_w, win;  /* IDX_WINDOWS: an h x w grid, windows of win x win   */
    bool              y_is_x, y_overlaps_x;
};

static void make_idx(const struct gather_p * p, struct bo_ctx * c, int32_t * idx) {
    for (int64_t i = 0; i < p->n_idx; i++) {
        switch (p->idx) {
        case IDX_RANDOM:       idx[i] = (int32_t)(bo_rand(c) % (uint64_t)p->xrows); break;
        case IDX_REVERSE:      idx[i] = (int32_t)(p->xrows - 1 - i % p->xrows); break;
        case IDX_REPEAT:       idx[i] = (int32_t)((i / 3) % p->xrows); break;
        case IDX_OUT_OF_RANGE: idx[i] = i == p->n_idx / 2 ? (int32_t)p->xrows : (int32_t)(i % p->xrows); break;
        case IDX_NEGATIVE:     idx[i] = i == p->n_idx - 1 ? -1 : (int32_t)(i % p->xrows); break;
        case IDX_WINDOWS: {
            /* Swin window partition of an h x w token grid: window by window, row-major inside */
            const int64_t per = (int64_t)p->win * p->win, wpr = p->win_w / p->win;
            const int64_t wi = i / per, r = (i % per) / p->win, q = i % p->win;
            idx[i] = (int32_t)(((wi / wpr) * p->win + r) * p->win_w + (wi % wpr) * p->win + q);
            break;
        }
        }
    }
}

static enum infvsr_status run_gather(struct bo_ctx * c, const struct bo_case * k) {
    const struct gather_p * p = BO_P(k, struct gather_p);
    const size_t exs = infvsr_dtype_size(p->xdt), eys = infvsr_dtype_size(p->ydt);
    /* storage of x (with room for a view offset), then idx, then the storage of y */
    struct infvsr_tensor * xs = p->x_byte ? bo_in(c, "x", p->xdt, 1, S1(p->xrows * p->cols + (p->x_byte + 15) / (int64_t)exs), -1, 1)
                                          : bo_in(c, "x", p->xdt, 2, S2(p->xrows, p->cols), -1, 1);
    int32_t * iv = malloc((size_t)(p->n_idx ? p->n_idx : 1) * sizeof *iv);
    make_idx(p, c, iv);
    struct infvsr_tensor * idx;
    if (p->idt == INFVSR_TYPE_I32) idx = bo_in_bytes(c, "idx", INFVSR_TYPE_I32, 1, S1(p->n_idx), iv);
    else idx = bo_in(c, "idx", p->idt, 1, S1(p->n_idx), 0, 1);
    free(iv);
    struct infvsr_tensor * x = p->x_byte ? bo_view(c, xs, "x_view", p->xdt, 2, S2(p->xrows, p->cols), p->x_byte) : xs;
    struct infvsr_tensor * y;
    if (p->y_is_x) {
        y = bo_make_out(c, xs);
    } else if (p->y_overlaps_x) { /* y: rows 1.. of x's storage */
        bo_make_out(c, xs);
        y = bo_view(c, xs, "y_view", p->ydt, 2, S2(p->yrows, p->ycols), (int64_t)(p->cols * exs));
    } else if (p->y_byte) {
        struct infvsr_tensor * ys = bo_out(c, "y", p->ydt, 1, S1(p->yrows * p->ycols + (p->y_byte + 15) / (int64_t)eys));
        y = bo_view(c, ys, "y_view", p->ydt, 2, S2(p->yrows, p->ycols), p->y_byte);
    } else {
        y = bo_out(c, "y", p->ydt, 2, S2(p->yrows, p->ycols));
    }
    BO_SETUP_DONE(c);
    return infvsr_op_gather_rows(c->be, x, idx, y, &c->err);
}

/* y[i, :] = x[idx[i], :], bytes as they are. */
static void gather_naive(const struct bo_case * k, struct bo_host * h) {
    const struct gather_p * p = BO_P(k, struct gather_p);
    const size_t row = (size_t)p->cols * infvsr_dtype_size(p->xdt);
    const int    yi = 2; /* tensors: x storage 0, idx 1, y storage 2 */
    for (int64_t i = 0; i < p->yrows; i++) {
        int32_t r;
        memcpy(&r, h->init[1] + 4 * i, 4);
        memcpy(h->expect[yi] + p->y_byte + (size_t)i * row, h->init[0] + p->x_byte + (size_t)r * row, row);
    }
}

static struct bo_case * add_gather(struct bo_list * l, const struct gather_p * p, enum bo_kind kind, const char * label) {
    struct bo_case * k = bo_add(l, "gather_rows", kind, run_gather, p, sizeof *p);
    bo_desc(k, "%s: x[%lld,%lld]:%s%s idx[%lld]:%s y[%lld,%lld]:%s%s%s", label, (long long)p->xrows, (long long)p->cols,
            infvsr_dtype_name(p->xdt), p->x_byte ? " (view)" : "", (long long)p->n_idx, infvsr_dtype_name(p->idt),
            (long long)p->yrows, (long long)p->ycols, infvsr_dtype_name(p->ydt), p->y_byte ? " (view)" : "",
            p->y_is_x ? " y=x" : p->y_overlaps_x ? " y overlaps x" : "");
    k->host_ref = gather_naive;
    k->flags |= BO_ACT_FREE;
    return k;
}

static struct gather_p g(enum infvsr_dtype dt, int64_t xrows, int64_t cols, int64_t yrows, enum idx_kind idx) {
    struct gather_p p = { .xdt = dt, .ydt = dt, .idt = INFVSR_TYPE_I32, .xrows = xrows, .cols = cols, .yrows = yrows,
                          .ycols = cols, .n_idx = yrows, .idx = idx };
    return p;
}

void bo_cases_gather(struct bo_list * l) {
    const enum infvsr_dtype dts[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16, INFVSR_TYPE_F64 };
    for (int d = 0; d < 4; d++) {
        struct gather_p p = g(dts[d], 97, 7, 150, IDX_RANDOM); /* odd row bytes */
        add_gather(l, &p, BO_HOST_REF, "random rows");
        p = g(dts[d], 64, 96, 64, IDX_REVERSE); /* rows of a multiple of 16 bytes */
        add_gather(l, &p, BO_HOST_REF, "reversed");
        p = g(dts[d], 10, 33, 30, IDX_REPEAT);
        add_gather(l, &p, BO_HOST_REF, "each row 3 times");
    }
    {
        /* Swin: 16 x 24 tokens into 4 x 4 windows, 96 channels */
        struct gather_p p = g(INFVSR_TYPE_F32, 16 * 24, 96, 16 * 24, IDX_WINDOWS);
        p.win_h = 16, p.win_w = 24, p.win = 4;
        add_gather(l, &p, BO_HOST_REF, "window partition");
        p.xdt = p.ydt = INFVSR_TYPE_BF16;
        add_gather(l, &p, BO_HOST_REF, "window partition");
        /* many rows: several CPU tasks, many CUDA blocks */
        p = g(INFVSR_TYPE_F32, 5000, 96, 20000, IDX_RANDOM);
        add_gather(l, &p, BO_HOST_REF, "large");
        /* rows of views 2 and 4 bytes into their storage: the widest access a device
         * kernel may use depends on the addresses, not just the row width */
        p = g(INFVSR_TYPE_BF16, 50, 8, 40, IDX_RANDOM);
        p.x_byte = 2;
        add_gather(l, &p, BO_HOST_REF, "x view at +2 bytes");
        p.x_byte = 0, p.y_byte = 4;
        add_gather(l, &p, BO_HOST_REF, "y view at +4 bytes");
        p = g(INFVSR_TYPE_F32, 50, 4, 40, IDX_RANDOM);
        p.x_byte = 4, p.y_byte = 8;
        add_gather(l, &p, BO_HOST_REF, "both views");
        p = g(INFVSR_TYPE_F32, 5, 3, 0, IDX_RANDOM);
        add_gather(l, &p, BO_HOST_REF, "no rows");
    }
    /* refused */
    {
        struct gather_p p = g(INFVSR_TYPE_F32, 10, 8, 6, IDX_RANDOM);
        p.ydt = INFVSR_TYPE_BF16;
        add_gather(l, &p, BO_INVALID, "dtypes differ")->needle = "dtype";
        p = g(INFVSR_TYPE_I32, 10, 8, 6, IDX_RANDOM);
        add_gather(l, &p, BO_INVALID, "integer rows")->needle = "dtype";
        p = g(INFVSR_TYPE_F32, 10, 8, 6, IDX_RANDOM);
        p.idt = INFVSR_TYPE_F32;
        add_gather(l, &p, BO_INVALID, "float indices")->needle = "i32";
        p = g(INFVSR_TYPE_F32, 10, 8, 6, IDX_RANDOM);
        p.ycols = 7, p.yrows = 6;
        add_gather(l, &p, BO_INVALID, "row widths differ")->needle = "last dim";
        p = g(INFVSR_TYPE_F32, 10, 8, 6, IDX_RANDOM);
        p.n_idx = 5;
        add_gather(l, &p, BO_INVALID, "one index short")->needle = "entries";
        p = g(INFVSR_TYPE_F32, 10, 8, 10, IDX_RANDOM);
        p.y_is_x = true;
        add_gather(l, &p, BO_INVALID, "in place")->needle = "alias";
        p = g(INFVSR_TYPE_F32, 10, 8, 5, IDX_RANDOM);
        p.y_overlaps_x = true;
        add_gather(l, &p, BO_INVALID, "y overlapping x")->needle = "alias";
        /* the CPU checks indices; device backends need not (backend_impl.h) */
        p = g(INFVSR_TYPE_F32, 10, 8, 6, IDX_OUT_OF_RANGE);
        add_gather(l, &p, BO_INVALID, "index == rows")->needle = "outside";
        l->v[l->n - 1].flags |= BO_HOST_ONLY;
        p = g(INFVSR_TYPE_F32, 10, 8, 6, IDX_NEGATIVE);
        add_gather(l, &p, BO_INVALID, "index -1")->needle = "outside";
        l->v[l->n - 1].flags |= BO_HOST_ONLY;
    }
}
