/* Session lifetime: tile grid, per-tile cache slots, blend masks and the scratch arena, all
 * sized and allocated on the model's backend at open (a dry run of the largest encoder and
 * decoder calls gives the arena size), so that encode/decode calls allocate nothing. */
#include <stdlib.h>
#include <string.h>

#include "vae/vae_session.h"

#define MAX_SPANS 4096

struct infvsr_vae_session_params infvsr_vae_session_default_params(void) {
    struct infvsr_vae_session_params p = {
        .height = 0, .width = 0, .tile_threshold_px = 1024, .tile_latent = 128, .stride_latent = 110,
    };
    return p;
}

/* A zero-filled 1-D backend tensor of n elements. */
static enum infvsr_status alloc_1d(struct infvsr_vae_session * s, struct infvsr_tensor * t, const char * name,
                                   enum infvsr_dtype dt, size_t n, struct infvsr_err * err) {
    int64_t shape[1] = { (int64_t)(n ? n : 1) };
    infvsr_tensor_setup(t, name, dt, 1, shape);
    enum infvsr_status st = infvsr_backend_tensor_alloc(s->m->be, t, err);
    if (st != INFVSR_OK) infvsr_err_prefix(err, "vae: %s (%zu MiB)", name, (n * infvsr_dtype_size(dt)) >> 20);
    return st;
}

/* Blend masks of every tile and the per-pixel sums of masks (tiled sessions only): computed
 * on the host once, then one upload; encode/decode only read them on the backend. */
static enum infvsr_status build_masks(struct infvsr_vae_session * s, struct infvsr_err * err) {
    int    bw = s->p.tile_latent - s->p.stride_latent;
    size_t total = 0;
    for (int i = 0; i < s->n_tiles; i++) {
        struct vae_tile * t = &s->tiles[i];
        total += (size_t)(t->r1 - t->r0) * (t->c1 - t->c0) * 65;   /* 1 + 64 for the decode mask */
    }
    s->enc_weight = (int64_t)total;
    s->dec_weight = s->enc_weight + (int64_t)s->h * s->w;
    total += (size_t)s->h * s->w * 65;
    float * host = calloc(total, sizeof *host);
    if (!host) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    size_t p = 0;
    for (int i = 0; i < s->n_tiles; i++) {
        struct vae_tile * t = &s->tiles[i];
        for (int f = 1; f <= 8; f *= 8) {
            int rows = f * (t->r1 - t->r0), cols = f * (t->c1 - t->c0), width = f * s->w;
            bool top = t->r0 == 0, bottom = t->r1 >= s->h, left = t->c0 == 0, right = t->c1 >= s->w;
            float * mask   = host + p;
            float * weight = host + (f == 1 ? s->enc_weight : s->dec_weight);
            for (int y = 0; y < rows; y++) {
                float ry = vae_ramp(y, rows, top, bottom, bw * f);
                for (int x = 0; x < cols; x++) {
                    float rx = vae_ramp(x, cols, left, right, bw * f);
                    /* min of the two ramps, rounded to bf16 as the reference does */
                    float v = infvsr_bf16_to_f32(infvsr_f32_to_bf16(ry < rx ? ry : rx));
                    mask[(size_t)y * cols + x] = v;
                    weight[(size_t)(f * t->r0 + y) * width + f * t->c0 + x] += v;
                }
            }
            if (f == 1) t->enc_mask = (int64_t)p; else t->dec_mask = (int64_t)p;
            p += (size_t)rows * cols;
        }
    }
    enum infvsr_status st = alloc_1d(s, &s->blend, "vae.blend", INFVSR_TYPE_F32, total, err);
    if (st == INFVSR_OK) st = infvsr_backend_tensor_set(s->m->be, &s->blend, host, 0, total * sizeof *host, err);
    free(host);
    return st;
}

/* Largest arena any encoder or decoder call of this session needs (dry run on the largest
 * tile, at the stream start and in the steady state). */
static enum infvsr_status plan_arena(struct infvsr_vae_session * s, struct infvsr_err * err) {
    int       n_slots = s->m->n_slots;
    uint8_t * flags   = calloc((size_t)n_slots, 1);
    if (!flags) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    struct vae_tile probe = s->tiles[0];   /* the first tile is the largest in both axes */
    probe.started = flags;
    struct vae_run r = { .be = s->m->be, .act = s->m->act, .dry = true, .started = flags, .err = err };
    struct vae_act out;
    enum infvsr_status st = INFVSR_OK;
    for (int steady = 0; steady < 2 && st == INFVSR_OK; steady++) {
        memset(flags, steady, (size_t)n_slots);
        r.top = 0;
        st = vae_encode_call(s, &r, &probe, NULL, 0, steady ? 4 : 1, &out);
        if (st != INFVSR_OK) break;
        memset(flags, steady, (size_t)n_slots);
        r.top = 0;
        st = vae_decode_call(s, &r, &probe, NULL, 0, &out);
    }
    free(flags);
    if (st != INFVSR_OK) return st;
    return alloc_1d(s, &s->arena, "vae.scratch", s->m->act, r.peak, err);
}

/* One cache tensor for every slot of every tile; each region 64-byte aligned. */
static enum infvsr_status alloc_caches(struct infvsr_vae_session * s, struct infvsr_err * err) {
    const struct infvsr_vae * m = s->m;
    size_t n = (size_t)s->n_tiles * m->n_slots, align = vae_align_elems(m->act), off = 0;
    s->cache_offs = calloc(n, sizeof *s->cache_offs);
    s->started    = calloc(n, 1);
    if (!s->cache_offs || !s->started) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n_tiles; i++) {
        struct vae_tile * t = &s->tiles[i];
        t->cache_off = s->cache_offs + (size_t)i * m->n_slots;
        t->started   = s->started + (size_t)i * m->n_slots;
        size_t hp = 8 * (size_t)(t->r1 - t->r0), wp = 8 * (size_t)(t->c1 - t->c0);
        for (int k = 0; k < m->n_slots; k++) {
            const struct vae_slot * sl = &m->slots[k];
            t->cache_off[k] = (int64_t)off;
            off += vae_round_up((size_t)sl->channels * sl->frames * (hp >> sl->shift) * (wp >> sl->shift), align);
        }
    }
    /* Zero-filled: the zero frames of the causal padding at the stream start. */
    return alloc_1d(s, &s->cache, "vae.cache", m->act, off, err);
}

static enum infvsr_status open_session(struct infvsr_vae_session * s, struct infvsr_err * err) {
    const struct infvsr_vae_session_params * p = &s->p;
    if (p->height <= 0 || p->width <= 0 || p->height % 16 || p->width % 16) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: padded size %dx%d must be positive multiples of 16",
                              p->height, p->width);
    }
    if (p->tile_latent < 2 || p->stride_latent < 1 || p->stride_latent > p->tile_latent) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: bad tiling (tile %d, stride %d latents)",
                              p->tile_latent, p->stride_latent);
    }
    s->h     = p->height / 8;
    s->w     = p->width / 8;
    s->tiled = p->height > p->tile_threshold_px;
    struct vae_span rows[MAX_SPANS], cols[MAX_SPANS];
    int n_rows = 1, n_cols = 1;
    rows[0] = (struct vae_span){ 0, s->h };
    cols[0] = (struct vae_span){ 0, s->w };
    if (s->tiled) {
        n_rows = vae_tile_spans(s->h, p->tile_latent, p->stride_latent, rows, MAX_SPANS);
        n_cols = vae_tile_spans(s->w, p->tile_latent, p->stride_latent, cols, MAX_SPANS);
        if (n_rows < 0 || n_cols < 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: too many tiles");
    }
    s->n_tiles = n_rows * n_cols;
    s->tiles   = calloc((size_t)s->n_tiles, sizeof *s->tiles);
    if (!s->tiles) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_rows; i++) {
        for (int j = 0; j < n_cols; j++) {   /* row-major, as the reference */
            struct vae_tile * t = &s->tiles[i * n_cols + j];
            t->r0 = rows[i].start; t->r1 = rows[i].end;
            t->c0 = cols[j].start; t->c1 = cols[j].end;
        }
    }
    enum infvsr_status st = alloc_caches(s, err);
    if (st == INFVSR_OK && s->tiled) st = build_masks(s, err);
    if (st == INFVSR_OK) st = plan_arena(s, err);
    return st;
}

enum infvsr_status infvsr_vae_session_open(struct infvsr_vae * vae, const struct infvsr_vae_session_params * p,
                                           struct infvsr_vae_session ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!vae || !p) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: NULL model or params");
    struct infvsr_vae_session * s = calloc(1, sizeof *s);
    if (!s) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    s->m = vae;
    s->p = *p;
    enum infvsr_status st = open_session(s, err);
    if (st != INFVSR_OK) {
        infvsr_vae_session_close(s);
        return st;
    }
    *out = s;
    return INFVSR_OK;
}

void infvsr_vae_session_close(struct infvsr_vae_session * s) {
    if (!s) return;
    struct infvsr_backend * be = s->m->be;
    infvsr_backend_tensor_free(be, &s->cache);
    infvsr_backend_tensor_free(be, &s->arena);
    infvsr_backend_tensor_free(be, &s->blend);
    free(s->tiles);
    free(s->cache_offs);
    free(s->started);
    free(s);
}

void infvsr_vae_session_reset(struct infvsr_vae_session * s) {
    /* The caches are zeroed (the zero frames of the causal padding at the stream start,
     * section 5.2) by the next encode or decode, where a failing op can be reported. */
    memset(s->started, 0, (size_t)s->n_tiles * s->m->n_slots);
    s->zero_caches = true;
    s->enc_started = false;
    s->dec_started = false;
}

enum infvsr_status vae_session_apply_reset(struct infvsr_vae_session * s, struct infvsr_err * err) {
    if (!s->zero_caches) return INFVSR_OK;
    INFVSR_TRY(infvsr_op_fill(s->m->be, &s->cache, 0.0f, err));
    s->zero_caches = false;
    return INFVSR_OK;
}

static size_t held(const struct infvsr_tensor * t) { return t->data ? infvsr_tensor_nbytes(t) : 0; }

void infvsr_vae_session_set_abort(struct infvsr_vae_session * s, infvsr_abort_cb should_abort, void * user) {
    s->should_abort = should_abort;
    s->abort_user = user;
}

int    infvsr_vae_session_n_tiles(const struct infvsr_vae_session * s) { return s->n_tiles; }
size_t infvsr_vae_session_cache_bytes(const struct infvsr_vae_session * s) { return held(&s->cache); }
size_t infvsr_vae_session_scratch_bytes(const struct infvsr_vae_session * s) { return held(&s->arena); }
size_t infvsr_vae_session_bytes(const struct infvsr_vae_session * s) {
    return held(&s->cache) + held(&s->arena) + held(&s->blend);
}
