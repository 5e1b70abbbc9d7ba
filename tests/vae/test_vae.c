/* Wan VAE vs the PyTorch reference (tests/reference/vae_ref.py): streaming encode and decode
 * of a 5-chunk stream (9, 12, 12, 12, 5 -> 8 frames), without tiling (f32 weights under
 * "model_state") and with tiling (bf16 weights, flat state dict, threshold lowered so a
 * 64x96 frame splits into 2x3 tiles of 6 latents with stride 4). Also the slot table
 * against Appendix C, strict key checks and input validation. */
#include <string.h>

#include "check.h"
#include "vae_test_util.h"

#define TOL 1e-4

static int meta_int(const struct infvsr_weights * io, const char * key, int def) {
    const char * v = infvsr_weights_metadata(io, key);
    return v ? atoi(v) : def;
}

static const struct infvsr_tensor * io_get(const struct infvsr_weights * io, const char * fmt, int i) {
    char key[64];
    snprintf(key, sizeof key, fmt, i);
    const struct infvsr_tensor * t = infvsr_weights_find(io, key);
    if (!t) fprintf(stderr, "  fixture tensor %s missing\n", key);
    return t;
}

/* Streams every chunk of fixture `name` through one session; each chunk's encode is compared
 * with the reference latents and the decode of the reference latents with the reference
 * frames. Returns the number of tiles. */
static int run_stream(const char * name) {
    struct infvsr_weights * w = NULL, * io = NULL;
    struct infvsr_vae * vae = vt_load(name, &w);
    struct infvsr_err err = { 0 };
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", VAE_FIXTURE_DIR, name);
    CHECK_EQ_INT(infvsr_weights_open(path, &io, &err), INFVSR_OK);
    if (!io) return 0;
    const struct infvsr_tensor * f0 = io_get(io, "frames_%d", 0);
    struct infvsr_vae_session_params p = infvsr_vae_session_default_params();
    p.height            = (int)f0->shape[2];
    p.width             = (int)f0->shape[3];
    p.tile_threshold_px = meta_int(io, "tile_threshold", 1024);
    p.tile_latent       = meta_int(io, "tile", 128);
    p.stride_latent     = meta_int(io, "stride", 110);
    struct infvsr_vae_session * s = NULL;
    CHECK_EQ_INT(infvsr_vae_session_open(vae, &p, &s, &err), INFVSR_OK);
    int n_tiles = s ? infvsr_vae_session_n_tiles(s) : 0;
    CHECK_EQ_INT(n_tiles, meta_int(io, "n_tiles", -1));
    int n_chunks = meta_int(io, "n_chunks", 0);
    CHECK(n_chunks >= 4);
    for (int i = 0; s && i < n_chunks; i++) {
        const struct infvsr_tensor * frames = io_get(io, "frames_%d", i);
        const struct infvsr_tensor * lat_ref = io_get(io, "latents_%d", i);
        const struct infvsr_tensor * dec_ref = io_get(io, "decoded_%d", i);
        if (!frames || !lat_ref || !dec_ref) break;
        struct infvsr_tensor lat = { 0 }, dec = { 0 };
        infvsr_tensor_alloc(&lat, "latents", INFVSR_TYPE_F32, 4, lat_ref->shape);
        infvsr_tensor_alloc(&dec, "decoded", INFVSR_TYPE_F32, 4, dec_ref->shape);
        CHECK_EQ_INT(infvsr_vae_encode_n_latents(frames->shape[1], i == 0), lat_ref->shape[1]);
        enum infvsr_status st = infvsr_vae_encode_chunk(s, frames, i == 0, &lat, &err);
        CHECK_MSG(st == INFVSR_OK, "encode chunk %d: %s", i, err.msg);
        double e_enc = rel_err_f32(lat.data, lat_ref->data, (size_t)infvsr_tensor_numel(&lat));
        CHECK_EQ_INT(infvsr_vae_decode_n_frames(s, lat_ref->shape[1]), dec_ref->shape[1]);
        st = infvsr_vae_decode_chunk(s, lat_ref, &dec, &err);
        CHECK_MSG(st == INFVSR_OK, "decode chunk %d: %s", i, err.msg);
        double e_dec = rel_err_f32(dec.data, dec_ref->data, (size_t)infvsr_tensor_numel(&dec));
        printf("  %s chunk %d: %lld frames -> %lld latents rel err %.2e; decode rel err %.2e\n", name, i,
               (long long)frames->shape[1], (long long)lat_ref->shape[1], e_enc, e_dec);
        CHECK_MSG(e_enc <= TOL, "%s chunk %d encode rel err %.3e", name, i, e_enc);
        CHECK_MSG(e_dec <= TOL, "%s chunk %d decode rel err %.3e", name, i, e_dec);
        infvsr_tensor_release(&lat);
        infvsr_tensor_release(&dec);
    }
    /* A scene cut: chunk 0 again with first_of_scene must reproduce the stream start
     * (encoder and decoder caches reset), however much was streamed before. */
    const struct infvsr_tensor * lat0 = io_get(io, "latents_%d", 0), * dec0 = io_get(io, "decoded_%d", 0);
    if (s && f0 && lat0 && dec0) {
        struct infvsr_tensor lat = { 0 }, dec = { 0 };
        infvsr_tensor_alloc(&lat, "latents", INFVSR_TYPE_F32, 4, lat0->shape);
        infvsr_tensor_alloc(&dec, "decoded", INFVSR_TYPE_F32, 4, dec0->shape);
        CHECK_EQ_INT(infvsr_vae_encode_chunk(s, f0, true, &lat, &err), INFVSR_OK);
        CHECK_EQ_INT(infvsr_vae_decode_n_frames(s, lat0->shape[1]), dec0->shape[1]);
        CHECK_EQ_INT(infvsr_vae_decode_chunk(s, lat0, &dec, &err), INFVSR_OK);
        double e_enc = rel_err_f32(lat.data, lat0->data, (size_t)infvsr_tensor_numel(&lat));
        double e_dec = rel_err_f32(dec.data, dec0->data, (size_t)infvsr_tensor_numel(&dec));
        printf("  %s after a scene cut: encode rel err %.2e, decode rel err %.2e\n", name, e_enc, e_dec);
        CHECK(e_enc <= TOL && e_dec <= TOL);
        infvsr_tensor_release(&lat);
        infvsr_tensor_release(&dec);
    }
    if (s) {
        printf("  %s: %d tile(s), cache %zu bytes, scratch %zu bytes\n", name, n_tiles,
               infvsr_vae_session_cache_bytes(s), infvsr_vae_session_scratch_bytes(s));
    }
    infvsr_vae_session_close(s);
    infvsr_vae_free(vae);
    infvsr_weights_close(io);
    infvsr_weights_close(w);
    return n_tiles;
}

static void test_stream_untiled_f32_nested(void) { CHECK_EQ_INT(run_stream("vae_plain"), 1); }
static void test_stream_tiled_bf16_flat(void) { CHECK(run_stream("vae_tiled") >= 4); }

/* Appendix C: (channels, frames, spatial shift) of every cached conv, written out here
 * independently of the model builder. Encoder then decoder, in slot order. */
static size_t appendix_c_floats(int d, size_t H, size_t W) {
    struct { int c, frames, shift, count; } rows[] = {
        { 3, 2, 0, 1 },          /* enc conv1 */
        { d, 2, 0, 4 },          /* downsamples.0/.1 */
        { d, 2, 1, 1 }, { 2 * d, 2, 1, 3 },          /* .3 (shortcut block), .4 */
        { 2 * d, 1, 2, 1 },      /* .5 time conv */
        { 2 * d, 2, 2, 1 }, { 4 * d, 2, 2, 3 },      /* .6, .7 */
        { 4 * d, 1, 3, 1 },      /* .8 time conv */
        { 4 * d, 2, 3, 8 + 1 },  /* .9, .10, middle.0/.2, head */
        { 16, 2, 3, 1 },         /* dec conv1 */
        { 4 * d, 2, 3, 4 + 6 + 1 },                  /* middle.0/.2, upsamples.0-.2, .3 time conv */
        { 2 * d, 2, 2, 1 }, { 4 * d, 2, 2, 5 + 1 },  /* .4, .5/.6, .7 time conv */
        { 2 * d, 2, 1, 6 },      /* .8-.10 */
        { d, 2, 0, 6 + 1 },      /* .12-.14, head */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        total += (size_t)rows[i].count * rows[i].c * rows[i].frames * (H >> rows[i].shift) * (W >> rows[i].shift);
    }
    return total;
}

static void test_slots_and_cache_bytes(void) {
    struct infvsr_weights * w = NULL;
    struct infvsr_vae * vae = vt_load("vae_plain", &w);
    struct infvsr_err err = { 0 };
    CHECK_EQ_INT(infvsr_vae_n_slots(vae), 24 + 32);
    int found = 0;
    for (int i = 0; i < infvsr_vae_n_slots(vae); i++) {
        const char * n = infvsr_vae_slot_name(vae, i);
        found += strcmp(n, "vae.enc.downsamples.3.residual.2") == 0;
        found += strcmp(n, "vae.enc.downsamples.8.time_conv") == 0;
        found += strcmp(n, "vae.dec.upsamples.3.time_conv") == 0;
        found += strcmp(n, "vae.dec.head.2") == 0;
    }
    CHECK_EQ_INT(found, 4);
    CHECK(infvsr_vae_slot_name(vae, 56) == NULL);
    struct infvsr_vae_session_params p = infvsr_vae_session_default_params();
    p.height = 48;
    p.width  = 80;
    struct infvsr_vae_session * s = NULL;
    CHECK_EQ_INT(infvsr_vae_session_open(vae, &p, &s, &err), INFVSR_OK);
    if (s) {
        size_t want = appendix_c_floats(8, 48, 80) * sizeof(float);
        size_t got  = infvsr_vae_session_cache_bytes(s);
        CHECK_MSG(got >= want && got <= want + 56 * 64, "cache bytes %zu, Appendix C gives %zu", got, want);
        CHECK_EQ_INT(infvsr_vae_session_n_tiles(s), 1);
    }
    infvsr_vae_session_close(s);
    infvsr_vae_free(vae);
    infvsr_weights_close(w);
}

/* Rewrites the flat fixture with one change and expects INFVSR_ERR_MODEL naming `key`. */
static void expect_bad_model(const char * what, const char * drop, const char * extra, const char * reshape,
                             const char * key) {
    struct infvsr_weights * w = NULL;
    struct infvsr_err err = { 0 };
    char path[1024], out[1024];
    snprintf(path, sizeof path, "%s/vae_tiled.pth", VAE_FIXTURE_DIR);
    snprintf(out, sizeof out, "%s/vae_bad_%s.safetensors", VAE_FIXTURE_DIR, what);
    CHECK_EQ_INT(infvsr_weights_open(path, &w, &err), INFVSR_OK);
    if (!w) return;
    size_t n = infvsr_weights_count(w), k = 0;
    struct infvsr_tensor * ts = calloc(n + 1, sizeof *ts);
    for (size_t i = 0; i < n; i++) {
        const char * name = infvsr_weights_key_at(w, i);
        if (drop && strcmp(name, drop) == 0) continue;
        ts[k] = *infvsr_weights_at(w, i);
        snprintf(ts[k].name, sizeof ts[k].name, "%s", name);
        if (reshape && strcmp(name, reshape) == 0) ts[k].shape[0] -= 1;
        k++;
    }
    if (extra) {
        ts[k] = *infvsr_weights_at(w, 0);
        snprintf(ts[k].name, sizeof ts[k].name, "%s", extra);
        k++;
    }
    CHECK_EQ_INT(infvsr_safetensors_write(out, ts, k, &err), INFVSR_OK);
    free(ts);
    infvsr_weights_close(w);
    struct infvsr_weights * bad = NULL;
    struct infvsr_vae * vae = NULL;
    struct infvsr_vae_config cfg = vt_tiny_config();
    CHECK_EQ_INT(infvsr_weights_open(out, &bad, &err), INFVSR_OK);
    if (!bad) return;
    CHECK_EQ_INT(infvsr_vae_load(bad, &cfg, vt_backend(), &vae, &err), INFVSR_ERR_MODEL);
    CHECK(vae == NULL);
    CHECK_STR_CONTAINS(err.msg, key);
    printf("  %s: %s\n", what, err.msg);
    infvsr_weights_close(bad);
}

static void test_strict_keys(void) {
    expect_bad_model("missing", "decoder.head.2.bias", NULL, NULL, "decoder.head.2.bias");
    expect_bad_model("extra", NULL, "decoder.extra.weight", NULL, "decoder.extra.weight");
    expect_bad_model("shape", NULL, NULL, "encoder.middle.1.to_qkv.bias", "encoder.middle.1.to_qkv.bias");
}

static void test_bad_inputs(void) {
    struct infvsr_weights * w = NULL;
    struct infvsr_vae * vae = vt_load("vae_plain", &w);
    struct infvsr_err err = { 0 };
    struct infvsr_vae_session_params p = infvsr_vae_session_default_params();
    struct infvsr_vae_session * s = NULL;
    p.height = 40;   /* not a multiple of 16 */
    p.width  = 80;
    CHECK_EQ_INT(infvsr_vae_session_open(vae, &p, &s, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "multiples of 16");
    p.height = 48;
    CHECK_EQ_INT(infvsr_vae_session_open(vae, &p, &s, &err), INFVSR_OK);
    struct infvsr_tensor frames = { 0 }, lat = { 0 };
    int64_t fs[4] = { 3, 8, 48, 80 }, ls[4] = { 16, 2, 6, 10 };
    infvsr_tensor_alloc(&frames, "frames", INFVSR_TYPE_F32, 4, fs);
    infvsr_tensor_alloc(&lat, "latents", INFVSR_TYPE_F32, 4, ls);
    /* 8 frames cannot start a scene (needs 1 mod 4) */
    CHECK_EQ_INT(infvsr_vae_encode_chunk(s, &frames, true, &lat, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "1 mod 4");
    /* a continuation chunk before any scene start */
    CHECK_EQ_INT(infvsr_vae_encode_chunk(s, &frames, false, &lat, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "first_of_scene");
    /* wrong latent frame count for decode output */
    struct infvsr_tensor dec = { 0 };
    int64_t ds[4] = { 3, 8, 48, 80 };
    infvsr_tensor_alloc(&dec, "decoded", INFVSR_TYPE_F32, 4, ds);
    CHECK_EQ_INT(infvsr_vae_decode_chunk(s, &lat, &dec, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "need 5");
    infvsr_tensor_release(&frames);
    infvsr_tensor_release(&lat);
    infvsr_tensor_release(&dec);
    infvsr_vae_session_close(s);
    infvsr_vae_free(vae);
    infvsr_weights_close(w);
}

/* bf16 frames are widened exactly: encoding bf16 frames equals encoding the same values
 * stored as f32, bit for bit. */
static void test_bf16_frames(void) {
    struct infvsr_weights * w = NULL;
    struct infvsr_vae * vae = vt_load("vae_plain", &w);
    struct infvsr_err err = { 0 };
    struct infvsr_vae_session_params p = infvsr_vae_session_default_params();
    p.height = 32;
    p.width  = 48;
    int64_t fs[4] = { 3, 5, 32, 48 }, ls[4] = { 16, 2, 4, 6 };
    struct infvsr_tensor f32 = { 0 }, b16 = { 0 }, la = { 0 }, lb = { 0 };
    infvsr_tensor_alloc(&f32, "f32", INFVSR_TYPE_F32, 4, fs);
    infvsr_tensor_alloc(&b16, "bf16", INFVSR_TYPE_BF16, 4, fs);
    infvsr_tensor_alloc(&la, "la", INFVSR_TYPE_F32, 4, ls);
    infvsr_tensor_alloc(&lb, "lb", INFVSR_TYPE_F32, 4, ls);
    size_t n = (size_t)infvsr_tensor_numel(&f32);
    float * fd = f32.data;
    uint16_t * bd = b16.data;
    test_fill_uniform(fd, n, -1.0f, 1.0f, 7);
    for (size_t i = 0; i < n; i++) {
        bd[i] = infvsr_f32_to_bf16(fd[i]);
        fd[i] = infvsr_bf16_to_f32(bd[i]);
    }
    struct infvsr_vae_session * s = NULL;
    CHECK_EQ_INT(infvsr_vae_session_open(vae, &p, &s, &err), INFVSR_OK);
    if (s) {
        CHECK_EQ_INT(infvsr_vae_encode_chunk(s, &f32, true, &la, &err), INFVSR_OK);
        CHECK_EQ_INT(infvsr_vae_encode_chunk(s, &b16, true, &lb, &err), INFVSR_OK);
        CHECK(memcmp(la.data, lb.data, infvsr_tensor_nbytes(&la)) == 0);
        CHECK(((const float *)la.data)[0] != 0.0f);   /* really computed */
    }
    infvsr_vae_session_close(s);
    infvsr_tensor_release(&f32);
    infvsr_tensor_release(&b16);
    infvsr_tensor_release(&la);
    infvsr_tensor_release(&lb);
    infvsr_vae_free(vae);
    infvsr_weights_close(w);
}

static const struct test_case tests[] = {
    TEST(test_bf16_frames),
    TEST(test_slots_and_cache_bytes),
    TEST(test_strict_keys),
    TEST(test_bad_inputs),
    TEST(test_stream_untiled_f32_nested),
    TEST(test_stream_tiled_bf16_flat),
    { 0 },
};

int main(int argc, char ** argv) {
    int rc = test_main(argc, argv, tests);
    infvsr_backend_free(vt_backend());
    return rc;
}
