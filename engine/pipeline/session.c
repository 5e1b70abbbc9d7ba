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
    s->be = m->be;
    s->o = *o;
    s->h = o->height, s->w = o->width;
    s->sh = o->height * o->scale, s->sw = o->width * o->scale;
    s->ph = s->sh + infvsr__pad16(s->sh), s->pw = s->sw + infvsr__pad16(s->sw);
    s->lr_bytes = (size_t)s->h * s->w * 3;
    s->sr_bytes = (size_t)s->sh * s->sw * 3;
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(s->be, &caps);
    s->act = caps.act_dtype;
    /* The reference upscales in f32 and rounds to bf16 afterwards (MODEL-SPEC §2.4). */
    s->rdt = caps.act_f32 ? INFVSR_TYPE_F32 : caps.act_dtype;
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
    const int64_t n_tokens = infvsr_visual_n_tokens(m->visual), ctx_dim = infvsr_visual_out_dim(m->visual);
    if ((rc = infvsr_dit_context_alloc(m->dit, n_tokens, &s->ctx, err)) != INFVSR_OK) goto fail;

    const int64_t F = INFVSR_CHUNK_MAX_FRAMES, img = infvsr_visual_img_size(m->visual);
    const struct {
        struct infvsr_tensor * t;
        const char *           name;
        enum infvsr_dtype      dt;
        int                    ndim;
        int64_t                shape[4];
    } bufs[] = {
        { &s->lr_u8, "session.lr_u8", INFVSR_TYPE_U8, 4, { F, s->h, s->w, 3 } },
        { &s->lr, "session.lr", s->rdt, 4, { 3, F, s->h, s->w } },
        { &s->up, "session.upscaled", s->rdt, 4, { 3, F, s->sh, s->sw } },
        { &s->frames, "session.frames", s->act, 4, { 3, F, s->ph, s->pw } },
        { &s->latents, "session.latents", s->act, 4, { INFVSR_VAE_Z_DIM, max_latents, lh, lw } },
        { &s->pred, "session.pred", s->act, 4, { INFVSR_VAE_Z_DIM, max_latents, lh, lw } },
        { &s->restored, "session.restored", s->act, 4, { INFVSR_VAE_Z_DIM, max_latents, lh, lw } },
        { &s->image, "session.reference_image", s->act, 3, { 3, img, img } },
        { &s->context, "session.visual_context", s->act, 2, { n_tokens, ctx_dim } },
        { &s->out_u8, "session.out_u8", INFVSR_TYPE_U8, 4, { F, s->sh, s->sw, 3 } },
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bufs[i].t == &s->up && o->scale == 1) continue; /* no resize: padding reads lr */
        infvsr_tensor_setup(bufs[i].t, bufs[i].name, bufs[i].dt, bufs[i].ndim, bufs[i].shape);
        if ((rc = infvsr_backend_tensor_alloc(s->be, bufs[i].t, err)) != INFVSR_OK) {
            infvsr_err_prefix(err, "session: %dx%d -> %dx%d buffers on %s", s->w, s->h, s->sw, s->sh, caps.name);
            goto fail;
        }
        s->device_bytes += infvsr_tensor_nbytes(bufs[i].t);
    }
    s->out = malloc((size_t)F * s->sr_bytes);
    s->host_bytes = (size_t)F * s->sr_bytes;
    if (!s->out) {
        rc = infvsr_err_set(err, INFVSR_ERR_NOMEM, "session: out of memory for %dx%d output frames", s->sw, s->sh);
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
    /* Queued work may still read the buffers freed below (errors were reported already). */
    infvsr_backend_synchronize(s->be, NULL);
    if (s->held_valid) infvsr_chunk_release(&s->held);
    infvsr_chunker_destroy(s->chunker);
    infvsr_vae_session_close(s->vae);
    infvsr_dit_session_close(s->dit);
    infvsr_dit_context_free(s->ctx);
    struct infvsr_tensor * bufs[] = { &s->lr_u8, &s->lr, &s->up, &s->frames, &s->latents, &s->pred,
                                      &s->restored, &s->image, &s->context, &s->out_u8 };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) infvsr_backend_tensor_free(s->be, bufs[i]);
    free(s->out);
    free(s->capture_raw);
    infvsr_tensor_release(&s->capture_f32);
    for (int i = 0; i < s->pool_n; i++) free(s->pool[i]);
    free(s);
}

int infvsr_session_out_width(const struct infvsr_session * s) { return s->sw; }
int infvsr_session_out_height(const struct infvsr_session * s) { return s->sh; }

void infvsr_session_set_chunk_hook(struct infvsr_session * s, infvsr_session_chunk_hook hook, void * user) {
    s->hook = hook, s->hook_user = user;
}

enum infvsr_status infvsr_session_capture_decoded(struct infvsr_session * s, struct infvsr_err * err) {
    if (s->capture) return INFVSR_OK;
    int64_t shape[4] = { 3, INFVSR_CHUNK_MAX_FRAMES, s->ph, s->pw };
    if (infvsr_tensor_alloc(&s->capture_f32, "decoded", INFVSR_TYPE_F32, 4, shape) != INFVSR_OK)
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "session: out of memory for the decoded-frame capture");
    if (s->act != INFVSR_TYPE_F32) {
        s->capture_raw = malloc(infvsr_tensor_nbytes(&s->frames));
        if (!s->capture_raw) {
            infvsr_tensor_release(&s->capture_f32);
            return infvsr_err_set(err, INFVSR_ERR_NOMEM, "session: out of memory for the decoded-frame capture");
        }
    }
    s->host_bytes += infvsr_tensor_nbytes(&s->capture_f32) + (s->capture_raw ? infvsr_tensor_nbytes(&s->frames) : 0);
    s->capture = true;
    return INFVSR_OK;
}

void infvsr_session_set_abort(struct infvsr_session * s, infvsr_abort_cb should_abort, void * user) {
    s->should_abort = should_abort, s->abort_user = user;
    infvsr_dit_session_set_abort(s->dit, should_abort, user);
    infvsr_vae_session_set_abort(s->vae, should_abort, user);
}

/* ---- one chunk through the model ---------------------------------------------------- */

/* A view of backend tensor `base` with another shape (a dense prefix of its storage). */
static struct infvsr_tensor view(const struct infvsr_tensor * base, int ndim, const int64_t * shape) {
    struct infvsr_tensor t;
    infvsr_tensor_view(&t, base->name, base->dtype, ndim, shape, base->data);
    t.mem = base->mem;
    return t;
}

/* Waits for the stage's queued work so that its time is its own (no-op on the CPU). */
static enum infvsr_status stage_done(struct infvsr_session * s, enum infvsr_session_stage stage, double * t0,
                                     struct infvsr_err * err) {
    enum infvsr_status rc = infvsr_backend_synchronize(s->be, err);
    double t1 = now_s();
    s->stats.seconds[stage] += t1 - *t0;
    *t0 = t1;
    return rc;
}

/* The cancel hook between the stages of a chunk (the DiT polls it between blocks, the VAE
 * between calls and layers). */
static enum infvsr_status check_abort(const struct infvsr_session * s, const char * where, struct infvsr_err * err) {
    if (!s->should_abort || !s->should_abort(s->abort_user)) return INFVSR_OK;
    return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "session: cancelled before %s", where);
}

/* The visual context from the chunk's first LR frame, already uploaded to lr_u8[0]. */
static enum infvsr_status compute_context(struct infvsr_session * s, struct infvsr_err * err) {
    struct infvsr_model * m = s->m;
    int64_t fs[3] = { s->h, s->w, 3 };
    struct infvsr_tensor f = view(&s->lr_u8, 3, fs);
    INFVSR_TRY(infvsr_visual_prepare_reference(m->visual, &f, &s->image, err));
    INFVSR_TRY(infvsr_visual_encode(m->visual, &s->image, NULL, &s->context, err));
    INFVSR_TRY(infvsr_dit_context_set(s->ctx, &s->context, err));
    s->ctx_valid = true;
    s->stats.references++;
    return INFVSR_OK;
}

/* The decoded frames [3, Lp, ph, pw] as a host f32 tensor for the hook, or NULL. */
static enum infvsr_status decoded_for_hook(struct infvsr_session * s, const struct infvsr_tensor * dec,
                                           struct infvsr_tensor * host, const struct infvsr_tensor ** out,
                                           struct infvsr_err * err) {
    *out = NULL;
    if (!s->capture) return INFVSR_OK;
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(s->be, &caps);
    if (caps.host_visible && dec->dtype == INFVSR_TYPE_F32) { /* already a host f32 tensor */
        *out = dec;
        return INFVSR_OK;
    }
    *host = view(&s->capture_f32, dec->ndim, dec->shape);
    host->mem = INFVSR_MEM_HOST;
    size_t n = (size_t)infvsr_tensor_numel(dec);
    void * dst = dec->dtype == INFVSR_TYPE_F32 ? host->data : s->capture_raw;
    INFVSR_TRY(infvsr_backend_tensor_get(s->be, dec, dst, 0, infvsr_tensor_nbytes(dec), err));
    INFVSR_TRY(infvsr_backend_synchronize(s->be, err));
    if (dec->dtype != INFVSR_TYPE_F32) infvsr_convert_to_f32(host->data, s->capture_raw, dec->dtype, n);
    *out = host;
    return INFVSR_OK;
}

static enum infvsr_status run_chunk(struct infvsr_session * s, const struct infvsr_chunk * c,
                                    struct infvsr_err * err) {
    double t0 = now_s();
    const bool first = c->new_scene || !s->scene_open;
    const int  L = c->n, Lp = infvsr__padded_len(L, first);
    INFVSR_ASSERT(L >= 1 && L <= INFVSR_CHUNK_MAX_FRAMES && Lp <= INFVSR_CHUNK_MAX_FRAMES);
    INFVSR_TRY(check_abort(s, "the chunk started", err));

    /* The only upload of a chunk: its u8 LR frames. */
    for (int t = 0; t < L; t++)
        INFVSR_TRY(infvsr_backend_tensor_set(s->be, &s->lr_u8, c->frames[t], (size_t)t * s->lr_bytes, s->lr_bytes,
                                             err));
    if (first) {
        infvsr_dit_session_reset(s->dit);
        infvsr_vae_session_reset(s->vae);
        s->scene_open = true;
        s->stats.scenes++;
    }
    if (c->update || !s->ctx_valid) {
        INFVSR_TRY(compute_context(s, err));
        INFVSR_TRY(stage_done(s, INFVSR_STAGE_VISUAL, &t0, err));
    }

    /* u8 -> [-1, 1], bicubic x scale (f32, no clamp), replicate padding. */
    INFVSR_TRY(check_abort(s, "the resize", err));
    INFVSR_TRY(infvsr__frames_to_model(s, L, err));
    int64_t xs[3] = { 3 * (int64_t)L, s->h, s->w }, ys[3] = { 3 * (int64_t)L, s->sh, s->sw };
    struct infvsr_tensor x = view(&s->lr, 3, xs), y = view(&s->up, 3, ys);
    const struct infvsr_tensor * upscaled = &s->lr;
    if (s->o.scale != 1) {
        INFVSR_TRY(infvsr_op_resize(s->be, INFVSR_RESIZE_BICUBIC_AA, &x, &y, err));
        upscaled = &s->up;
    }
    INFVSR_TRY(infvsr__pad_replicate(s, upscaled, L, Lp, err));
    INFVSR_TRY(stage_done(s, INFVSR_STAGE_RESIZE, &t0, err));

    /* VAE encode. */
    const int64_t T = infvsr_vae_encode_n_latents(Lp, first);
    INFVSR_ASSERT(T >= 1 && T <= 3);
    int64_t fs[4] = { 3, Lp, s->ph, s->pw };
    int64_t ls[4] = { INFVSR_VAE_Z_DIM, T, s->ph / 8, s->pw / 8 };
    struct infvsr_tensor frames = view(&s->frames, 4, fs), lat = view(&s->latents, 4, ls);
    struct infvsr_tensor pred = view(&s->pred, 4, ls), restored = view(&s->restored, 4, ls);
    INFVSR_TRY(check_abort(s, "the VAE encode", err));
    INFVSR_TRY(infvsr_vae_encode_chunk(s->vae, &frames, first, &lat, err));
    INFVSR_TRY(stage_done(s, INFVSR_STAGE_VAE_ENCODE, &t0, err));

    /* One DiT step at the scene's latent position (padded latents count), then restore. */
    INFVSR_TRY(check_abort(s, "the DiT step", err));
    const int64_t start_frame = infvsr_dit_session_position(s->dit);
    INFVSR_TRY(infvsr_dit_step(s->dit, s->ctx, &lat, start_frame, &pred, err));
    INFVSR_TRY(infvsr_dit_restore(s->be, &lat, &pred, &restored, err));
    INFVSR_TRY(stage_done(s, INFVSR_STAGE_DIT, &t0, err));

    /* VAE decode into the frames buffer (the encoder input is no longer needed). */
    const int64_t n_px = infvsr_vae_decode_n_frames(s->vae, T);
    if (n_px != Lp)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "session: VAE decodes %lld frames for %lld latents, "
                              "expected %d (decoder state out of step)", (long long)n_px, (long long)T, Lp);
    INFVSR_TRY(check_abort(s, "the VAE decode", err));
    INFVSR_TRY(infvsr_vae_decode_chunk(s->vae, &restored, &frames, err));
    INFVSR_TRY(stage_done(s, INFVSR_STAGE_VAE_DECODE, &t0, err));

    if (s->hook) {
        struct infvsr_session_chunk_info info = {
            .first = c->first, .n = L, .n_padded = Lp, .n_latents = (int)T, .start_frame = start_frame,
            .new_scene = c->new_scene, .update = c->update,
        };
        struct infvsr_tensor host;
        const struct infvsr_tensor * dec = NULL;
        INFVSR_TRY(decoded_for_hook(s, &frames, &host, &dec, err));
        s->hook(s->hook_user, &info, dec);
        t0 = now_s(); /* the hook's time is not the session's */
    }

    /* Crop + quantise on the backend; the only download of a chunk: its u8 SR frames. */
    INFVSR_TRY(infvsr__quantise(s, L, Lp, err));
    INFVSR_TRY(infvsr_backend_tensor_get(s->be, &s->out_u8, s->out, 0, (size_t)L * s->sr_bytes, err));
    INFVSR_TRY(stage_done(s, INFVSR_STAGE_OUTPUT, &t0, err));
    for (int t = 0; t < L; t++) s->out_pts[t] = c->pts[t];
    s->out_n = L, s->out_pos = 0;
    s->stats.chunks++;
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
        /* The chunk's own host<->backend traffic (sessions sharing a backend are driven from
         * one thread, so nothing else moves meanwhile). */
        struct infvsr_backend_traffic t0, t1;
        infvsr_backend_get_traffic(s->be, &t0);
        enum infvsr_status rc = run_chunk(s, &s->held, err);
        infvsr_backend_get_traffic(s->be, &t1);
        s->stats.bytes_to_device += t1.bytes_to_device - t0.bytes_to_device;
        s->stats.bytes_from_device += t1.bytes_from_device - t0.bytes_from_device;
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
    out->vae_cache_bytes = infvsr_vae_session_bytes(s->vae);
    out->dit_bytes       = infvsr_dit_session_nbytes(s->dit) + infvsr_dit_context_nbytes(s->ctx);
    out->buffer_bytes    = s->device_bytes;
    out->session_bytes   = out->vae_cache_bytes + out->dit_bytes + out->buffer_bytes;
    out->host_bytes      = s->host_bytes + (size_t)s->pool_n * s->lr_bytes;
    out->model_bytes     = infvsr_model_resident_bytes(s->m);
}
