/* Scene detection and chunk scheduler against tests/reference/scene_ref.py (OpenCV HSV,
 * a Python ContentDetector + FlashFilter + drain() written from MODEL-SPEC §2.2/§2.3):
 * HSV bit-exact, scores equal, cuts and chunk lists identical. Plus edge cases. */
#include <jansson.h>

#include "check.h"
#include "infvsr/chunker.h"
#include "infvsr/scene.h"

#ifndef SCENE_FIXTURE_DIR
#error "SCENE_FIXTURE_DIR must be defined"
#endif

static uint8_t * read_file(const char * name, size_t expect) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SCENE_FIXTURE_DIR, name);
    FILE * f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "  cannot open %s (run the fixture test first)\n", path);
        return NULL;
    }
    uint8_t * buf = malloc(expect ? expect : 1);
    size_t got = buf ? fread(buf, 1, expect, f) : 0;
    fclose(f);
    if (got != expect) {
        fprintf(stderr, "  %s: %zu bytes, expected %zu\n", path, got, expect);
        free(buf);
        return NULL;
    }
    return buf;
}

static json_t * read_json(const char * name) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SCENE_FIXTURE_DIR, name);
    json_error_t jerr;
    json_t * j = json_load_file(path, 0, &jerr);
    if (!j) fprintf(stderr, "  %s: %s\n", path, jerr.text);
    return j;
}

static size_t count_mismatch(const uint8_t * a, const uint8_t * b, size_t n, size_t * first) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i] && bad++ == 0) *first = i;
    return bad;
}

/* Every one of the 2^24 colours, compared with cv2.cvtColor(BGR2HSV). */
static void test_hsv_all_colours(void) {
    const size_t n = (size_t)1 << 24;
    uint8_t * want = read_file("hsv_all.u8", 3 * n);
    uint8_t * rgb = malloc(3 * n), * got = malloc(3 * n);
    CHECK(want && rgb && got);
    if (!want || !rgb || !got) goto done;
    for (size_t i = 0; i < n; i++) {
        rgb[3 * i + 0] = (uint8_t)(i >> 16);
        rgb[3 * i + 1] = (uint8_t)(i >> 8);
        rgb[3 * i + 2] = (uint8_t)i;
    }
    infvsr_rgb_to_hsv_u8(rgb, n, got, got + n, got + 2 * n);
    for (int c = 0; c < 3; c++) {
        size_t first = 0, bad = count_mismatch(got + c * n, want + c * n, n, &first);
        CHECK_MSG(bad == 0, "plane %d: %zu mismatches, first at colour 0x%06zx: %d vs cv2 %d", c, bad,
                  first, got[c * n + first], want[c * n + first]);
    }
done:
    free(want);
    free(rgb);
    free(got);
}

static void test_hsv_random_images(void) {
    json_t * meta = read_json("hsv_rand.json");
    CHECK(meta != NULL);
    if (!meta) return;
    size_t count = (size_t)json_integer_value(json_object_get(meta, "count"));
    size_t npix = (size_t)json_integer_value(json_object_get(meta, "height")) *
                  (size_t)json_integer_value(json_object_get(meta, "width"));
    json_decref(meta);
    uint8_t * rgb = read_file("hsv_rand_rgb.u8", count * npix * 3);
    uint8_t * want = read_file("hsv_rand_hsv.u8", count * npix * 3);
    uint8_t * got = malloc(3 * npix);
    CHECK(rgb && want && got);
    for (size_t k = 0; rgb && want && got && k < count; k++) {
        infvsr_rgb_to_hsv_u8(rgb + k * npix * 3, npix, got, got + npix, got + 2 * npix);
        size_t first = 0, bad = count_mismatch(got, want + k * npix * 3, 3 * npix, &first);
        CHECK_MSG(bad == 0, "image %zu: %zu mismatches (first at %zu)", k, bad, first);
    }
    free(rgb);
    free(want);
    free(got);
}

struct video {
    json_t *  meta;
    int       width, height, frames;
    size_t    frame_bytes;
    uint8_t * data;
};

static bool load_video(const char * name, struct video * v) {
    char file[256];
    memset(v, 0, sizeof(*v));
    snprintf(file, sizeof(file), "%s.json", name);
    v->meta = read_json(file);
    if (!v->meta) return false;
    v->width = (int)json_integer_value(json_object_get(v->meta, "width"));
    v->height = (int)json_integer_value(json_object_get(v->meta, "height"));
    v->frames = (int)json_integer_value(json_object_get(v->meta, "frames"));
    v->frame_bytes = (size_t)v->width * (size_t)v->height * 3;
    snprintf(file, sizeof(file), "%s.u8", name);
    v->data = read_file(file, v->frame_bytes * (size_t)v->frames);
    return v->data != NULL;
}

static void free_video(struct video * v) {
    json_decref(v->meta);
    free(v->data);
}

static void check_detector(const struct video * v) {
    struct infvsr_scene_detector * det = NULL;
    struct infvsr_err err = { 0 };
    CHECK_EQ_INT(infvsr_scene_detector_create(v->width, v->height, 27.0, 15, &det, &err), INFVSR_OK);
    if (!det) return;
    json_t * scores = json_object_get(v->meta, "scores");
    json_t * cuts = json_object_get(v->meta, "cuts");
    size_t n_cut = 0;
    double max_diff = 0;
    for (int f = 0; f < v->frames; f++) {
        double score = -1;
        int64_t cut = -2;
        CHECK_EQ_INT(infvsr_scene_detector_push(det, v->data + (size_t)f * v->frame_bytes, f, &score, &cut, &err),
                     INFVSR_OK);
        double want = json_real_value(json_array_get(scores, (size_t)f));
        double d = fabs(score - want);
        if (d > max_diff) max_diff = d;
        CHECK_MSG(d <= 1e-12, "frame %d: score %.17g vs reference %.17g", f, score, want);
        if (cut >= 0) {
            CHECK_MSG(n_cut < json_array_size(cuts), "extra cut %lld at frame %d", (long long)cut, f);
            if (n_cut < json_array_size(cuts))
                CHECK_EQ_INT(cut, json_integer_value(json_array_get(cuts, n_cut)));
            n_cut++;
        }
    }
    CHECK_EQ_INT(n_cut, json_array_size(cuts));
    printf("  %s: %d frames, %zu cuts, max |score diff| %.3g\n",
           json_string_value(json_object_get(v->meta, "name")), v->frames, n_cut, max_diff);
    infvsr_scene_detector_destroy(det);
}

/* Runs the chunker in streaming mode and compares with the reference chunk list; also
 * checks that each chunk carries exactly the frames it names and that no more than
 * INFVSR_CHUNKER_MAX_PENDING frames are ever held. */
static void check_chunker(const struct video * v, const char * key) {
    json_t * cfgj = json_object_get(json_object_get(v->meta, "configs"), key);
    CHECK_MSG(cfgj != NULL, "config %s missing", key);
    if (!cfgj) return;
    json_t * want = json_object_get(cfgj, "chunks");
    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(v->width, v->height);
    json_t * sd = json_object_get(cfgj, "scene_detection");
    if (sd) cfg.scene_detection = json_is_true(sd);
    json_t * mf = json_object_get(cfgj, "max_frames");
    if (mf) cfg.max_frames = json_integer_value(mf);
    struct infvsr_chunker * ch = NULL;
    struct infvsr_err err = { 0 };
    CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, &err), INFVSR_OK);
    if (!ch) return;
    size_t k = 0;
    int64_t emitted = 0, max_held = 0;
    bool done = false;
    for (int f = 0; !done; f++) {
        if (f < v->frames && infvsr_chunker_wants_frames(ch)) {
            uint8_t * fr = malloc(v->frame_bytes);
            memcpy(fr, v->data + (size_t)f * v->frame_bytes, v->frame_bytes);
            CHECK_EQ_INT(infvsr_chunker_push(ch, fr, &err), INFVSR_OK);
        } else {
            CHECK_EQ_INT(infvsr_chunker_finish(ch, &err), INFVSR_OK);
            done = true;
        }
        int64_t held = infvsr_chunker_frames_in(ch) - emitted;
        if (held > max_held) max_held = held;
        struct infvsr_chunk c;
        while (infvsr_chunker_pop(ch, &c)) {
            json_t * w = json_array_get(want, k);
            CHECK_MSG(w != NULL, "%s: extra chunk start %lld n %d", key, (long long)c.first, c.n);
            if (w) {
                bool same = c.first == json_integer_value(json_array_get(w, 0)) &&
                            c.n == json_integer_value(json_array_get(w, 1)) &&
                            c.new_scene == json_is_true(json_array_get(w, 2)) &&
                            c.update == json_is_true(json_array_get(w, 3));
                CHECK_MSG(same, "%s chunk %zu: got (%lld,%d,%d,%d) want (%lld,%lld,%d,%d)", key, k,
                          (long long)c.first, c.n, c.new_scene, c.update,
                          (long long)json_integer_value(json_array_get(w, 0)),
                          (long long)json_integer_value(json_array_get(w, 1)),
                          json_is_true(json_array_get(w, 2)), json_is_true(json_array_get(w, 3)));
            }
            for (int i = 0; i < c.n; i++)
                CHECK(memcmp(c.frames[i], v->data + (size_t)(c.first + i) * v->frame_bytes, v->frame_bytes) == 0);
            emitted += c.n;
            k++;
            infvsr_chunk_release(&c);
        }
    }
    CHECK_EQ_INT(k, json_array_size(want));
    CHECK_MSG(max_held <= INFVSR_CHUNKER_MAX_PENDING, "%s: held %lld frames", key, (long long)max_held);
    infvsr_chunker_destroy(ch);
}

static void run_video(const char * name) {
    struct video v;
    bool ok = load_video(name, &v);
    CHECK(ok);
    if (ok) {
        check_detector(&v);
        const char * keys[] = { "default", "max37", "max1", "noscene", "noscene_max20" };
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) check_chunker(&v, keys[i]);
    }
    free_video(&v);
}

static void test_video_mixed(void) { run_video("mixed"); }
static void test_video_short_scenes(void) { run_video("short_scenes"); }
static void test_video_static(void) { run_video("static"); }
static void test_video_short_tail(void) { run_video("short_tail"); }

/* ---- edge cases, no fixtures ---------------------------------------------------------- */

static uint8_t * solid_frame(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    uint8_t * f = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) {
        f[3 * i] = r;
        f[3 * i + 1] = g;
        f[3 * i + 2] = b;
    }
    return f;
}

static void test_zero_frames(void) {
    for (int sd = 0; sd < 2; sd++) {
        struct infvsr_chunker_config cfg = infvsr_chunker_config_default(8, 8);
        cfg.scene_detection = sd;
        struct infvsr_chunker * ch = NULL;
        CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, NULL), INFVSR_OK);
        CHECK_EQ_INT(infvsr_chunker_finish(ch, NULL), INFVSR_OK);
        struct infvsr_chunk c;
        CHECK(!infvsr_chunker_pop(ch, &c));
        struct infvsr_err err = { 0 };
        CHECK_EQ_INT(infvsr_chunker_finish(ch, &err), INFVSR_ERR_INVALID_ARG);
        infvsr_chunker_destroy(ch);
    }
}

static void test_one_frame(void) {
    for (int sd = 0; sd < 2; sd++) {
        struct infvsr_chunker_config cfg = infvsr_chunker_config_default(8, 8);
        cfg.scene_detection = sd;
        struct infvsr_chunker * ch = NULL;
        CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, NULL), INFVSR_OK);
        CHECK_EQ_INT(infvsr_chunker_push(ch, solid_frame(8, 8, 1, 2, 3), NULL), INFVSR_OK);
        struct infvsr_chunk c;
        CHECK(!infvsr_chunker_pop(ch, &c));
        CHECK_EQ_INT(infvsr_chunker_finish(ch, NULL), INFVSR_OK);
        CHECK(infvsr_chunker_pop(ch, &c));
        CHECK_EQ_INT(c.first, 0);
        CHECK_EQ_INT(c.n, 1);
        CHECK(c.new_scene && c.update);
        CHECK_EQ_INT(c.frames[0][2], 3);
        CHECK(c.pts[0] == INT64_MIN); /* plain push carries no timestamp */
        infvsr_chunk_release(&c);
        CHECK(!infvsr_chunker_pop(ch, &c));
        infvsr_chunker_destroy(ch);
    }
}

/* max_frames truncates: frames after it are freed (ASan checks no leak) and ignored. */
static void test_max_frames(void) {
    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(8, 8);
    cfg.max_frames = 10;
    struct infvsr_chunker * ch = NULL;
    CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, NULL), INFVSR_OK);
    for (int i = 0; i < 25; i++) {
        CHECK_EQ_INT(infvsr_chunker_wants_frames(ch), i < 10);
        CHECK_EQ_INT(infvsr_chunker_push(ch, solid_frame(8, 8, 50, 50, (uint8_t)i), NULL), INFVSR_OK);
    }
    CHECK_EQ_INT(infvsr_chunker_frames_in(ch), 10);
    CHECK_EQ_INT(infvsr_chunker_finish(ch, NULL), INFVSR_OK);
    struct infvsr_chunk c;
    int total = 0, chunks = 0;
    while (infvsr_chunker_pop(ch, &c)) {
        if (chunks == 0) CHECK_EQ_INT(c.n, 9);
        total += c.n;
        chunks++;
        infvsr_chunk_release(&c);
    }
    CHECK_EQ_INT(total, 10);
    CHECK_EQ_INT(chunks, 2);
    infvsr_chunker_destroy(ch);
}

/* A ready chunk must be popped before the next push; destroy frees what is held. */
static void test_busy_and_destroy_with_frames(void) {
    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(4, 4);
    cfg.scene_detection = false;
    struct infvsr_chunker * ch = NULL;
    CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, NULL), INFVSR_OK);
    for (int i = 0; i < 9; i++) CHECK_EQ_INT(infvsr_chunker_push(ch, solid_frame(4, 4, 0, 0, 0), NULL), INFVSR_OK);
    struct infvsr_err err = { 0 };
    uint8_t * extra = solid_frame(4, 4, 0, 0, 0);
    CHECK_EQ_INT(infvsr_chunker_push(ch, extra, &err), INFVSR_ERR_BUSY);
    CHECK_STR_CONTAINS(err.msg, "not popped");
    free(extra);
    infvsr_chunker_destroy(ch); /* holds 9 frames in a ready chunk */
}

/* A long video costs no more memory than a short one: held frames stay bounded. */
static void test_bounded_long_stream(void) {
    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(16, 16);
    struct infvsr_chunker * ch = NULL;
    CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, NULL), INFVSR_OK);
    int64_t emitted = 0, max_held = 0;
    uint64_t rng = 7;
    for (int i = 0; i < 3000; i++) {
        /* a hard cut every 23 frames, noise in between */
        uint8_t base = (uint8_t)((i / 23) * 97);
        uint8_t * f = solid_frame(16, 16, base, (uint8_t)(255 - base), (uint8_t)(base / 2));
        for (int p = 0; p < 16 * 16 * 3; p++) f[p] = (uint8_t)(f[p] ^ (test_rng_next(&rng) & 3));
        CHECK_EQ_INT(infvsr_chunker_push(ch, f, NULL), INFVSR_OK);
        int64_t held = infvsr_chunker_frames_in(ch) - emitted;
        if (held > max_held) max_held = held;
        struct infvsr_chunk c;
        while (infvsr_chunker_pop(ch, &c)) {
            CHECK_EQ_INT(c.first, emitted);
            emitted += c.n;
            infvsr_chunk_release(&c);
        }
    }
    CHECK_EQ_INT(infvsr_chunker_finish(ch, NULL), INFVSR_OK);
    struct infvsr_chunk c;
    while (infvsr_chunker_pop(ch, &c)) {
        emitted += c.n;
        infvsr_chunk_release(&c);
    }
    CHECK_EQ_INT(emitted, 3000);
    CHECK_MSG(max_held <= 15 + 12, "held %lld frames", (long long)max_held);
    infvsr_chunker_destroy(ch);
}

/* Two random images alternating: every frame scores far above 27, yet the flash filter
 * never reports a cut (each frame moves last_above), and the reference comparison
 * refreshes once, at frame 21 (frame 45 equals the reference again). Hand-derived from
 * §2.2/§2.3. One refresh means the chunker swapped its HSV buffers an odd number of
 * times before destroy (this once freed the wrong pointer). */
static void test_alternating_frames(void) {
    uint8_t img[2][8 * 8 * 3];
    uint64_t rng = 99;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 8 * 8 * 3; i++) img[k][i] = (uint8_t)test_rng_next(&rng);
    struct infvsr_chunker * ch = NULL;
    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(8, 8);
    CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, NULL), INFVSR_OK);
    static const int want[][4] = { { 0, 9, 1, 1 }, { 9, 12, 0, 0 }, { 21, 12, 0, 1 }, { 33, 12, 0, 0 }, { 45, 5, 0, 0 } };
    size_t k = 0;
    for (int f = 0; f <= 50; f++) {
        if (f < 50) {
            uint8_t * fr = malloc(sizeof(img[0]));
            memcpy(fr, img[f & 1], sizeof(img[0]));
            CHECK_EQ_INT(infvsr_chunker_push_pts(ch, fr, 1000 + 40 * f, NULL), INFVSR_OK);
            CHECK(f == 0 || infvsr_chunker_last_score(ch) > 27.0);
        } else {
            CHECK_EQ_INT(infvsr_chunker_finish(ch, NULL), INFVSR_OK);
        }
        struct infvsr_chunk c;
        while (infvsr_chunker_pop(ch, &c)) {
            CHECK(k < 5);
            if (k < 5)
                CHECK_MSG(c.first == want[k][0] && c.n == want[k][1] && c.new_scene == want[k][2] &&
                          c.update == want[k][3], "chunk %zu: (%lld,%d,%d,%d)", k, (long long)c.first, c.n,
                          c.new_scene, c.update);
            for (int i = 0; i < c.n; i++) CHECK_EQ_INT(c.pts[i], 1000 + 40 * (c.first + i));
            k++;
            infvsr_chunk_release(&c);
        }
    }
    CHECK_EQ_INT(k, 5);
    infvsr_chunker_destroy(ch);
}

static void test_bad_arguments(void) {
    struct infvsr_err err = { 0 };
    struct infvsr_scene_detector * det = NULL;
    CHECK_EQ_INT(infvsr_scene_detector_create(0, 10, 27, 15, &det, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "0x10");
    CHECK_EQ_INT(infvsr_scene_detector_create(4, 4, 0.0, 15, &det, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "threshold");
    CHECK_EQ_INT(infvsr_scene_detector_create(4, 4, 27, 15, &det, &err), INFVSR_OK);
    uint8_t * f = solid_frame(4, 4, 9, 9, 9);
    CHECK_EQ_INT(infvsr_scene_detector_push(det, f, 5, NULL, NULL, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_scene_detector_push(det, f, 7, NULL, NULL, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "expected 6");
    free(f);
    infvsr_scene_detector_destroy(det);
    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(4, 4);
    cfg.max_frames = -1;
    struct infvsr_chunker * ch = NULL;
    CHECK_EQ_INT(infvsr_chunker_create(&cfg, &ch, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "max_frames");
    CHECK(ch == NULL);
}

/* The reference distance of §2.3: min_scene_len 0, threshold compared with >=. */
static void test_reference_distance(void) {
    uint8_t a[3] = { 0 }, b[3] = { 81, 81, 81 }; /* one pixel: dV = 81, dH = dS = 0 */
    uint8_t ha[3], hb[3];
    infvsr_rgb_to_hsv_u8(a, 1, &ha[0], &ha[1], &ha[2]);
    infvsr_rgb_to_hsv_u8(b, 1, &hb[0], &hb[1], &hb[2]);
    const uint8_t * const pa[3] = { &ha[0], &ha[1], &ha[2] };
    const uint8_t * const pb[3] = { &hb[0], &hb[1], &hb[2] };
    CHECK(infvsr_hsv_score(pa, pb, 1) == 27.0);
    CHECK(infvsr_hsv_reference_changed(pa, pb, 1, 27.0));   /* exactly at the threshold */
    CHECK(!infvsr_hsv_reference_changed(pa, pb, 1, 27.000001));
}

int main(int argc, char ** argv) {
    static const struct test_case tests[] = {
        TEST(test_hsv_all_colours), TEST(test_hsv_random_images), TEST(test_video_mixed),
        TEST(test_video_short_scenes), TEST(test_video_static), TEST(test_video_short_tail), TEST(test_zero_frames),
        TEST(test_one_frame), TEST(test_max_frames), TEST(test_busy_and_destroy_with_frames),
        TEST(test_bounded_long_stream), TEST(test_alternating_frames), TEST(test_bad_arguments), TEST(test_reference_distance),
        { 0 },
    };
    return test_main(argc, argv, tests);
}
