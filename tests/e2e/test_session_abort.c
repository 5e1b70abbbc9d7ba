/* The engine's cancel hook (infvsr_session_set_abort) on the tiny model of `infvsr
 * make-tiny-model`: a reference chunk with a hook that never fires maps every poll to the
 * stage it happens in (from the session's own stage timers); then the hook fires at chosen
 * polls (the chunk's first, inside the VAE encoder, before and between the DiT blocks,
 * inside the VAE decoder, the last) and each run must:
 *   - return INFVSR_ERR_CANCELLED from the call that ran the chunk, naming where it stopped;
 *   - stop at once: the hook is not polled again and no later stage runs (its timer stays 0,
 *     the chunk hook never sees a decoded chunk, stats.chunks stays 0);
 *   - stay failed (later push/pull/finish answer CANCELLED) and close without a leak
 *     (LeakSanitizer in the ASan build).
 * A cancel during the second chunk (after a complete first one) behaves the same. */
#include "check.h"

#include "infvsr/session.h"
#include "infvsr/backend.h"
#include "test_backend.h"

#ifndef E2E_TINY_DIR
#error "E2E_TINY_DIR must point at a model written by infvsr make-tiny-model"
#endif

#define W 32
#define H 24
#define MAX_POLLS 4096

/* Where a poll happened: the stage in progress, read from the session's stage timers
 * (each stage adds its time when it ends). */
enum phase { PH_START, PH_VAE_ENCODE, PH_DIT, PH_VAE_DECODE, PH_AFTER };

struct hook {
    struct infvsr_session * s;
    int        fire_at;         /* poll index (1-based) that answers true; 0 = never   */
    int        polls;           /* polls so far                                        */
    int        polls_after;     /* polls after the hook said true (must stay 0)        */
    enum phase phase[MAX_POLLS];
    int        chunks_seen;     /* chunk hook calls (decoded chunks)                   */
};

static enum phase phase_now(const struct infvsr_session * s) {
    struct infvsr_session_stats st;
    infvsr_session_get_stats(s, &st);
    if (st.seconds[INFVSR_STAGE_VAE_DECODE] > 0) return PH_AFTER; /* first chunk only */
    if (st.seconds[INFVSR_STAGE_DIT] > 0) return PH_VAE_DECODE;
    if (st.seconds[INFVSR_STAGE_VAE_ENCODE] > 0) return PH_DIT;
    if (st.seconds[INFVSR_STAGE_RESIZE] > 0) return PH_VAE_ENCODE;
    return PH_START;
}

static bool should_abort(void * user) {
    struct hook * h = user;
    if (h->fire_at > 0 && h->polls >= h->fire_at) {
        h->polls_after++;
        return true;
    }
    if (h->polls < MAX_POLLS) h->phase[h->polls] = phase_now(h->s);
    h->polls++;
    return h->fire_at > 0 && h->polls == h->fire_at;
}

static void on_chunk(void * user, const struct infvsr_session_chunk_info * info, const struct infvsr_tensor * dec) {
    struct hook * h = user;
    h->chunks_seen++;
    (void)info, (void)dec;
}

static struct infvsr_backend * g_be;
static struct infvsr_model *   g_model;

static bool load_model(void) {
    if (g_model) return true;
    struct infvsr_err err = { 0 };
    struct infvsr_backend_opts bo = infvsr_backend_default_opts();
    bo.n_threads = 2;
    bo.precision = tb_precision;
    CHECK_EQ_INT(infvsr_backend_init_by_name(tb_name, &bo, &g_be, &err), INFVSR_OK); /* --backend, default cpu */
    if (!g_be) return false;
    enum infvsr_status rc = infvsr_model_open_dir(E2E_TINY_DIR, g_be, &g_model, &err);
    CHECK_MSG(rc == INFVSR_OK, "model %s: %s", E2E_TINY_DIR, err.msg);
    return rc == INFVSR_OK;
}

static void frame_at(int t, uint8_t * rgb) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = (uint8_t)(x * 7 + y * 5 + c * 40 + t * 3);
}

/* Pushes frames [first, first + n) and returns the first non-OK, non-BUSY status of the
 * calls that ran the model (a push, the finish, or a pull), pulling whatever is ready. */
static enum infvsr_status feed(struct infvsr_session * s, int first, int n, bool finish, int * pulled,
                               struct infvsr_err * err) {
    uint8_t  lr[W * H * 3];
    uint8_t * sr = malloc((size_t)infvsr_session_out_width(s) * infvsr_session_out_height(s) * 3);
    enum infvsr_status rc = INFVSR_OK;
    for (int t = first; t < first + n && rc == INFVSR_OK; t++) {
        frame_at(t, lr);
        while ((rc = infvsr_session_push_frame(s, lr, t, err)) == INFVSR_ERR_BUSY) {
            int got;
            while ((got = infvsr_session_pull_frame(s, sr, NULL, err)) == 1) (*pulled)++;
            if (got < 0) {
                rc = (enum infvsr_status)got;
                break;
            }
        }
    }
    if (rc == INFVSR_OK && finish) rc = infvsr_session_finish(s, err);
    if (rc == INFVSR_OK) {
        int got;
        while ((got = infvsr_session_pull_frame(s, sr, NULL, err)) == 1) (*pulled)++;
        if (got < 0) rc = (enum infvsr_status)got;
    }
    free(sr);
    return rc;
}

static struct infvsr_session * open_session(struct hook * h, bool with_abort) {
    struct infvsr_err err = { 0 };
    struct infvsr_session_opts o = infvsr_session_opts_default(W, H);
    o.scene_detection = false;
    struct infvsr_session * s = NULL;
    enum infvsr_status rc = infvsr_session_open(g_model, &o, &s, &err);
    CHECK_MSG(rc == INFVSR_OK, "open: %s", err.msg);
    if (!s) return NULL;
    h->s = s;
    infvsr_session_set_chunk_hook(s, on_chunk, h);
    if (with_abort) infvsr_session_set_abort(s, should_abort, h);
    return s;
}

/* One chunk (9 frames, a scene start) without a cancel: the polls and their phases. */
static int reference_polls(struct hook * ref) {
    memset(ref, 0, sizeof *ref);
    struct infvsr_session * s = open_session(ref, true);
    if (!s) return 0;
    struct infvsr_err err = { 0 };
    int pulled = 0;
    enum infvsr_status rc = feed(s, 0, 9, true, &pulled, &err);
    CHECK_MSG(rc == INFVSR_OK, "reference chunk: %s", err.msg);
    CHECK_EQ_INT(pulled, 9);
    CHECK_EQ_INT(ref->chunks_seen, 1);
    infvsr_session_close(s);
    return ref->polls;
}

/* Index (1-based) of the n-th poll (0-based; -1 = the last) in phase p, or 0. */
static int poll_in_phase(const struct hook * ref, enum phase p, int n) {
    int seen = 0, last = 0;
    for (int i = 0; i < ref->polls && i < MAX_POLLS; i++) {
        if (ref->phase[i] != p) continue;
        if (seen++ == n) return i + 1;
        last = i + 1;
    }
    return n < 0 ? last : 0;
}

static int count_in_phase(const struct hook * ref, enum phase p) {
    int n = 0;
    for (int i = 0; i < ref->polls && i < MAX_POLLS; i++) n += ref->phase[i] == p;
    return n;
}

/* Cancels the first chunk at poll k; `where` must appear in the error message. */
static void abort_first_chunk_at(int k, enum phase expect, const char * where) {
    struct hook h = { .fire_at = k };
    struct infvsr_session * s = open_session(&h, true);
    if (!s) return;
    struct infvsr_err err = { 0 };
    int pulled = 0;
    enum infvsr_status rc = feed(s, 0, 9, true, &pulled, &err);
    fprintf(stderr, "  poll %3d: %s\n", k, err.msg);
    CHECK_EQ_INT(rc, INFVSR_ERR_CANCELLED);
    CHECK_STR_CONTAINS(err.msg, where);
    CHECK_EQ_INT(h.polls, k);
    CHECK_EQ_INT(h.polls_after, 0);        /* stopped at once: not polled again            */
    CHECK_EQ_INT(h.phase[k - 1], expect);  /* and where the reference run had this poll    */
    CHECK_EQ_INT(h.chunks_seen, 0);        /* no decoded chunk                              */
    CHECK_EQ_INT(pulled, 0);
    struct infvsr_session_stats st;
    infvsr_session_get_stats(s, &st);
    CHECK_EQ_INT(st.chunks, 0);
    /* no stage after the one that was cancelled ran */
    if (expect <= PH_VAE_ENCODE) CHECK(st.seconds[INFVSR_STAGE_VAE_ENCODE] == 0);
    if (expect <= PH_DIT) CHECK(st.seconds[INFVSR_STAGE_DIT] == 0);
    CHECK(st.seconds[INFVSR_STAGE_VAE_DECODE] == 0);
    /* sticky: the aborted chunk is never resumed */
    uint8_t lr[W * H * 3] = { 0 };
    uint8_t * sr = malloc((size_t)infvsr_session_out_width(s) * infvsr_session_out_height(s) * 3);
    CHECK_EQ_INT(infvsr_session_push_frame(s, lr, 100, &err), INFVSR_ERR_CANCELLED);
    CHECK_EQ_INT(infvsr_session_pull_frame(s, sr, NULL, &err), INFVSR_ERR_CANCELLED);
    CHECK_EQ_INT(infvsr_session_finish(s, &err), INFVSR_ERR_CANCELLED);
    CHECK_EQ_INT(h.polls_after, 0);
    free(sr);
    infvsr_session_close(s); /* frees everything: LeakSanitizer checks at exit */
}

static void test_abort_each_stage(void) {
    if (!load_model()) return;
    struct hook * ref = calloc(1, sizeof *ref);
    int P = reference_polls(ref);
    int n_enc = count_in_phase(ref, PH_VAE_ENCODE), n_dit = count_in_phase(ref, PH_DIT),
        n_dec = count_in_phase(ref, PH_VAE_DECODE);
    fprintf(stderr, "  one chunk polls the hook %d times: %d before the encoder, %d in the VAE encode, %d in "
            "the DiT step, %d in the VAE decode\n", P, count_in_phase(ref, PH_START), n_enc, n_dit, n_dec);
    /* tiny model: 2 DiT blocks (+ the session's poll before the step), 3 encoder and 3
     * decoder calls of many layers each */
    CHECK_EQ_INT(n_dit, 3);
    CHECK(n_enc >= 3 * 10);
    CHECK(n_dec >= 3 * 10);
    CHECK_EQ_INT(count_in_phase(ref, PH_AFTER), 0);

    abort_first_chunk_at(1, PH_START, "session: cancelled before the chunk started");
    abort_first_chunk_at(poll_in_phase(ref, PH_VAE_ENCODE, 0), PH_VAE_ENCODE, "cancelled before the VAE encode");
    abort_first_chunk_at(poll_in_phase(ref, PH_VAE_ENCODE, n_enc / 2), PH_VAE_ENCODE, "vae: cancelled before encoder.");
    abort_first_chunk_at(poll_in_phase(ref, PH_DIT, 0), PH_DIT, "cancelled before the DiT step");
    abort_first_chunk_at(poll_in_phase(ref, PH_DIT, 1), PH_DIT, "dit step (cache reset): cancelled before block 0 of 2");
    abort_first_chunk_at(poll_in_phase(ref, PH_DIT, 2), PH_DIT, "cancelled before block 1 of 2");
    abort_first_chunk_at(poll_in_phase(ref, PH_VAE_DECODE, n_dec / 2), PH_VAE_DECODE, "vae: cancelled before decoder.");
    abort_first_chunk_at(P, PH_VAE_DECODE, "vae: cancelled before decoder.");
    free(ref);
}

/* A complete first chunk, then a cancel inside the second chunk's DiT step. */
static void test_abort_second_chunk(void) {
    if (!load_model()) return;
    struct hook h = { 0 };
    struct infvsr_session * s = open_session(&h, true);
    if (!s) return;
    struct infvsr_err err = { 0 };
    int pulled = 0;
    /* frames 0..11: the first chunk (0..8) runs and is pulled; 9..11 wait in the chunker */
    enum infvsr_status rc = feed(s, 0, 12, false, &pulled, &err);
    CHECK_MSG(rc == INFVSR_OK, "first chunk: %s", err.msg);
    CHECK_EQ_INT(h.chunks_seen, 1);
    CHECK_EQ_INT(pulled, 9);
    const int polls_one_chunk = h.polls;
    struct infvsr_session_stats st0;
    infvsr_session_get_stats(s, &st0);
    /* The second chunk (frames 9..20, not a scene start) polls as often before its DiT step
     * as the first one did (2 session polls, then 3 encoder calls of the same layers): fire
     * at the poll before its DiT block 0. */
    int enc_and_start = 0;
    for (int i = 0; i < polls_one_chunk; i++) enc_and_start += h.phase[i] == PH_START || h.phase[i] == PH_VAE_ENCODE;
    h.fire_at = polls_one_chunk + enc_and_start + 2;
    rc = feed(s, 12, 9, true, &pulled, &err);
    fprintf(stderr, "  second chunk, poll %d: %s\n", h.fire_at, err.msg);
    CHECK_EQ_INT(rc, INFVSR_ERR_CANCELLED);
    CHECK_STR_CONTAINS(err.msg, "cancelled before block 0 of 2");
    CHECK_EQ_INT(h.polls_after, 0);
    CHECK_EQ_INT(h.chunks_seen, 1);
    CHECK_EQ_INT(pulled, 9);
    struct infvsr_session_stats st;
    infvsr_session_get_stats(s, &st);
    CHECK_EQ_INT(st.chunks, 1);
    CHECK(st.seconds[INFVSR_STAGE_VAE_DECODE] == st0.seconds[INFVSR_STAGE_VAE_DECODE]); /* no decode ran */
    infvsr_session_close(s);
}

/* Without a hook (or after clearing it) nothing changes: a full chunk runs. */
static void test_no_hook(void) {
    if (!load_model()) return;
    struct hook h = { .fire_at = 1 };
    struct infvsr_session * s = open_session(&h, true);
    if (!s) return;
    infvsr_session_set_abort(s, NULL, NULL);
    struct infvsr_err err = { 0 };
    int pulled = 0;
    CHECK_EQ_INT(feed(s, 0, 9, true, &pulled, &err), INFVSR_OK);
    CHECK_EQ_INT(pulled, 9);
    CHECK_EQ_INT(h.polls, 0);
    infvsr_session_close(s);
}

static void test_cleanup(void) {
    infvsr_model_close(g_model);
    infvsr_backend_free(g_be);
    g_model = NULL, g_be = NULL;
}

static const struct test_case tests[] = {
    TEST(test_abort_each_stage),
    TEST(test_abort_second_chunk),
    TEST(test_no_hook),
    TEST(test_cleanup),
    { 0 },
};

int main(int argc, char ** argv) {
    tb_parse_args(&argc, argv);
    return test_main(argc, argv, tests);
}
