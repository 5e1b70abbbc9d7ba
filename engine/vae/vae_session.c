/* Session lifetime: tile grid, per-tile cache slots, blend masks and the scratch arena, all
 * sized and allocated at open (a dry run of the largest encoder and decoder calls gives
 * the arena size), so that encode/decode calls allocate nothing. */
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

static void * alloc_floats(size_t n) {
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    void * p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* Blend masks of every tile and the per-pixel sums of masks (tiled sessions only). */
static enum infvsr_status build_masks(struct infvsr_vae_session * s, struct infvsr_err * err) {
    int    bw = s->p.tile_latent - s->p.stride_latent;
    size_t total = 0;
    for (int i = 0; i < s->n_tiles; i++) {
        struct vae_tile * t = &s->tiles[i];
        total += (size_t)(t->r1 - t->r0) * (t->c1 - t->c0) * 65;   /* 1 + 64 for the decode mask */
    }
    s->masks      = alloc_floats(total);
    s->enc_weight = alloc_floats((size_t)s->h * s->w);
    s->dec_weight = alloc_floats((size_t)s->h * s->w * 64);
    if (!s->masks || !s->enc_weight || !s->dec_weight) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    float * p = s->masks;
    for (int i = 0; i < s->n_tiles; i++) {
        struct vae_tile * t = &s->tiles[i];
        for (int f = 1; f <= 8; f *= 8) {
            int rows = f * (t->r1 - t->r0), cols = f * (t->c1 - t->c0), width = f * s->w;
            bool top = t->r0 == 0, bottom = t->r1 >= s->h, left = t->c0 == 0, right = t->c1 >= s->w;
            float * mask   = p;
            float * weight = f == 1 ? s->enc_weight : s->dec_weight;
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
            if (f == 1) t->enc_mask = mask; else t->dec_mask = mask;
            p += (size_t)rows * cols;
        }
    }
    return INFVSR_OK;
}

/* Largest arena any encoder or decoder call of this session needs (dry run on the largest
 * tile, at the stream start and in the steady state). */
static enum infvsr_status plan_arena(struct infvsr_vae_session * s, struct infvsr_err * err) {
    int       n_slots = s->m->n_slots;
    uint8_t * flags   = calloc((size_t)n_slots, 1);
    if (!flags) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    struct vae_tile probe = s->tiles[0];   /* the first tile is the largest in both axes */
    probe.started = flags;
    struct vae_run r = { .be = s->m->be, .dry = true, .started = flags, .err = err };
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
    s->arena_floats = r.peak;
    s->arena        = alloc_floats(r.peak);
    return s->arena ? INFVSR_OK : infvsr_err_set(err, INFVSR_ERR_NOMEM, "vae: cannot reserve %zu MiB of scratch",
                                                 r.peak * sizeof(float) >> 20);
}

static enum infvsr_status alloc_caches(struct infvsr_vae_session * s, struct infvsr_err * err) {
    const struct infvsr_vae * m = s->m;
    size_t n = (size_t)s->n_tiles * m->n_slots;
    s->cache_ptrs = calloc(n, sizeof *s->cache_ptrs);
    s->started    = calloc(n, 1);
    if (!s->cache_ptrs || !s->started) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t off = 0;
        for (int i = 0; i < s->n_tiles; i++) {
            struct vae_tile * t = &s->tiles[i];
            t->cache   = s->cache_ptrs + (size_t)i * m->n_slots;
            t->started = s->started + (size_t)i * m->n_slots;
            size_t hp = 8 * (size_t)(t->r1 - t->r0), wp = 8 * (size_t)(t->c1 - t->c0);
            for (int k = 0; k < m->n_slots; k++) {
                const struct vae_slot * sl = &m->slots[k];
                size_t floats = (size_t)sl->channels * sl->frames * (hp >> sl->shift) * (wp >> sl->shift);
                if (pass == 1) t->cache[k] = s->cache_mem + off;
                off += (floats + 15) & ~(size_t)15;
            }
        }
        total = off;
        if (pass == 0) {
            s->cache_mem = alloc_floats(total);
            if (!s->cache_mem) {
                return infvsr_err_set(err, INFVSR_ERR_NOMEM, "vae: cannot allocate %zu MiB of caches",
                                      total * sizeof(float) >> 20);
            }
        }
    }
    s->cache_floats = total;
    return INFVSR_OK;
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
    free(s->tiles);
    free(s->cache_ptrs);
    free(s->started);
    free(s->cache_mem);
    free(s->masks);
    free(s->enc_weight);
    free(s->dec_weight);
    free(s->arena);
    free(s);
}

void infvsr_vae_session_reset(struct infvsr_vae_session * s) {
    /* Zero frames are the causal padding at the stream start (section 5.2 stream view). */
    memset(s->cache_mem, 0, s->cache_floats * sizeof(float));
    memset(s->started, 0, (size_t)s->n_tiles * s->m->n_slots);
    s->enc_started = false;
    s->dec_started = false;
}

void infvsr_vae_session_set_abort(struct infvsr_vae_session * s, infvsr_abort_cb should_abort, void * user) {
    s->should_abort = should_abort;
    s->abort_user = user;
}

int    infvsr_vae_session_n_tiles(const struct infvsr_vae_session * s) { return s->n_tiles; }
size_t infvsr_vae_session_cache_bytes(const struct infvsr_vae_session * s) { return s->cache_floats * sizeof(float); }
size_t infvsr_vae_session_scratch_bytes(const struct infvsr_vae_session * s) { return s->arena_floats * sizeof(float); }
