/* End-to-end parity of the engine session against tests/reference/pipeline_ref.py: the same
 * tiny-model files (official torch.save formats), the same generated clip (a slow drift that
 * refreshes the reference, then a hard cut), the same chunk schedule and cut positions.
 * Every test runs on the backend named on the command line (tests/common/test_backend.h):
 *  - f32 (cpu, devsim): the decoded frames before quantisation within rel err 1e-4 of the
 *    f32 reference; the u8 frames equal except +-1 where the reference value sits next to a
 *    truncation boundary. On devsim the u8 frames and the decoded frames are also compared
 *    with a cpu run in the same process: identical bit for bit.
 *  - bf16 (devsim --precision bf16): against the reference run in the official bf16 numerics
 *    (pipeline_ref.py --bf16), within E2E_BF16_* below.
 * Also: the only host<->backend traffic of a chunk is its u8 LR frames in and its u8 SR
 * frames out, and memory (backend bytes, heap) is the same after N and after 2N passes of
 * the clip. */
#include <malloc.h>

#include "check.h"

#include "infvsr/session.h"
#include "infvsr/weights.h"
#include "ops.h"
#include "test_backend.h"

#ifndef E2E_CASE_DIR
#error "E2E_CASE_DIR must point at the pipeline_ref.py output"
#endif

#define MAX_CHUNKS 64

/* bf16 activations vs the bf16 reference pipeline (60 frames, 6 chunks, 2 scenes, tiny
 * model). End to end, bf16 rounding is large and not reproducible across implementations:
 * PyTorch's bf16 run is itself 3.7e-2 (rel L2 of the decoded frames) from its f32 run, and
 * two bf16 runs that round in different places are as far from each other as from f32.
 * Measured: decoded frames 3.6e-2 from the bf16 reference and 3.0e-2 from the f32 one (0.82 x
 * PyTorch bf16's distance); u8 frames max |diff| 6, mean 0.48 vs the bf16 reference (PyTorch
 * bf16 vs f32: max 7, mean 0.49). Limits with margin: */
#define E2E_BF16_DECODED_TOL  5e-2
#define E2E_BF16_SPREAD       1.25
#define E2E_BF16_U8_MAX_DIFF  12
#define E2E_BF16_U8_MEAN_DIFF 0.75

/* The outputs of one run of the clip through a session. */
struct clip_run {
    struct infvsr_session * s;
    int64_t  n_frames, sh, sw;
    bool     capture;        /* decoded frames wanted (costs a download per chunk off the cpu) */
    float *  f32;            /* [N, 3, sh, sw] decoded frames before quantisation (capture)    */
    uint8_t * u8;            /* [N, sh, sw, 3] the SR frames pulled                             */
    int64_t * pts;
    int64_t  rows[MAX_CHUNKS][6]; /* first, n, new_scene, update, n_padded, start_frame       */
    int64_t  n_latents[MAX_CHUNKS];
    struct infvsr_backend * be;
    struct infvsr_backend_traffic traffic0;           /* the backend's, after the session opened */
    uint64_t to_dev[MAX_CHUNKS], from_dev[MAX_CHUNKS]; /* since then, at each chunk's hook      */
    int      n_rows;
    int64_t  n_out, n_busy;
    struct infvsr_session_stats stats;
};

static void on_chunk(void * user, const struct infvsr_session_chunk_info * info, const struct infvsr_tensor * dec) {
    struct clip_run * c = user;
    if (c->n_rows < MAX_CHUNKS) {
        int64_t * r = c->rows[c->n_rows];
        r[0] = info->first, r[1] = info->n, r[2] = info->new_scene, r[3] = info->update;
        r[4] = info->n_padded, r[5] = info->start_frame;
        c->n_latents[c->n_rows] = info->n_latents;
        struct infvsr_backend_traffic t;
        infvsr_backend_get_traffic(c->be, &t);
        c->to_dev[c->n_rows] = t.bytes_to_device - c->traffic0.bytes_to_device;
        c->from_dev[c->n_rows] = t.bytes_from_device - c->traffic0.bytes_from_device;
        c->n_rows++;
    }
    if (!c->capture) return;
    CHECK(dec != NULL && dec->mem == INFVSR_MEM_HOST);
    if (!dec) return;
    const int64_t Lp = dec->shape[1], ph = dec->shape[2], pw = dec->shape[3];
    const float * d = dec->data;
    for (int t = 0; t < info->n && info->first + t < c->n_frames; t++)
        for (int ch = 0; ch < 3; ch++)
            for (int64_t y = 0; y < c->sh; y++)
                memcpy(c->f32 + (((info->first + t) * 3 + ch) * c->sh + y) * c->sw,
                       d + ((ch * Lp + t) * ph + y) * pw, (size_t)c->sw * sizeof(float));
}

static void clip_run_free(struct clip_run * c) {
    free(c->f32), free(c->u8), free(c->pts);
    memset(c, 0, sizeof *c);
}

static const struct infvsr_tensor * need(const struct infvsr_weights * w, const char * key) {
    const struct infvsr_tensor * t = infvsr_weights_find(w, key);
    if (!t) fprintf(stderr, "  case.safetensors lacks '%s'\n", key);
    return t;
}

/* Pushes the N frames of `lr` through an open session (pulling as it goes, or only when
 * push answers BUSY), finishes and drains it. */
static void feed_clip(struct clip_run * c, const struct infvsr_tensor * lr, bool pull_late) {
    struct infvsr_err err = { 0 };
    const int64_t N = lr->shape[0], h = lr->shape[1], w = lr->shape[2];
    const size_t fbytes = (size_t)(h * w * 3), obytes = (size_t)(c->sh * c->sw * 3);
    enum infvsr_status rc;
    for (int64_t i = 0; i < N && !test_failed_flag; i++) {
        /* pts: an arbitrary increasing sequence, to see it carried through. */
        while ((rc = infvsr_session_push_frame(c->s, (const uint8_t *)lr->data + i * fbytes, 1000 + 3 * i, &err)) ==
               INFVSR_ERR_BUSY) {
            c->n_busy++;
            while (c->n_out < N && infvsr_session_pull_frame(c->s, c->u8 + c->n_out * obytes, &c->pts[c->n_out],
                                                             &err) == 1)
                c->n_out++;
        }
        CHECK_MSG(rc == INFVSR_OK, "push %lld: %s", (long long)i, err.msg);
        if (!pull_late) {
            while (c->n_out < N && infvsr_session_pull_frame(c->s, c->u8 + c->n_out * obytes, &c->pts[c->n_out],
                                                             &err) == 1)
                c->n_out++;
        }
    }
    CHECK_EQ_INT(infvsr_session_finish(c->s, &err), INFVSR_OK);
    int r;
    while (c->n_out < N && (r = infvsr_session_pull_frame(c->s, c->u8 + c->n_out * obytes, &c->pts[c->n_out], &err)) == 1)
        c->n_out++;
}

/* Runs the whole clip through a new session of model `m` (on backend `be`). */
static void run_clip(struct infvsr_model * m, struct infvsr_backend * be, const struct infvsr_tensor * lr,
                     bool scene_detection, bool pull_late, bool capture, struct clip_run * c) {
    struct infvsr_err err = { 0 };
    memset(c, 0, sizeof *c);
    c->be = be;
    const int64_t N = lr->shape[0], h = lr->shape[1], w = lr->shape[2];
    struct infvsr_session_opts o = infvsr_session_opts_default((int)w, (int)h);
    o.scene_detection = scene_detection;
    enum infvsr_status rc = infvsr_session_open(m, &o, &c->s, &err);
    CHECK_MSG(rc == INFVSR_OK, "open: %s", err.msg);
    if (!c->s) return;
    c->n_frames = N, c->sh = infvsr_session_out_height(c->s), c->sw = infvsr_session_out_width(c->s);
    infvsr_backend_get_traffic(be, &c->traffic0);
    c->capture = capture;
    if (capture) {
        c->f32 = calloc((size_t)(N * 3 * c->sh * c->sw), sizeof(float));
        CHECK_EQ_INT(infvsr_session_capture_decoded(c->s, &err), INFVSR_OK);
    }
    c->u8 = calloc((size_t)(N * c->sh * c->sw * 3), 1);
    c->pts = calloc((size_t)N, sizeof *c->pts);
    infvsr_session_set_chunk_hook(c->s, on_chunk, c);
    feed_clip(c, lr, pull_late);
    CHECK_EQ_INT(c->n_out, N);
    CHECK_EQ_INT(infvsr_session_pull_frame(c->s, c->u8, NULL, &err), 0); /* nothing beyond N */
    CHECK(infvsr_session_done(c->s));
    if (pull_late) CHECK_MSG(c->n_busy > 0, "pushing without pulling must hit INFVSR_ERR_BUSY");
    for (int64_t i = 0; i < c->n_out; i++) CHECK_EQ_INT(c->pts[i], 1000 + 3 * i);
    infvsr_session_get_stats(c->s, &c->stats);
    CHECK_EQ_INT(c->stats.frames_in, N);
    CHECK_EQ_INT(c->stats.frames_out, N);
    CHECK_EQ_INT(c->stats.chunks, c->n_rows);
    infvsr_session_close(c->s);
    c->s = NULL;
}

static struct infvsr_model * open_model(struct infvsr_backend * be) {
    struct infvsr_err err = { 0 };
    struct infvsr_model * m = NULL;
    enum infvsr_status rc = infvsr_model_open_dir(E2E_CASE_DIR "/model", be, &m, &err);
    CHECK_MSG(rc == INFVSR_OK, "model: %s", err.msg);
    return m;
}

static struct infvsr_weights * open_case(void) {
    struct infvsr_err err = { 0 };
    struct infvsr_weights * cw = NULL;
    enum infvsr_status rc = infvsr_weights_open(E2E_CASE_DIR "/case.safetensors", &cw, &err);
    CHECK_MSG(rc == INFVSR_OK, "case: %s", err.msg);
    return cw;
}

/* The f32 checks: decoded frames within 1e-4; u8 exact, except +-1 where the reference's
 * (x+1)*127.5 is within 0.01 of an integer (a truncation boundary that a ~1e-5 difference
 * can cross). */
static void check_f32(const struct clip_run * c, const struct infvsr_tensor * sr, const struct infvsr_tensor * sr8) {
    const int64_t N = c->n_frames, sh = c->sh, sw = c->sw;
    const size_t n = (size_t)(N * 3 * sh * sw);
    double e = rel_err_f32(c->f32, sr->data, n);
    printf("  decoded frames: rel err %.3e (limit 1e-4)\n", e);
    CHECK_MSG(e <= 1e-4, "decoded frames rel err %.3e > 1e-4", e);
    const uint8_t * ref8 = sr8->data;
    const float *   ref  = sr->data;
    int64_t n_off = 0, n_bad = 0;
    for (int64_t f = 0; f < N; f++)
        for (int64_t y = 0; y < sh; y++)
            for (int64_t x = 0; x < sw; x++)
                for (int ch = 0; ch < 3; ch++) {
                    size_t io = (size_t)(((f * sh + y) * sw + x) * 3 + ch);
                    if (c->u8[io] == ref8[io]) continue;
                    n_off++;
                    double v = ((double)ref[((f * 3 + ch) * sh + y) * sw + x] + 1.0) * 127.5;
                    if (abs((int)c->u8[io] - (int)ref8[io]) > 1 || fabs(v - nearbyint(v)) > 0.01) n_bad++;
                }
    printf("  u8: %lld of %zu values differ by one at a boundary, %lld differ otherwise\n", (long long)n_off, n,
           (long long)n_bad);
    CHECK_EQ_INT(n_bad, 0);
}

/* u8 frames a vs b: max and mean |difference|. */
static void u8_diff(const uint8_t * a, const uint8_t * b, size_t n, int * max_diff, double * mean_diff) {
    *max_diff = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > *max_diff) *max_diff = d;
        sum += (uint64_t)d;
    }
    *mean_diff = n ? (double)sum / (double)n : 0;
}

/* The bf16 checks against the bf16 reference (E2E_BF16_*), and against the spread of bf16
 * itself: the distance of PyTorch's bf16 run from its f32 run. */
static void check_bf16(const struct clip_run * c, const struct infvsr_tensor * sr, const struct infvsr_tensor * sr8,
                       const struct infvsr_tensor * sr_f32ref, const struct infvsr_tensor * sr8_f32ref) {
    const size_t n = (size_t)(c->n_frames * 3 * c->sh * c->sw);
    double e = rel_err_f32(c->f32, sr->data, n), e32 = rel_err_f32(c->f32, sr_f32ref->data, n);
    double eref = rel_err_f32(sr->data, sr_f32ref->data, n);
    int max_diff, max_ref;
    double mean_diff, mean_ref;
    u8_diff(c->u8, sr8->data, n, &max_diff, &mean_diff);
    u8_diff(sr8->data, sr8_f32ref->data, n, &max_ref, &mean_ref);
    printf("  bf16: decoded frames rel err %.3e from the bf16 reference (limit %.0e); from the f32 reference "
           "%.3e = %.2f x PyTorch bf16's %.3e (limit %.2f x)\n", e, E2E_BF16_DECODED_TOL, e32, e32 / eref, eref,
           E2E_BF16_SPREAD);
    printf("  bf16: u8 frames vs the bf16 reference max |diff| %d (limit %d), mean %.3f (limit %.2f); PyTorch "
           "bf16 vs f32: max %d, mean %.3f\n", max_diff, E2E_BF16_U8_MAX_DIFF, mean_diff, E2E_BF16_U8_MEAN_DIFF,
           max_ref, mean_ref);
    CHECK(e <= E2E_BF16_DECODED_TOL);
    CHECK(e32 <= E2E_BF16_SPREAD * eref);
    CHECK(max_diff <= E2E_BF16_U8_MAX_DIFF);
    CHECK(mean_diff <= E2E_BF16_U8_MEAN_DIFF);
}

/* Runs the whole clip on the backend under test and compares with the reference run `suffix`
 * (and, on devsim in f32, with a cpu run: identical bits). */
static void run_case(bool scene_detection, const char * suffix, bool pull_late) {
    struct infvsr_backend * be = tb_backend();
    const bool bf16 = tb_act_dtype(be) == INFVSR_TYPE_BF16;
    if (bf16 && !scene_detection) {
        printf("  (the bf16 reference covers the run with scene detection only)\n");
        return;
    }
    struct infvsr_model * m = open_model(be);
    struct infvsr_weights * cw = open_case();
    if (!m || !cw) {
        infvsr_weights_close(cw);
        infvsr_model_close(m);
        return;
    }
    char key[64];
    const struct infvsr_tensor * lr = need(cw, "lr");
    snprintf(key, sizeof key, "sr_f32%s%s", suffix, bf16 ? "_bf16" : "");
    const struct infvsr_tensor * sr = need(cw, key);
    snprintf(key, sizeof key, "sr_u8%s%s", suffix, bf16 ? "_bf16" : "");
    const struct infvsr_tensor * sr8 = need(cw, key);
    snprintf(key, sizeof key, "chunks%s", suffix);
    const struct infvsr_tensor * chunks = need(cw, key);
    snprintf(key, sizeof key, "sr_f32%s", suffix);
    const struct infvsr_tensor * sr_f32ref = need(cw, key);
    snprintf(key, sizeof key, "sr_u8%s", suffix);
    const struct infvsr_tensor * sr8_f32ref = need(cw, key);
    if (!lr || !sr || !sr8 || !chunks || !sr_f32ref || !sr8_f32ref) {
        test_failed_flag = 1;
        infvsr_weights_close(cw);
        infvsr_model_close(m);
        return;
    }

    struct clip_run c;
    run_clip(m, be, lr, scene_detection, pull_late, true, &c);
    CHECK_EQ_INT(c.sh, sr->shape[2]);
    CHECK_EQ_INT(c.sw, sr->shape[3]);
    printf("  %s on %s (%s): %lld frames, %d chunks (BUSY answers: %lld)\n",
           scene_detection ? "scene detection" : "no scene detection", tb_name, bf16 ? "bf16" : "f32",
           (long long)c.n_frames, c.n_rows, (long long)c.n_busy);

    /* Same chunks (and so the same cut positions) as the reference scheduler. */
    CHECK_EQ_INT(c.n_rows, chunks->shape[0]);
    const int64_t * ref_rows = chunks->data;
    for (int i = 0; i < c.n_rows && i < chunks->shape[0]; i++)
        for (int k = 0; k < 6; k++)
            CHECK_MSG(c.rows[i][k] == ref_rows[i * 6 + k], "chunk %d field %d: %lld vs reference %lld", i, k,
                      (long long)c.rows[i][k], (long long)ref_rows[i * 6 + k]);

    if (c.f32 && c.n_out == c.n_frames && c.sh == sr->shape[2] && c.sw == sr->shape[3]) {
        if (bf16) check_bf16(&c, sr, sr8, sr_f32ref, sr8_f32ref);
        else check_f32(&c, sr, sr8);
    }

    /* devsim in f32 runs the cpu kernels behind device memory: the same bits, or some data
     * moved wrongly on the way. */
    if (tb_expect_cpu_identical() && !test_failed_flag) {
        struct infvsr_model * mc = open_model(tb_cpu());
        struct clip_run cc;
        if (mc) {
            run_clip(mc, tb_cpu(), lr, scene_detection, pull_late, true, &cc);
            size_t n8 = (size_t)(c.n_frames * c.sh * c.sw * 3);
            bool same_u8 = cc.n_out == c.n_out && memcmp(cc.u8, c.u8, n8) == 0;
            bool same_f32 = memcmp(cc.f32, c.f32, n8 * sizeof(float)) == 0;
            printf("  %s vs cpu: u8 frames %s, decoded frames %s\n", tb_name, same_u8 ? "identical" : "DIFFER",
                   same_f32 ? "identical" : "DIFFER");
            CHECK(same_u8);
            CHECK(same_f32);
            clip_run_free(&cc);
        }
        infvsr_model_close(mc);
    }
    clip_run_free(&c);
    infvsr_weights_close(cw);
    infvsr_model_close(m);
}

static void test_parity_scene_detection(void) { run_case(true, "", false); }
static void test_parity_no_scene_detection(void) { run_case(false, "_noscene", true); }

/* Per chunk, the host<->backend traffic is the chunk's u8 LR frames in and its u8 SR frames
 * out, plus exactly one more thing: the DiT's RoPE angle rows, float64 cos/sin computed on
 * the host (dit_rope.c: T time rows per chunk, and gh + gw rows for the first chunk of a
 * latent grid; 2 * max(pairs) doubles per row). The visual reference is cut from the
 * uploaded frames on the backend. Seen from the chunk hook, which runs after the chunk's
 * uploads and before its download; the session's own count must agree. */
static void test_traffic_per_chunk(void) {
    struct infvsr_backend * be = tb_backend();
    struct infvsr_model * m = open_model(be);
    struct infvsr_weights * cw = open_case();
    const struct infvsr_tensor * lr = cw ? need(cw, "lr") : NULL;
    if (m && lr) {
        struct clip_run c;
        run_clip(m, be, lr, true, false, false, &c);
        const struct infvsr_dit_config * dc = &infvsr_model_config_of(m)->dit;
        const int head_dim = dc->dim / dc->num_heads, pairs_hw = head_dim / 6, pairs_t = head_dim / 2 - 2 * pairs_hw;
        const uint64_t rope_row = 2 * (uint64_t)(pairs_t > pairs_hw ? pairs_t : pairs_hw) * sizeof(double);
        const uint64_t gh = (uint64_t)(c.sh + (16 - c.sh % 16) % 16) / 16, gw = (uint64_t)(c.sw + (16 - c.sw % 16) % 16) / 16;
        const uint64_t lr_bytes = (uint64_t)(lr->shape[1] * lr->shape[2] * 3), sr_bytes = (uint64_t)(c.sh * c.sw * 3);
        uint64_t in = (gh + gw) * rope_row, out = 0, rope = in;
        int n_exact = 0;
        for (int i = 0; i < c.n_rows; i++) {
            in += (uint64_t)c.rows[i][1] * lr_bytes + (uint64_t)c.n_latents[i] * rope_row; /* this chunk's, up */
            rope += (uint64_t)c.n_latents[i] * rope_row;
            bool ok = c.to_dev[i] == in && c.from_dev[i] == out;
            CHECK_MSG(ok, "chunk %d: %llu bytes to the backend (want %llu), %llu from it (want %llu)", i,
                      (unsigned long long)c.to_dev[i], (unsigned long long)in, (unsigned long long)c.from_dev[i],
                      (unsigned long long)out);
            n_exact += ok;
            out += (uint64_t)c.rows[i][1] * sr_bytes; /* and its SR frames come back after the hook */
        }
        printf("  %s: %d of %d chunks moved exactly their LR frames (%llu B each) + RoPE rows in and their SR frames "
               "(%llu B each) out; in all %llu B in (%llu B of it RoPE rows), %llu B out\n", tb_name, n_exact,
               c.n_rows, (unsigned long long)lr_bytes, (unsigned long long)sr_bytes,
               (unsigned long long)c.stats.bytes_to_device, (unsigned long long)rope,
               (unsigned long long)c.stats.bytes_from_device);
        CHECK_EQ_INT(c.stats.bytes_to_device, in);
        CHECK_EQ_INT(c.stats.bytes_from_device, out);
        clip_run_free(&c);
    }
    infvsr_weights_close(cw);
    infvsr_model_close(m);
}

/* One session, the clip pushed once and then once more (every pass: a scene cut at its
 * start and in its middle, reference refreshes, 9- and 12-frame chunks): the backend's bytes
 * in use, the session's own accounting and the heap are the same after N chunks as after
 * 2N + 1 (DESIGN: memory after N chunks == after 2N).
 * Sanitizer builds replace malloc, so the heap count means nothing there. */
static void test_memory_flat(void) {
    struct infvsr_backend * be = tb_backend();
    struct infvsr_model * m = open_model(be);
    struct infvsr_weights * cw = open_case();
    const struct infvsr_tensor * lr = cw ? need(cw, "lr") : NULL;
    struct infvsr_err err = { 0 };
    struct clip_run c = { 0 };
    struct infvsr_session_opts o = lr ? infvsr_session_opts_default((int)lr->shape[2], (int)lr->shape[1])
                                      : infvsr_session_opts_default(8, 8);
    if (m && lr && infvsr_session_open(m, &o, &c.s, &err) == INFVSR_OK) {
        const int64_t N = lr->shape[0], fbytes = lr->shape[1] * lr->shape[2] * 3;
        const int64_t sh = infvsr_session_out_height(c.s), sw = infvsr_session_out_width(c.s);
        uint8_t * sr = malloc((size_t)(sh * sw * 3));
        size_t dev[2] = { 0 }, heap[2] = { 0 }, sess[2] = { 0 };
        int64_t chunks[2] = { 0 };
        for (int pass = 1; pass <= 2 && sr && !test_failed_flag; pass++) {
            for (int64_t i = 0; i < N; i++) {
                enum infvsr_status rc;
                while ((rc = infvsr_session_push_frame(c.s, (const uint8_t *)lr->data + i * fbytes, i, &err)) ==
                       INFVSR_ERR_BUSY)
                    while (infvsr_session_pull_frame(c.s, sr, NULL, &err) == 1) {}
                CHECK_MSG(rc == INFVSR_OK, "push: %s", err.msg);
                if (rc != INFVSR_OK) break;
            }
            while (infvsr_session_pull_frame(c.s, sr, NULL, &err) == 1) {}
            {
                int k = pass - 1;
                struct infvsr_session_stats st;
                infvsr_session_get_stats(c.s, &st);
                struct mallinfo2 mi = mallinfo2(); /* small blocks + mmapped big ones */
                dev[k] = tb_device_bytes_in_use(be), heap[k] = mi.uordblks + mi.hblkhd, sess[k] = st.session_bytes;
                chunks[k] = st.chunks;
            }
        }
        printf("  %s: after %lld chunks: backend %zu B in use, session %zu B, heap %zu B; after %lld chunks: %zu, "
               "%zu, %zu\n", tb_name, (long long)chunks[0], dev[0], sess[0], heap[0], (long long)chunks[1], dev[1],
               sess[1], heap[1]);
        CHECK(chunks[1] >= 2 * chunks[0] && chunks[0] >= 4);
        CHECK_EQ_INT(dev[0], dev[1]);
        CHECK_EQ_INT(sess[0], sess[1]);
#if defined(__SANITIZE_ADDRESS__)
        printf("  heap count skipped under AddressSanitizer\n");
#else
        /* Flat at the scale of the engine's buffers: a second pass over twice the chunks
         * may not grow the heap by more than a few pages. Not exactly equal: under load a
         * thread's first use of a lazily allocated per-thread block (~1 KiB seen once in
         * pass 2) lands in either pass; a per-chunk leak of frames or tensors is far
         * larger, and LeakSanitizer in the ASan pass catches the rest. */
        const size_t heap_slack = 16384;
        CHECK_MSG(heap[1] <= heap[0] + heap_slack, "heap grew by %lld B over the second pass",
                  (long long)heap[1] - (long long)heap[0]);
#endif
        free(sr);
        infvsr_session_close(c.s);
    } else {
        CHECK_MSG(0, "setup: %s", err.msg);
    }
    infvsr_weights_close(cw);
    infvsr_model_close(m);
}

static void test_model_dir_errors(void) {
    struct infvsr_err err = { 0 };
    struct infvsr_backend * be = tb_backend();
    struct infvsr_model * m = NULL;
    CHECK_EQ_INT(infvsr_model_open_dir(E2E_CASE_DIR, be, &m, &err), INFVSR_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, "InfVSR.ckpt, Wan2.1_VAE.pth, ram_swin_large_14m.pth, DAPE.pth");
    CHECK_STR_CONTAINS(err.msg, "make-tiny-model");
    CHECK_EQ_INT(infvsr_model_open_dir(E2E_CASE_DIR "/no-such-dir", be, &m, &err), INFVSR_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, "does not exist");
    CHECK(m == NULL);
    /* A VAE file in the DiT's place: the loader names the file and a key. */
    CHECK(infvsr_model_open_files(NULL, E2E_CASE_DIR "/model/Wan2.1_VAE.pth", E2E_CASE_DIR "/model/Wan2.1_VAE.pth",
                                  E2E_CASE_DIR "/model/ram_swin_large_14m.pth", E2E_CASE_DIR "/model/DAPE.pth", be,
                                  &m, &err) != INFVSR_OK);
    CHECK_STR_CONTAINS(err.msg, "Wan2.1_VAE.pth");
    CHECK(m == NULL);
    /* Nothing the failed loads imported stays on the backend. */
    CHECK_EQ_INT(tb_device_bytes_in_use(be), 0);
}

static void test_session_option_errors(void) {
    struct infvsr_err err = { 0 };
    struct infvsr_backend * be = tb_backend();
    struct infvsr_model * m = open_model(be);
    if (m) {
        struct infvsr_session * s = NULL;
        struct infvsr_session_opts o = infvsr_session_opts_default(0, 10);
        CHECK_EQ_INT(infvsr_session_open(m, &o, &s, &err), INFVSR_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(err.msg, "LR size 0x10");
        o = infvsr_session_opts_default(100000, 10);
        CHECK_EQ_INT(infvsr_session_open(m, &o, &s, &err), INFVSR_ERR_INVALID_ARG);
        o = infvsr_session_opts_default(8, 8);
        o.scale = 0;
        CHECK_EQ_INT(infvsr_session_open(m, &o, &s, &err), INFVSR_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(err.msg, "scale");
        o = infvsr_session_opts_default(8, 8);
        o.scene_threshold = 0;
        CHECK_EQ_INT(infvsr_session_open(m, &o, &s, &err), INFVSR_ERR_INVALID_ARG);
        CHECK_STR_CONTAINS(err.msg, "threshold");
        CHECK(s == NULL);
        /* push after finish */
        o = infvsr_session_opts_default(8, 8);
        CHECK_EQ_INT(infvsr_session_open(m, &o, &s, &err), INFVSR_OK);
        if (s) {
            uint8_t px[8 * 8 * 3] = { 0 };
            CHECK_EQ_INT(infvsr_session_finish(s, &err), INFVSR_OK);
            CHECK_EQ_INT(infvsr_session_push_frame(s, px, 0, &err), INFVSR_ERR_INVALID_ARG);
            CHECK_EQ_INT(infvsr_session_pull_frame(s, px, NULL, &err), 0); /* zero frames: nothing out */
            CHECK(infvsr_session_done(s));
            infvsr_session_close(s);
        }
    }
    infvsr_model_close(m);
}

static const struct test_case tests[] = {
    TEST(test_parity_scene_detection),
    TEST(test_parity_no_scene_detection),
    TEST(test_traffic_per_chunk),
    TEST(test_memory_flat),
    TEST(test_model_dir_errors),
    TEST(test_session_option_errors),
    { 0 },
};

int main(int argc, char ** argv) {
    tb_parse_args(&argc, argv);
    int rc = test_main(argc, argv, tests);
    tb_free_backends();
    return rc;
}
