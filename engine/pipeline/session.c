/* The streaming engine session (session.h): the chunker in front, the model per chunk,
 * a one-chunk output buffer behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infvsr/dit.h"
#include "infvsr/vae.h"
#include "infvsr/visual.h"
#include "ops.h"
#include "session_internal.h"

#define MAX_SIDE  16384
#define MAX_SCALE 8

struct infvsr_session_opts infvsr_session_opts_default(int width, int height) {
    struct infvsr_session_opts o = {
        .width = width, .height = height, .scale = 4, .scene_detection = true,
        .scene_threshold = 27.0, .reference_threshold = 27.0, .max_frames = 0,
        .vae_tile_threshold = 1024,
    };
    return o;
}

const char * infvsr_session_stage_name(enum infvsr_session_stage st) {
    static const char * const names[INFVSR_STAGE_COUNT] = {
        "scene", "visual", "resize", "vae_encode", "dit", "vae_decode", "output",
    };
    return (unsigned)st < INFVSR_STAGE_COUNT ? names[st] : "?";
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void * alloc_buf(struct infvsr_session * s, size_t bytes) {
    s->buffer_bytes += bytes;
    return aligned_alloc(INFVSR_TENSOR_ALIGN, (bytes + INFVSR_TENSOR_ALIGN - 1) / INFVSR_TENSOR_ALIGN * INFVSR_TENSOR_ALIGN);
}

/* Records a failure; every later call reports it again. */
static enum infvsr_status fail(struct infvsr_session * s, enum infvsr_status rc, struct infvsr_err * err) {
    s->failed = rc;
    snprintf(s->failed_msg, sizeof s->failed_msg, "%s", err && err->msg[0] ? err->msg : infvsr_status_str(rc));
    return rc;
}

static enum infvsr_status failed_again(const struct infvsr_session * s, struct infvsr_err * err) {
    return infvsr_err_set(err, s->failed, "session failed earlier: %s", s->failed_msg);
}

enum infvsr_status infvsr_session_open(struct infvsr_model * m, const struct infvsr_session_opts * o,
                                       struct infvsr_session ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!m || !o) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: model and options are required");
    if (o->width <= 0 || o->height <= 0 || o->width > MAX_SIDE || o->height > MAX_SIDE)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: LR size %dx%d outside 1..%d", o->width,
                              o->height, MAX_SIDE);
    if (o->scale < 1 || o->scale > MAX_SCALE)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: scale %d outside 1..%d", o->scale, MAX_SCALE);
    if (!(o->scene_threshold > 0) || !(o->reference_threshold > 0))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: thresholds must be > 0 (scene %g, reference %g)",
                              o->scene_threshold, o->reference_threshold);
    if (o->max_frames < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: max_frames %lld < 0", (long long)o->max_frames);
    if ((int64_t)o->width * o->scale > MAX_SIDE || (int64_t)o->height * o->scale > MAX_SIDE)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: output %lldx%lld larger than %d per side",
                              (long long)o->width * o->scale, (long long)o->height * o->scale, MAX_SIDE);

    struct infvsr_session * s = calloc(1, sizeof *s);
    if (!s) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "session: out of memory");
    s->m = m;
    s->o = *o;
    s->h = o->height, s->w = o->width;
    s->sh = o->height * o->scale, s->sw = o->width * o->scale;
    s->ph = s->sh + infvsr__pad16(s->sh), s->pw = s->sw + infvsr__pad16(s->sw);
    s->lr_bytes = (size_t)s->h * s->w * 3;
    s->sr_bytes = (size_t)s->sh * s->sw * 3;
    enum infvsr_status rc;

    struct infvsr_chunker_config cc = infvsr_chunker_config_default(o->width, o->height);
    cc.scene_detection     = o->scene_detection;
    cc.scene_threshold     = o->scene_threshold;
    cc.reference_threshold = o->reference_threshold;
    cc.max_frames          = o->max_frames;
    if ((rc = infvsr_chunker_create(&cc, &s->chunker, err)) != INFVSR_OK) goto fail;

    struct infvsr_vae_session_params vp = infvsr_vae_session_default_params();
    vp.height = s->ph, vp.width = s->pw;
    if (o->vae_tile_threshold > 0) vp.tile_threshold_px = o->vae_tile_threshold;
    if ((rc = infvsr_vae_session_open(m->vae, &vp, &s->vae, err)) != INFVSR_OK) goto fail;

    const int64_t max_latents = 3; /* 9 or 12 frames -> 3 latent frames */
    const int64_t lh = s->ph / 8, lw = s->pw / 8;
    if ((rc = infvsr_dit_session_open(m->dit, max_latents * (lh / 2) * (lw / 2), &s->dit, err)) != INFVSR_OK)
        goto fail;

    const size_t F = INFVSR_CHUNK_MAX_FRAMES;
    const int    img = infvsr_visual_img_size(m->visual);
    s->lr       = alloc_buf(s, 3 * F * (size_t)s->h * s->w * sizeof(float));
    s->up       = alloc_buf(s, 3 * F * (size_t)s->sh * s->sw * sizeof(float));
    s->frames   = alloc_buf(s, 3 * F * (size_t)s->ph * s->pw * sizeof(float));
    s->latents  = alloc_buf(s, INFVSR_VAE_Z_DIM * max_latents * lh * lw * sizeof(float));
    s->pred     = alloc_buf(s, INFVSR_VAE_Z_DIM * max_latents * lh * lw * sizeof(float));
    s->restored = alloc_buf(s, INFVSR_VAE_Z_DIM * max_latents * lh * lw * sizeof(float));
    s->image    = alloc_buf(s, 3 * (size_t)img * img * sizeof(float));
    s->context  = alloc_buf(s, (size_t)infvsr_visual_n_tokens(m->visual) * infvsr_visual_out_dim(m->visual) *
                                   sizeof(float));
    s->out      = alloc_buf(s, F * s->sr_bytes);
    if (!s->lr || !s->up || !s->frames || !s->latents || !s->pred || !s->restored || !s->image || !s->context ||
        !s->out) {
        rc = infvsr_err_set(err, INFVSR_ERR_NOMEM, "session: out of memory for %dx%d -> %dx%d buffers (%zu bytes)",
                            s->w, s->h, s->sw, s->sh, s->buffer_bytes);
        goto fail;
    }
    *out = s;
    return INFVSR_OK;
fail:
    infvsr_session_close(s);
    return rc;
}

void infvsr_session_close(struct infvsr_session * s) {
    if (!s) return;
    if (s->held_valid) infvsr_chunk_release(&s->held);
    infvsr_chunker_destroy(s->chunker);
    infvsr_vae_session_close(s->vae);
    infvsr_dit_session_close(s->dit);
    infvsr_dit_context_free(s->ctx);
    free(s->lr), free(s->up), free(s->frames), free(s->latents), free(s->pred), free(s->restored);
    free(s->image), free(s->context), free(s->out);
    for (int i = 0; i < s->pool_n; i++) free(s->pool[i]);
    free(s);
}

int infvsr_session_out_width(const struct infvsr_session * s) { return s->sw; }
int infvsr_session_out_height(const struct infvsr_session * s) { return s->sh; }

void infvsr_session_set_chunk_hook(struct infvsr_session * s, infvsr_session_chunk_hook hook, void * user) {
    s->hook = hook, s->hook_user = user;
}

void infvsr_session_set_abort(struct infvsr_session * s, infvsr_abort_cb should_abort, void * user) {
    s->should_abort = should_abort, s->abort_user = user;
    infvsr_dit_session_set_abort(s->dit, should_abort, user);
    infvsr_vae_session_set_abort(s->vae, should_abort, user);
}

/* ---- one chunk through the model ---------------------------------------------------- */

/* The cancel hook between the stages of a chunk (the DiT polls it between blocks, the VAE
 * between calls and layers). */
static enum infvsr_status check_abort(const struct infvsr_session * s, const char * where, struct infvsr_err * err) {
    if (!s->should_abort || !s->should_abort(s->abort_user)) return INFVSR_OK;
    return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "session: cancelled before %s", where);
}

static enum infvsr_status compute_context(struct infvsr_session * s, const uint8_t * frame, struct infvsr_err * err) {
    struct infvsr_model * m = s->m;
    const int img = infvsr_visual_img_size(m->visual);
    struct infvsr_tensor f, image, ctx;
    int64_t fs[3] = { s->h, s->w, 3 };
    int64_t is[3] = { 3, img, img };
    int64_t cs[2] = { infvsr_visual_n_tokens(m->visual), infvsr_visual_out_dim(m->visual) };
    infvsr_tensor_view(&f, "reference_frame", INFVSR_TYPE_U8, 3, fs, (void *)frame);
    infvsr_tensor_view(&image, "reference_image", INFVSR_TYPE_F32, 3, is, s->image);
    infvsr_tensor_view(&ctx, "visual_context", INFVSR_TYPE_F32, 2, cs, s->context);
    enum infvsr_status rc;
    if ((rc = infvsr_visual_prepare_reference(m->visual, &f, &image, err)) != INFVSR_OK) return rc;
    if ((rc = infvsr_visual_encode(m->visual, &image, NULL, &ctx, err)) != INFVSR_OK) return rc;
    struct infvsr_dit_context * c = NULL;
    if ((rc = infvsr_dit_context_init(m->dit, &ctx, &c, err)) != INFVSR_OK) return rc;
    infvsr_dit_context_free(s->ctx);
    s->ctx = c;
    s->stats.references++;
    return INFVSR_OK;
}

static enum infvsr_status run_chunk(struct infvsr_session * s, const struct infvsr_chunk * c,
                                    struct infvsr_err * err) {
    struct infvsr_model * m = s->m;
    double * sec = s->stats.seconds;
    double t0 = now_s(), t1;
    enum infvsr_status rc;
    const bool first = c->new_scene || !s->scene_open;
    const int  L = c->n, Lp = infvsr__padded_len(L, first);
    INFVSR_ASSERT(L >= 1 && L <= INFVSR_CHUNK_MAX_FRAMES && Lp <= INFVSR_CHUNK_MAX_FRAMES);
    if ((rc = check_abort(s, "the chunk started", err)) != INFVSR_OK) return rc;

    if (first) {
        infvsr_dit_session_reset(s->dit);
        infvsr_vae_session_reset(s->vae);
        s->scene_open = true;
        s->stats.scenes++;
    }
    if (c->update || !s->ctx) {
        if ((rc = compute_context(s, c->frames[0], err)) != INFVSR_OK) return rc;
        t1 = now_s(), sec[INFVSR_STAGE_VISUAL] += t1 - t0, t0 = t1;
    }

    /* u8 -> [-1, 1], bicubic x scale (f32, no clamp), replicate padding. */
    if ((rc = check_abort(s, "the resize", err)) != INFVSR_OK) return rc;
    for (int t = 0; t < L; t++) infvsr__lr_to_model(c->frames[t], s->h, s->w, t, L, s->lr);
    struct infvsr_tensor x, y;
    int64_t xs[3] = { 3 * (int64_t)L, s->h, s->w }, ys[3] = { 3 * (int64_t)L, s->sh, s->sw };
    infvsr_tensor_view(&x, "lr", INFVSR_TYPE_F32, 3, xs, s->lr);
    infvsr_tensor_view(&y, "upscaled", INFVSR_TYPE_F32, 3, ys, s->up);
    if (s->o.scale == 1) {
        memcpy(s->up, s->lr, infvsr_tensor_nbytes(&x));
    } else if ((rc = infvsr_op_resize(m->be, INFVSR_RESIZE_BICUBIC_AA, &x, &y, err)) != INFVSR_OK) {
        return rc;
    }
    infvsr__pad_replicate(s->up, L, s->sh, s->sw, s->frames, Lp, s->ph, s->pw);
    t1 = now_s(), sec[INFVSR_STAGE_RESIZE] += t1 - t0, t0 = t1;

    /* VAE encode. */
    const int64_t T = infvsr_vae_encode_n_latents(Lp, first);
    INFVSR_ASSERT(T >= 1 && T <= 3);
    struct infvsr_tensor frames, lat, pred, restored;
    int64_t fs[4] = { 3, Lp, s->ph, s->pw };
    int64_t ls[4] = { INFVSR_VAE_Z_DIM, T, s->ph / 8, s->pw / 8 };
    infvsr_tensor_view(&frames, "frames", INFVSR_TYPE_F32, 4, fs, s->frames);
    infvsr_tensor_view(&lat, "latents", INFVSR_TYPE_F32, 4, ls, s->latents);
    infvsr_tensor_view(&pred, "pred", INFVSR_TYPE_F32, 4, ls, s->pred);
    infvsr_tensor_view(&restored, "restored", INFVSR_TYPE_F32, 4, ls, s->restored);
    if ((rc = check_abort(s, "the VAE encode", err)) != INFVSR_OK) return rc;
    if ((rc = infvsr_vae_encode_chunk(s->vae, &frames, first, &lat, err)) != INFVSR_OK) return rc;
    t1 = now_s(), sec[INFVSR_STAGE_VAE_ENCODE] += t1 - t0, t0 = t1;

    /* One DiT step at the scene's latent position (padded latents count), then restore. */
    if ((rc = check_abort(s, "the DiT step", err)) != INFVSR_OK) return rc;
    const int64_t start_frame = infvsr_dit_session_position(s->dit);
    if ((rc = infvsr_dit_step(s->dit, s->ctx, &lat, start_frame, &pred, err)) != INFVSR_OK) return rc;
    if ((rc = infvsr_dit_restore(&lat, &pred, &restored, err)) != INFVSR_OK) return rc;
    t1 = now_s(), sec[INFVSR_STAGE_DIT] += t1 - t0, t0 = t1;

    /* VAE decode into the frames buffer (the encoder input is no longer needed). */
    const int64_t n_px = infvsr_vae_decode_n_frames(s->vae, T);
    if (n_px != Lp)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: VAE decodes %lld frames for %lld latents, "
                              "expected %d (decoder state out of step)", (long long)n_px, (long long)T, Lp);
    if ((rc = check_abort(s, "the VAE decode", err)) != INFVSR_OK) return rc;
    if ((rc = infvsr_vae_decode_chunk(s->vae, &restored, &frames, err)) != INFVSR_OK) return rc;
    t1 = now_s(), sec[INFVSR_STAGE_VAE_DECODE] += t1 - t0, t0 = t1;

    if (s->hook) {
        struct infvsr_session_chunk_info info = {
            .first = c->first, .n = L, .n_padded = Lp, .n_latents = (int)T, .start_frame = start_frame,
            .new_scene = c->new_scene, .update = c->update,
        };
        s->hook(s->hook_user, &info, &frames);
    }

    /* Crop + quantise into the output buffer. */
    for (int t = 0; t < L; t++) {
        infvsr__quantise_frame(s->frames, Lp, s->ph, s->pw, t, s->sh, s->sw, s->out + (size_t)t * s->sr_bytes);
        s->out_pts[t] = c->pts[t];
    }
    s->out_n = L, s->out_pos = 0;
    s->stats.chunks++;
    t1 = now_s(), sec[INFVSR_STAGE_OUTPUT] += t1 - t0;
    return INFVSR_OK;
}

/* Gives the chunk's LR buffers back to the pool (freeing what does not fit). */
static void recycle(struct infvsr_session * s, struct infvsr_chunk * c) {
    for (int i = 0; i < c->n; i++) {
        if (s->pool_n < INFVSR_SESSION_POOL_MAX) s->pool[s->pool_n++] = c->frames[i];
        else free(c->frames[i]);
        c->frames[i] = NULL;
    }
    c->n = 0;
}

/* Runs ready chunks while the output buffer is empty. */
static enum infvsr_status pump(struct infvsr_session * s, struct infvsr_err * err) {
    for (;;) {
        if (!s->held_valid) {
            if (!infvsr_chunker_pop(s->chunker, &s->held)) return INFVSR_OK;
            s->held_valid = true;
        }
        if (s->out_pos < s->out_n) return INFVSR_OK;
        enum infvsr_status rc = run_chunk(s, &s->held, err);
        recycle(s, &s->held);
        s->held_valid = false;
        if (rc != INFVSR_OK) return fail(s, rc, err);
    }
}

enum infvsr_status infvsr_session_push_frame(struct infvsr_session * s, const uint8_t * rgb, int64_t pts,
                                             struct infvsr_err * err) {
    if (s->failed) return failed_again(s, err);
    if (s->finished) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: push after finish");
    if (!rgb) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: NULL frame");
    enum infvsr_status rc = pump(s, err);
    if (rc != INFVSR_OK) return rc;
    if (s->held_valid)
        return infvsr_err_set(err, INFVSR_ERR_BUSY, "session: output pending, pull frames before pushing more");
    if (!infvsr_chunker_wants_frames(s->chunker)) return INFVSR_OK; /* past max_frames: dropped */

    double t0 = now_s();
    uint8_t * buf = s->pool_n > 0 ? s->pool[--s->pool_n] : malloc(s->lr_bytes);
    if (!buf) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "session: out of memory for a frame");
    memcpy(buf, rgb, s->lr_bytes);
    rc = infvsr_chunker_push_pts(s->chunker, buf, pts, err);
    if (rc != INFVSR_OK) {
        s->pool[s->pool_n++] = buf; /* the slot it came from, or a free one */
        return rc == INFVSR_ERR_BUSY ? rc : fail(s, rc, err);
    }
    s->stats.frames_in++;
    s->stats.seconds[INFVSR_STAGE_SCENE] += now_s() - t0;
    return pump(s, err);
}

enum infvsr_status infvsr_session_finish(struct infvsr_session * s, struct infvsr_err * err) {
    if (s->failed) return failed_again(s, err);
    if (s->finished) return INFVSR_OK;
    double t0 = now_s();
    enum infvsr_status rc = infvsr_chunker_finish(s->chunker, err);
    s->stats.seconds[INFVSR_STAGE_SCENE] += now_s() - t0;
    if (rc != INFVSR_OK) return fail(s, rc, err);
    s->finished = true;
    return INFVSR_OK;
}

int infvsr_session_pull_frame(struct infvsr_session * s, uint8_t * rgb, int64_t * pts, struct infvsr_err * err) {
    if (s->failed) return failed_again(s, err);
    if (s->out_pos >= s->out_n) {
        enum infvsr_status rc = pump(s, err);
        if (rc != INFVSR_OK) return rc;
        if (s->out_pos >= s->out_n) {
            if (s->finished && !s->held_valid) s->drained = true;
            return 0;
        }
    }
    double t0 = now_s();
    memcpy(rgb, s->out + (size_t)s->out_pos * s->sr_bytes, s->sr_bytes);
    if (pts) *pts = s->out_pts[s->out_pos];
    s->out_pos++;
    s->stats.frames_out++;
    s->stats.seconds[INFVSR_STAGE_OUTPUT] += now_s() - t0;
    return 1;
}

bool infvsr_session_done(const struct infvsr_session * s) { return s->drained; }

void infvsr_session_get_stats(const struct infvsr_session * s, struct infvsr_session_stats * out) {
    *out = s->stats;
    out->vae_cache_bytes = infvsr_vae_session_cache_bytes(s->vae) + infvsr_vae_session_scratch_bytes(s->vae);
    out->dit_bytes       = infvsr_dit_session_nbytes(s->dit);
    out->buffer_bytes    = s->buffer_bytes + (size_t)s->pool_n * s->lr_bytes;
}
