/* End-to-end parity of the engine session against tests/reference/pipeline_ref.py: the same
 * tiny-model files (official torch.save formats), the same generated clip (a slow drift that
 * refreshes the reference, then a hard cut), the same chunk schedule and cut positions, and
 * the decoded frames before quantisation within rel err 1e-4; the u8 frames equal except
 * +-1 where the reference value sits next to a truncation boundary. */
#include "check.h"

#include "infvsr/session.h"
#include "infvsr/weights.h"
#include "ops.h"

#ifndef E2E_CASE_DIR
#error "E2E_CASE_DIR must point at the pipeline_ref.py output"
#endif

struct capture {
    int64_t n_frames, sh, sw;
    float * f32;           /* [N, 3, sh, sw] */
    int64_t rows[64][6];   /* first, n, new_scene, update, n_padded, start_frame */
    int     n_rows;
};

static void on_chunk(void * user, const struct infvsr_session_chunk_info * info, const struct infvsr_tensor * dec) {
    struct capture * c = user;
    if (c->n_rows < 64) {
        int64_t * r = c->rows[c->n_rows++];
        r[0] = info->first, r[1] = info->n, r[2] = info->new_scene, r[3] = info->update;
        r[4] = info->n_padded, r[5] = info->start_frame;
    }
    const int64_t Lp = dec->shape[1], ph = dec->shape[2], pw = dec->shape[3];
    const float * d = dec->data;
    for (int t = 0; t < info->n && info->first + t < c->n_frames; t++)
        for (int ch = 0; ch < 3; ch++)
            for (int64_t y = 0; y < c->sh; y++)
                memcpy(c->f32 + (((info->first + t) * 3 + ch) * c->sh + y) * c->sw,
                       d + ((ch * Lp + t) * ph + y) * pw, (size_t)c->sw * sizeof(float));
}

static const struct infvsr_tensor * need(const struct infvsr_weights * w, const char * key) {
    const struct infvsr_tensor * t = infvsr_weights_find(w, key);
    if (!t) fprintf(stderr, "  case.safetensors lacks '%s'\n", key);
    return t;
}

/* Runs the whole clip through a session and compares with the reference run `suffix`. */
static void run_case(bool scene_detection, const char * suffix, bool pull_late) {
    struct infvsr_err err = { 0 };
    struct infvsr_backend * be = NULL;
    struct infvsr_cpu_params cp = infvsr_cpu_default_params();
    CHECK_EQ_INT(infvsr_cpu_backend_init(&cp, &be), INFVSR_OK);
    struct infvsr_model * m = NULL;
    enum infvsr_status rc = infvsr_model_open_dir(E2E_CASE_DIR "/model", be, &m, &err);
    CHECK_MSG(rc == INFVSR_OK, "model: %s", err.msg);
    struct infvsr_weights * cw = NULL;
    rc = infvsr_weights_open(E2E_CASE_DIR "/case.safetensors", &cw, &err);
    CHECK_MSG(rc == INFVSR_OK, "case: %s", err.msg);
    if (!m || !cw) goto out_early;

    char key[64];
    const struct infvsr_tensor * lr = need(cw, "lr");
    snprintf(key, sizeof key, "sr_f32%s", suffix);
    const struct infvsr_tensor * sr = need(cw, key);
    snprintf(key, sizeof key, "sr_u8%s", suffix);
    const struct infvsr_tensor * sr8 = need(cw, key);
    snprintf(key, sizeof key, "chunks%s", suffix);
    const struct infvsr_tensor * chunks = need(cw, key);
    if (!lr || !sr || !sr8 || !chunks) { test_failed_flag = 1; goto out_early; }
    const int64_t N = lr->shape[0], h = lr->shape[1], w = lr->shape[2];

    struct infvsr_session_opts o = infvsr_session_opts_default((int)w, (int)h);
    o.scene_detection = scene_detection;
    struct infvsr_session * s = NULL;
    rc = infvsr_session_open(m, &o, &s, &err);
    CHECK_MSG(rc == INFVSR_OK, "open: %s", err.msg);
    if (!s) goto out_early;
    const int64_t sh = infvsr_session_out_height(s), sw = infvsr_session_out_width(s);
    CHECK_EQ_INT(sh, sr->shape[2]);
    CHECK_EQ_INT(sw, sr->shape[3]);
    struct capture cap = { .n_frames = N, .sh = sh, .sw = sw };
    cap.f32 = calloc((size_t)(N * 3 * sh * sw), sizeof(float));
    uint8_t * out = calloc((size_t)(N * sh * sw * 3), 1);
    int64_t * pts = calloc((size_t)N, sizeof *pts);
    infvsr_session_set_chunk_hook(s, on_chunk, &cap);

    int64_t n_out = 0, n_busy = 0;
    const size_t fbytes = (size_t)(h * w * 3), obytes = (size_t)(sh * sw * 3);
    for (int64_t i = 0; i < N && !test_failed_flag; i++) {
        /* pts: an arbitrary increasing sequence, to see it carried through. */
        while ((rc = infvsr_session_push_frame(s, (const uint8_t *)lr->data + i * fbytes, 1000 + 3 * i, &err)) ==
               INFVSR_ERR_BUSY) {
            n_busy++;
            int r;
            while (n_out < N && (r = infvsr_session_pull_frame(s, out + n_out * obytes, &pts[n_out], &err)) == 1)
                n_out++;
        }
        CHECK_MSG(rc == INFVSR_OK, "push %lld: %s", (long long)i, err.msg);
        if (!pull_late) {
            while (n_out < N && infvsr_session_pull_frame(s, out + n_out * obytes, &pts[n_out], &err) == 1) n_out++;
        }
    }
    CHECK_EQ_INT(infvsr_session_finish(s, &err), INFVSR_OK);
    int r;
    while (n_out < N && (r = infvsr_session_pull_frame(s, out + n_out * obytes, &pts[n_out], &err)) == 1) n_out++;
    CHECK_EQ_INT(n_out, N);
    CHECK_EQ_INT(infvsr_session_pull_frame(s, out, NULL, &err), 0); /* nothing beyond N */
    CHECK(infvsr_session_done(s));
    if (pull_late) CHECK_MSG(n_busy > 0, "pushing without pulling must hit INFVSR_ERR_BUSY");
    for (int64_t i = 0; i < n_out; i++) CHECK_EQ_INT(pts[i], 1000 + 3 * i);

    /* Same chunks (and so the same cut positions) as the reference scheduler. */
    CHECK_EQ_INT(cap.n_rows, chunks->shape[0]);
    const int64_t * ref_rows = chunks->data;
    for (int i = 0; i < cap.n_rows && i < chunks->shape[0]; i++)
        for (int k = 0; k < 6; k++)
            CHECK_MSG(cap.rows[i][k] == ref_rows[i * 6 + k], "chunk %d field %d: %lld vs reference %lld", i, k,
                      (long long)cap.rows[i][k], (long long)ref_rows[i * 6 + k]);

    const size_t n = (size_t)(N * 3 * sh * sw);
    double e = rel_err_f32(cap.f32, sr->data, n);
    double max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)cap.f32[i] - ((const float *)sr->data)[i]);
        if (d > max_abs) max_abs = d;
    }
    printf("  %s: %lld frames, %d chunks, rel err %.3e, max |diff| %.3e (BUSY answers: %lld)\n",
           scene_detection ? "scene detection" : "no scene detection", (long long)N, cap.n_rows, e, max_abs,
           (long long)n_busy);
    CHECK_MSG(e <= 1e-4, "decoded frames rel err %.3e > 1e-4", e);

    /* u8 output: exact, except +-1 where the reference's (x+1)*127.5 is within 0.01 of an
     * integer (a truncation boundary that a ~1e-5 difference can cross). */
    const uint8_t * ref8 = sr8->data;
    const float *   ref  = sr->data;
    int64_t n_off = 0, n_bad = 0;
    for (int64_t f = 0; f < N; f++)
        for (int64_t y = 0; y < sh; y++)
            for (int64_t x = 0; x < sw; x++)
                for (int c = 0; c < 3; c++) {
                    size_t io = (size_t)(((f * sh + y) * sw + x) * 3 + c);
                    if (out[io] == ref8[io]) continue;
                    n_off++;
                    double v = ((double)ref[((f * 3 + c) * sh + y) * sw + x] + 1.0) * 127.5;
                    if (abs((int)out[io] - (int)ref8[io]) > 1 || fabs(v - nearbyint(v)) > 0.01) n_bad++;
                }
    printf("  u8: %lld of %zu values differ by one at a boundary, %lld differ otherwise\n", (long long)n_off,
           n, (long long)n_bad);
    CHECK_EQ_INT(n_bad, 0);

    struct infvsr_session_stats st;
    infvsr_session_get_stats(s, &st);
    CHECK_EQ_INT(st.frames_in, N);
    CHECK_EQ_INT(st.frames_out, N);
    CHECK_EQ_INT(st.chunks, cap.n_rows);
    free(cap.f32), free(out), free(pts);
    infvsr_session_close(s);
out_early:
    infvsr_weights_close(cw);
    infvsr_model_close(m);
    infvsr_backend_free(be);
}

static void test_parity_scene_detection(void) { run_case(true, "", false); }
static void test_parity_no_scene_detection(void) { run_case(false, "_noscene", true); }

static void test_model_dir_errors(void) {
    struct infvsr_err err = { 0 };
    struct infvsr_backend * be = NULL;
    struct infvsr_cpu_params cp = infvsr_cpu_default_params();
    CHECK_EQ_INT(infvsr_cpu_backend_init(&cp, &be), INFVSR_OK);
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
    infvsr_backend_free(be);
}

static void test_session_option_errors(void) {
    struct infvsr_err err = { 0 };
    struct infvsr_backend * be = NULL;
    struct infvsr_cpu_params cp = infvsr_cpu_default_params();
    CHECK_EQ_INT(infvsr_cpu_backend_init(&cp, &be), INFVSR_OK);
    struct infvsr_model * m = NULL;
    CHECK_EQ_INT(infvsr_model_open_dir(E2E_CASE_DIR "/model", be, &m, &err), INFVSR_OK);
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
    infvsr_backend_free(be);
}

static const struct test_case tests[] = {
    TEST(test_parity_scene_detection),
    TEST(test_parity_no_scene_detection),
    TEST(test_model_dir_errors),
    TEST(test_session_option_errors),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
