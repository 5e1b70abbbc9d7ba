/* Module parity of a backend against the CPU backend, on the model of a model directory
 * (`infvsr make-tiny-model DIR [--config config/models/infvsr-full.json]`: random weights,
 * any size) and the same random inputs on both, every output compared (relative L2):
 *
 *   dit     a chunk sequence with the rolling KV cache, a scene reset and a new context
 *           (T = 3, 3, 1, reset + new context, 3, 3 on a 8x12 latent grid);
 *   vae     the streaming encode (9, 12, 12 frames) and decode (the cpu's latents fed to
 *           both, so that the decoder is compared on equal input) of 64x96 frames, untiled
 *           and tiled (threshold 32 px, tiles of 6 latents, stride 4: 2x3 tiles);
 *   visual  reference preparation + Swin + image_proj on a 72x128 frame (tokens, context).
 *
 *   test_module_parity --backend cuda|cuda:N|devsim [--precision auto|f32|bf16]
 *                      --model-dir DIR [--only dit|vae|visual] [--threads N]
 *                      [--conv-kernel auto|cudnn|im2col|implicit]   (cuda only: the conv3d
 *                      path the VAE runs on; cudnn falls back to im2col per refused shape)
 *
 * Tolerances: f32 on devsim must be bit-identical (the same CPU kernels); f32 elsewhere
 * within 1e-4; bf16 activations within the bf16 limits below, measured on devsim in bf16,
 * which rounds where the CUDA backend rounds; worst over every output (tiny model /
 * full-size random weights): DiT pred 5.6e-3 / 1.1e-2, VAE latents 8.6e-3 / 1.0e-2, VAE
 * decoded 1.6e-2 / 1.9e-2, Swin tokens and context 1.1e-2 / 1.15e-2 (docs/VERIFY.md). The
 * limits leave about 2.5x: bf16 vs f32 differences of a correct implementation, not the
 * tight "same as PyTorch bf16" checks of the module tests (a wrong index or a missing sync
 * gives errors of order 1). tests/cuda/run_gpu_checks.sh runs this on a GPU; ctest
 * runs it on devsim in bf16 with the tiny model so that it cannot rot on machines
 * without one. Prints per-module milliseconds on both backends. Exit 0 when every
 * comparison passes, 1 otherwise, 77 when the backend cannot be created (no usable GPU). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "infvsr/backend.h"
#include "infvsr/dit.h"
#include "infvsr/model_config.h"
#include "infvsr/vae.h"
#include "infvsr/visual.h"
#include "infvsr/weights.h"
#ifdef INFVSR_USE_CUDA
#include "cuda_backend.h"
#endif

#define TOL_F32        1e-4
#define TOL_BF16_DIT   3e-2
#define TOL_BF16_VAE   5e-2
#define TOL_BF16_SWIN  3e-2

struct ctx {
    struct infvsr_backend *    cpu, * be;
    const char *               be_name;
    bool                       bf16, exact; /* bf16 activations; devsim f32: identical bits */
    struct infvsr_model_config cfg;
    const char *               dir;
    uint64_t                   rng;
    int                        n_checks, n_failed;
    double                     worst_dit, worst_vae, worst_swin;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* splitmix64 -> N(0, 1) by Box-Muller, rounded to bf16 values (the inputs are what a bf16
 * pipeline would see, so that input rounding is not part of the difference). */
static double uniform01(uint64_t * s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static void fill_normal(struct ctx * c, struct infvsr_tensor * t, float scale) {
    float * d = t->data;
    for (int64_t i = 0; i < infvsr_tensor_numel(t); i++) {
        double u = uniform01(&c->rng), v = uniform01(&c->rng);
        float  x = (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v)) * scale;
        d[i] = infvsr_bf16_to_f32(infvsr_f32_to_bf16(x));
    }
}

static bool host_tensor(struct infvsr_tensor * t, const char * name, enum infvsr_dtype dt, int ndim,
                        const int64_t * shape) {
    if (infvsr_tensor_alloc(t, name, dt, ndim, shape) == INFVSR_OK) return true;
    fprintf(stderr, "out of memory for %s\n", name);
    return false;
}

/* Compares a host f32 output of the backend under test with the cpu's. */
static void compare(struct ctx * c, const char * what, const struct infvsr_tensor * got,
                    const struct infvsr_tensor * want, double tol_bf16, double * worst) {
    size_t n = (size_t)infvsr_tensor_numel(want);
    double e = infvsr_tensor_numel(got) == (int64_t)n ? rel_err_f32(got->data, want->data, n) : INFINITY;
    double tol = c->exact ? 0.0 : c->bf16 ? tol_bf16 : TOL_F32;
    bool ok = e <= tol;
    c->n_checks++;
    c->n_failed += !ok;
    if (e > *worst) *worst = e;
    printf("  %s %-44s rel err %.3e (limit %.1e)\n", ok ? "ok  " : "FAIL", what, e, tol);
}

/* A device copy of host tensor h (its own dtype). */
static enum infvsr_status up(struct infvsr_backend * be, const struct infvsr_tensor * h, struct infvsr_tensor * d,
                             struct infvsr_err * err) {
    return infvsr_backend_upload(be, h, INFVSR_TYPE_COUNT, d, err);
}

static enum infvsr_status dev(struct infvsr_backend * be, const char * name, enum infvsr_dtype dt, int ndim,
                              const int64_t * shape, struct infvsr_tensor * t, struct infvsr_err * err) {
    memset(t, 0, sizeof *t);
    infvsr_tensor_setup(t, name, dt, ndim, shape);
    return infvsr_backend_tensor_alloc(be, t, err);
}

static const char * model_file(const char * dir, const char * stem, const char * official_ext) {
    static char buf[4][1024];
    static int k;
    char * p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s.safetensors", dir, stem);
    FILE * f = fopen(p, "rb");
    if (f) {
        fclose(f);
        return p;
    }
    snprintf(p, 1024, "%s/%s.%s", dir, stem, official_ext);
    return p;
}

/* ---- DiT -------------------------------------------------------------------------------- */

struct dit_run {
    struct infvsr_dit *         dit;
    struct infvsr_dit_session * s;
    struct infvsr_dit_context * ctx;
    struct infvsr_tensor        dlat, dpred, dctx;
    double                      ms;
};

static enum infvsr_status dit_open(struct ctx * c, struct infvsr_backend * be, const struct infvsr_weights * w,
                                   const struct infvsr_tensor * context, int64_t max_tokens, struct dit_run * r,
                                   struct infvsr_err * err) {
    memset(r, 0, sizeof *r);
    INFVSR_TRY(infvsr_dit_load(&c->cfg.dit, w, be, &r->dit, err));
    INFVSR_TRY(infvsr_dit_session_open(r->dit, max_tokens, &r->s, err));
    INFVSR_TRY(up(be, context, &r->dctx, err));
    return infvsr_dit_context_init(r->dit, &r->dctx, &r->ctx, err);
}

static void dit_close(struct infvsr_backend * be, struct dit_run * r) {
    infvsr_backend_synchronize(be, NULL);
    infvsr_backend_tensor_free(be, &r->dlat);
    infvsr_backend_tensor_free(be, &r->dpred);
    infvsr_backend_tensor_free(be, &r->dctx);
    infvsr_dit_context_free(r->ctx);
    infvsr_dit_session_close(r->s);
    infvsr_dit_free(r->dit);
}

/* One chunk on one backend: pred (host f32) of latents `lat`, after an optional reset and a
 * new context. */
static enum infvsr_status dit_chunk(struct infvsr_backend * be, struct dit_run * r, const struct infvsr_tensor * lat,
                                    bool reset, const struct infvsr_tensor * new_ctx, struct infvsr_tensor * pred,
                                    struct infvsr_err * err) {
    double t0 = now_ms();
    if (reset) infvsr_dit_session_reset(r->s);
    if (new_ctx) {
        INFVSR_TRY(infvsr_backend_tensor_set(be, &r->dctx, new_ctx->data, 0, infvsr_tensor_nbytes(new_ctx), err));
        INFVSR_TRY(infvsr_dit_context_set(r->ctx, &r->dctx, err));
    }
    infvsr_backend_tensor_free(be, &r->dlat);
    infvsr_backend_tensor_free(be, &r->dpred);
    INFVSR_TRY(up(be, lat, &r->dlat, err));
    INFVSR_TRY(dev(be, "pred", INFVSR_TYPE_F32, lat->ndim, lat->shape, &r->dpred, err));
    INFVSR_TRY(infvsr_dit_step(r->s, r->ctx, &r->dlat, -1, &r->dpred, err));
    INFVSR_TRY(infvsr_backend_download_f32(be, &r->dpred, pred, err));
    r->ms += now_ms() - t0;
    return INFVSR_OK;
}

static void check_dit(struct ctx * c) {
    struct infvsr_err err = { 0 };
    struct infvsr_weights * w = NULL;
    const char * path = model_file(c->dir, "InfVSR", "ckpt");
    if (infvsr_weights_open(path, &w, &err) != INFVSR_OK) {
        printf("  FAIL dit: %s\n", err.msg);
        c->n_failed++;
        return;
    }
    const struct infvsr_dit_config * d = &c->cfg.dit;
    const int64_t h = 8, wd = 12, n_ctx = 1 + (int64_t)(c->cfg.visual.img_size / c->cfg.visual.patch_size / 8) *
                                                   (c->cfg.visual.img_size / c->cfg.visual.patch_size / 8);
    int64_t cs[2] = { n_ctx, d->text_dim };
    struct infvsr_tensor ctx0 = { 0 }, ctx1 = { 0 };
    if (!host_tensor(&ctx0, "context", INFVSR_TYPE_F32, 2, cs) || !host_tensor(&ctx1, "context", INFVSR_TYPE_F32, 2, cs))
        goto out;
    fill_normal(c, &ctx0, 1.0f);
    fill_normal(c, &ctx1, 1.0f);
    struct dit_run rc, rb;
    enum infvsr_status st = dit_open(c, c->cpu, w, &ctx0, 3 * (h / 2) * (wd / 2), &rc, &err);
    if (st == INFVSR_OK) st = dit_open(c, c->be, w, &ctx0, 3 * (h / 2) * (wd / 2), &rb, &err);
    if (st != INFVSR_OK) {
        printf("  FAIL dit setup: %s\n", err.msg);
        c->n_failed++;
    } else {
        /* T per chunk; the 4th starts a new scene with a new reference. */
        const int T[] = { 3, 3, 1, 3, 3 };
        for (int i = 0; i < 5 && st == INFVSR_OK; i++) {
            int64_t ls[4] = { d->in_dim, T[i], h, wd };
            struct infvsr_tensor lat = { 0 }, pc = { 0 }, pb = { 0 };
            if (!host_tensor(&lat, "latents", INFVSR_TYPE_F32, 4, ls)) break;
            fill_normal(c, &lat, 1.0f);
            bool reset = i == 3;
            st = dit_chunk(c->cpu, &rc, &lat, reset, reset ? &ctx1 : NULL, &pc, &err);
            if (st == INFVSR_OK) st = dit_chunk(c->be, &rb, &lat, reset, reset ? &ctx1 : NULL, &pb, &err);
            if (st == INFVSR_OK) {
                char what[96];
                snprintf(what, sizeof what, "dit chunk %d (T=%d, %s) pred", i, T[i],
                         reset ? "reset, new context" : i == 0 ? "first" : "cached");
                compare(c, what, &pb, &pc, TOL_BF16_DIT, &c->worst_dit);
            } else {
                printf("  FAIL dit chunk %d: %s\n", i, err.msg);
                c->n_failed++;
            }
            infvsr_tensor_release(&lat);
            infvsr_tensor_release(&pc);
            infvsr_tensor_release(&pb);
        }
        printf("  dit: %d layers, dim %d: cpu %.1f ms, %s %.1f ms for the sequence\n", d->num_layers, d->dim, rc.ms,
               c->be_name, rb.ms);
    }
    dit_close(c->cpu, &rc);
    dit_close(c->be, &rb);
out:
    infvsr_tensor_release(&ctx0);
    infvsr_tensor_release(&ctx1);
    infvsr_weights_close(w);
}

/* ---- VAE -------------------------------------------------------------------------------- */

struct vae_run {
    struct infvsr_vae *         vae;
    struct infvsr_vae_session * s;
    double                      ms;
};

static enum infvsr_status vae_open(struct ctx * c, struct infvsr_backend * be, const struct infvsr_weights * w,
                                   const struct infvsr_vae_session_params * p, struct vae_run * r,
                                   struct infvsr_err * err) {
    memset(r, 0, sizeof *r);
    INFVSR_TRY(infvsr_vae_load(w, &c->cfg.vae, be, &r->vae, err));
    return infvsr_vae_session_open(r->vae, p, &r->s, err);
}

static void vae_close(struct infvsr_backend * be, struct vae_run * r) {
    infvsr_backend_synchronize(be, NULL);
    infvsr_vae_session_close(r->s);
    infvsr_vae_free(r->vae);
}

/* Encodes host frames on one backend: host f32 latents. */
static enum infvsr_status vae_encode(struct infvsr_backend * be, struct vae_run * r, const struct infvsr_tensor * frames,
                                     bool first, struct infvsr_tensor * lat, struct infvsr_err * err) {
    double t0 = now_ms();
    struct infvsr_tensor df = { 0 }, dlat = { 0 };
    int64_t T = infvsr_vae_encode_n_latents(frames->shape[1], first);
    int64_t ls[4] = { INFVSR_VAE_Z_DIM, T, frames->shape[2] / 8, frames->shape[3] / 8 };
    enum infvsr_status st = up(be, frames, &df, err);
    if (st == INFVSR_OK) st = dev(be, "latents", INFVSR_TYPE_F32, 4, ls, &dlat, err);
    if (st == INFVSR_OK) st = infvsr_vae_encode_chunk(r->s, &df, first, &dlat, err);
    if (st == INFVSR_OK) st = infvsr_backend_download_f32(be, &dlat, lat, err);
    infvsr_backend_synchronize(be, NULL);
    infvsr_backend_tensor_free(be, &df);
    infvsr_backend_tensor_free(be, &dlat);
    r->ms += now_ms() - t0;
    return st;
}

/* Decodes host latents on one backend: host f32 frames of height x width. */
static enum infvsr_status vae_decode(struct infvsr_backend * be, struct vae_run * r, const struct infvsr_tensor * lat,
                                     int64_t height, int64_t width, struct infvsr_tensor * dec,
                                     struct infvsr_err * err) {
    double t0 = now_ms();
    struct infvsr_tensor din = { 0 }, dout = { 0 };
    int64_t fs[4] = { 3, infvsr_vae_decode_n_frames(r->s, lat->shape[1]), height, width };
    enum infvsr_status st = up(be, lat, &din, err);
    if (st == INFVSR_OK) st = dev(be, "decoded", INFVSR_TYPE_F32, 4, fs, &dout, err);
    if (st == INFVSR_OK) st = infvsr_vae_decode_chunk(r->s, &din, &dout, err);
    if (st == INFVSR_OK) st = infvsr_backend_download_f32(be, &dout, dec, err);
    infvsr_backend_synchronize(be, NULL);
    infvsr_backend_tensor_free(be, &din);
    infvsr_backend_tensor_free(be, &dout);
    r->ms += now_ms() - t0;
    return st;
}

static void check_vae_stream(struct ctx * c, const struct infvsr_weights * w, bool tiled) {
    struct infvsr_err err = { 0 };
    struct infvsr_vae_session_params p = infvsr_vae_session_default_params();
    p.height = 64, p.width = 96;
    if (tiled) p.tile_threshold_px = 32, p.tile_latent = 6, p.stride_latent = 4;
    struct vae_run rc, rb;
    enum infvsr_status st = vae_open(c, c->cpu, w, &p, &rc, &err);
    if (st == INFVSR_OK) st = vae_open(c, c->be, w, &p, &rb, &err);
    if (st != INFVSR_OK) {
        printf("  FAIL vae setup: %s\n", err.msg);
        c->n_failed++;
    } else {
        const int L[] = { 9, 12, 12 };
        for (int i = 0; i < 3 && st == INFVSR_OK; i++) {
            int64_t fs[4] = { 3, L[i], p.height, p.width };
            struct infvsr_tensor fr = { 0 }, lc = { 0 }, lb = { 0 }, dc = { 0 }, db = { 0 };
            if (!host_tensor(&fr, "frames", INFVSR_TYPE_F32, 4, fs)) break;
            fill_normal(c, &fr, 0.5f);
            st = vae_encode(c->cpu, &rc, &fr, i == 0, &lc, &err);
            if (st == INFVSR_OK) st = vae_encode(c->be, &rb, &fr, i == 0, &lb, &err);
            char what[96];
            if (st == INFVSR_OK) {
                snprintf(what, sizeof what, "vae %s chunk %d (%d frames) latents", tiled ? "tiled" : "untiled", i,
                         L[i]);
                compare(c, what, &lb, &lc, TOL_BF16_VAE, &c->worst_vae);
                /* The cpu's latents into both decoders: the decoder compared on equal input. */
                st = vae_decode(c->cpu, &rc, &lc, p.height, p.width, &dc, &err);
                if (st == INFVSR_OK) st = vae_decode(c->be, &rb, &lc, p.height, p.width, &db, &err);
            }
            if (st == INFVSR_OK) {
                snprintf(what, sizeof what, "vae %s chunk %d (%lld latents) decoded", tiled ? "tiled" : "untiled", i,
                         (long long)lc.shape[1]);
                compare(c, what, &db, &dc, TOL_BF16_VAE, &c->worst_vae);
            }
            if (st != INFVSR_OK) {
                printf("  FAIL vae chunk %d: %s\n", i, err.msg);
                c->n_failed++;
            }
            infvsr_tensor_release(&fr);
            infvsr_tensor_release(&lc);
            infvsr_tensor_release(&lb);
            infvsr_tensor_release(&dc);
            infvsr_tensor_release(&db);
        }
        printf("  vae %s (%d tile(s)): cpu %.1f ms, %s %.1f ms\n", tiled ? "tiled" : "untiled",
               infvsr_vae_session_n_tiles(rc.s), rc.ms, c->be_name, rb.ms);
    }
    vae_close(c->cpu, &rc);
    vae_close(c->be, &rb);
}

static void check_vae(struct ctx * c) {
    struct infvsr_err err = { 0 };
    struct infvsr_weights * w = NULL;
    if (infvsr_weights_open(model_file(c->dir, "Wan2.1_VAE", "pth"), &w, &err) != INFVSR_OK) {
        printf("  FAIL vae: %s\n", err.msg);
        c->n_failed++;
        return;
    }
    check_vae_stream(c, w, false);
    check_vae_stream(c, w, true);
    infvsr_weights_close(w);
}

/* ---- visual ----------------------------------------------------------------------------- */

static enum infvsr_status visual_run(struct ctx * c, struct infvsr_backend * be, const struct infvsr_weights * ram,
                                     const struct infvsr_weights * dape, const struct infvsr_tensor * frame,
                                     struct infvsr_tensor * tokens, struct infvsr_tensor * context, double * ms,
                                     struct infvsr_err * err) {
    struct infvsr_visual * v = NULL;
    struct infvsr_tensor df = { 0 }, img = { 0 }, tok = { 0 }, ctx = { 0 };
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    enum infvsr_status st = infvsr_visual_load(ram, dape, &c->cfg.visual, be, &v, err);
    if (st == INFVSR_OK) {
        double t0 = now_ms();
        int64_t is[3] = { 3, infvsr_visual_img_size(v), infvsr_visual_img_size(v) };
        int64_t ts[2] = { infvsr_visual_n_tokens(v), infvsr_visual_token_dim(v) };
        int64_t cs[2] = { infvsr_visual_n_tokens(v), infvsr_visual_out_dim(v) };
        st = up(be, frame, &df, err);
        if (st == INFVSR_OK) st = dev(be, "image", caps.act_dtype, 3, is, &img, err);
        if (st == INFVSR_OK) st = dev(be, "tokens", INFVSR_TYPE_F32, 2, ts, &tok, err);
        if (st == INFVSR_OK) st = dev(be, "context", INFVSR_TYPE_F32, 2, cs, &ctx, err);
        if (st == INFVSR_OK) st = infvsr_visual_prepare_reference(v, &df, &img, err);
        if (st == INFVSR_OK) st = infvsr_visual_encode(v, &img, &tok, &ctx, err);
        if (st == INFVSR_OK) st = infvsr_backend_download_f32(be, &tok, tokens, err);
        if (st == INFVSR_OK) st = infvsr_backend_download_f32(be, &ctx, context, err);
        *ms = now_ms() - t0;
    }
    infvsr_backend_synchronize(be, NULL);
    infvsr_backend_tensor_free(be, &df);
    infvsr_backend_tensor_free(be, &img);
    infvsr_backend_tensor_free(be, &tok);
    infvsr_backend_tensor_free(be, &ctx);
    infvsr_visual_free(v);
    return st;
}

static void check_visual(struct ctx * c) {
    struct infvsr_err err = { 0 };
    struct infvsr_weights * ram = NULL, * dape = NULL;
    if (infvsr_weights_open(model_file(c->dir, "ram_swin_large_14m", "pth"), &ram, &err) != INFVSR_OK ||
        infvsr_weights_open(model_file(c->dir, "DAPE", "pth"), &dape, &err) != INFVSR_OK) {
        printf("  FAIL visual: %s\n", err.msg);
        c->n_failed++;
        infvsr_weights_close(ram);
        return;
    }
    /* A smooth colour pattern with a bright box (not noise: closer to a video frame). */
    int64_t fs[3] = { 72, 128, 3 };
    struct infvsr_tensor frame = { 0 }, tc = { 0 }, cc = { 0 }, tb = { 0 }, cb = { 0 };
    if (infvsr_tensor_alloc(&frame, "frame", INFVSR_TYPE_U8, 3, fs) == INFVSR_OK) {
        uint8_t * px = frame.data;
        for (int y = 0; y < 72; y++)
            for (int x = 0; x < 128; x++)
                for (int k = 0; k < 3; k++) {
                    double v = 128 + 90 * sin(0.07 * x + 0.11 * y + 2.0 * k) + 20 * (uniform01(&c->rng) - 0.5);
                    if (x > 40 && x < 70 && y > 20 && y < 40) v = 240;
                    px[(y * 128 + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        double ms_c = 0, ms_b = 0;
        enum infvsr_status st = visual_run(c, c->cpu, ram, dape, &frame, &tc, &cc, &ms_c, &err);
        if (st == INFVSR_OK) st = visual_run(c, c->be, ram, dape, &frame, &tb, &cb, &ms_b, &err);
        if (st == INFVSR_OK) {
            compare(c, "visual tokens", &tb, &tc, TOL_BF16_SWIN, &c->worst_swin);
            compare(c, "visual context", &cb, &cc, TOL_BF16_SWIN, &c->worst_swin);
            printf("  visual (embed %d): cpu %.1f ms, %s %.1f ms\n", c->cfg.visual.embed_dim, ms_c, c->be_name, ms_b);
        } else {
            printf("  FAIL visual: %s\n", err.msg);
            c->n_failed++;
        }
    }
    infvsr_tensor_release(&frame);
    infvsr_tensor_release(&tc);
    infvsr_tensor_release(&cc);
    infvsr_tensor_release(&tb);
    infvsr_tensor_release(&cb);
    infvsr_weights_close(ram);
    infvsr_weights_close(dape);
}

static int usage(void) {
    fprintf(stderr, "usage: test_module_parity --backend B [--precision auto|f32|bf16] --model-dir DIR "
                    "[--only dit|vae|visual] [--threads N] [--conv-kernel auto|cudnn|im2col|implicit]\n");
    return 2;
}

int main(int argc, char ** argv) {
    const char * backend = NULL, * precision = "auto", * only = NULL, * conv_kernel = NULL;
    struct ctx c = { .rng = 20261207 };
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char * v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && strcmp(argv[i], "--backend") == 0) backend = v, i++;
        else if (v && strcmp(argv[i], "--precision") == 0) precision = v, i++;
        else if (v && strcmp(argv[i], "--model-dir") == 0) c.dir = v, i++;
        else if (v && strcmp(argv[i], "--only") == 0) only = v, i++;
        else if (v && strcmp(argv[i], "--threads") == 0) threads = atoi(v), i++;
        else if (v && strcmp(argv[i], "--conv-kernel") == 0) conv_kernel = v, i++;
        else return usage();
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress visible in logs and through pipes */
    int prec = infvsr_precision_from_name(precision);
    if (!backend || !c.dir || prec < 0) return usage();

    struct infvsr_err err = { 0 };
    char cfg_path[1024];
    snprintf(cfg_path, sizeof cfg_path, "%s/model.json", c.dir);
    FILE * f = fopen(cfg_path, "rb");
    if (f) {
        fclose(f);
        if (infvsr_model_config_load(cfg_path, &c.cfg, &err) != INFVSR_OK) {
            fprintf(stderr, "%s: %s\n", cfg_path, err.msg);
            return 1;
        }
    } else {
        c.cfg = infvsr_model_config_full();
    }
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    o.n_threads = threads;
    if (infvsr_backend_init_by_name("cpu", &o, &c.cpu, &err) != INFVSR_OK) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    o.precision = (enum infvsr_precision)prec;
    enum infvsr_status st = infvsr_backend_init_by_name(backend, &o, &c.be, &err);
    if (st != INFVSR_OK) {
        printf("SKIP: backend %s: %s\n", backend, err.msg);
        infvsr_backend_free(c.cpu);
        return st == INFVSR_ERR_UNSUPPORTED ? 77 : 1;
    }
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(c.be, &caps);
    c.be_name = caps.name;
    c.bf16 = caps.act_dtype == INFVSR_TYPE_BF16;
    c.exact = !c.bf16 && strncmp(caps.name, "devsim", 6) == 0;
    const bool is_cuda = strncmp(caps.name, "cuda", 4) == 0;
    if (conv_kernel) {
        static const char * names[] = { "auto", "im2col", "implicit", "cudnn" }; /* enum infvsr_cuda_conv_kernel */
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(conv_kernel, names[i]) == 0) k = i;
        if (k < 0 || !is_cuda) {
            fprintf(stderr, "--conv-kernel %s: %s\n", conv_kernel,
                    k < 0 ? "expected auto, cudnn, im2col or implicit" : "applies to the cuda backend only");
            infvsr_backend_free(c.be);
            infvsr_backend_free(c.cpu);
            return 2;
        }
#ifdef INFVSR_USE_CUDA
        infvsr_cuda_backend_set_conv_kernel(c.be, (enum infvsr_cuda_conv_kernel)k);
#endif
    }
    printf("module parity: %s (%s, %s activations) vs cpu (f32), model %s (%s), conv kernel %s\n", caps.name,
           caps.device, infvsr_dtype_name(caps.act_dtype), c.dir, c.cfg.name, conv_kernel ? conv_kernel : "auto");
    if (!only || strcmp(only, "dit") == 0) check_dit(&c);
    if (!only || strcmp(only, "vae") == 0) check_vae(&c);
    if (!only || strcmp(only, "visual") == 0) check_visual(&c);
#ifdef INFVSR_USE_CUDA
    if (is_cuda) { /* which conv path the VAE really took: cuDNN plans and refused shapes */
        struct infvsr_cuda_conv_plan_stats ps;
        infvsr_cuda_backend_conv_plan_stats(c.be, &ps);
        printf("conv3d on %s: cuDNN %s; %d plans, %d shapes refused (im2col), cache %llu hits, %llu misses; "
               "last call ran %s\n", caps.name, infvsr_cuda_backend_has_cudnn(c.be) ? "available" : "not available",
               ps.plans, ps.refused, (unsigned long long)ps.hits, (unsigned long long)ps.misses,
               infvsr_cuda_backend_last_conv_kernel(c.be));
    }
#endif
    printf("module parity on %s: worst rel err dit %.2e, vae %.2e, visual %.2e; %d of %d comparisons passed\n",
           caps.name, c.worst_dit, c.worst_vae, c.worst_swin, c.n_checks - c.n_failed, c.n_checks);
    infvsr_backend_free(c.be);
    infvsr_backend_free(c.cpu);
    return c.n_failed || c.n_checks == 0 ? 1 : 0;
}
