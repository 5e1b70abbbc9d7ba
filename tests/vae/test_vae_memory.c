/* Memory stays flat over a long stream: the tiny VAE encodes and decodes 200 chunks in one
 * session (one scene); the resident set size after chunk 200 must be within 1% of the one
 * after chunk 20 and, on a backend with its own memory (devsim), the backend's free memory
 * after chunk 200 must equal the one after chunk 100 exactly (nothing allocated per
 * chunk). The numbers, and the session's cache/scratch bytes, are printed. The backend
 * comes from --backend/--precision (vae_test_util.h). */
#include <string.h>

#include "check.h"
#include "vae_test_util.h"

#define N_CHUNKS 200
#define H 32
#define W 48

static long rss_kib(void) {
    FILE * f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
    }
    if (f) fclose(f);
    return kib;
}

static size_t backend_free(struct infvsr_backend * be) {
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    return caps.mem_free;
}

static void test_rss_flat_over_200_chunks(void) {
    struct infvsr_backend * be = tb_backend();
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    struct infvsr_weights * w = NULL;
    struct infvsr_vae * vae = vt_load("vae_plain", &w);
    struct infvsr_err err = { 0 };
    struct infvsr_vae_session_params p = infvsr_vae_session_default_params();
    p.height = H;
    p.width  = W;
    struct infvsr_vae_session * s = NULL;
    CHECK_EQ_INT(infvsr_vae_session_open(vae, &p, &s, &err), INFVSR_OK);
    if (!s) return;
    struct infvsr_tensor host = { 0 };
    int64_t fs[4] = { 3, 5, H, W }, ls[4] = { 16, 2, H / 8, W / 8 };
    infvsr_tensor_alloc(&host, "frames", INFVSR_TYPE_F32, 4, fs);
    struct infvsr_tensor frames = vt_alloc(be, "frames", INFVSR_TYPE_F32, fs);
    struct infvsr_tensor lat = vt_alloc(be, "latents", INFVSR_TYPE_F32, ls);
    struct infvsr_tensor dec = vt_alloc(be, "decoded", INFVSR_TYPE_F32, fs);
    long rss20 = -1, rss200 = -1;
    size_t free100 = 0, free200 = 0;
    for (int i = 0; i < N_CHUNKS; i++) {
        bool first = i == 0;
        /* The scene's first chunk has 5 frames (1 mod 4, 2 latents), the rest 4 (1 latent):
         * views of the same buffers. Short chunks keep 200 of them fast; every call still
         * goes through all caches, the time convs and the attention. */
        struct infvsr_tensor f = frames, l = lat, d = dec;
        f.shape[1] = d.shape[1] = first ? 5 : 4;
        l.shape[1] = first ? 2 : 1;
        test_fill_uniform(host.data, (size_t)infvsr_tensor_numel(&f), -1.0f, 1.0f, 1000u + (uint64_t)i);
        enum infvsr_status st = infvsr_backend_tensor_set(be, &frames, host.data, 0, infvsr_tensor_nbytes(&f), &err);
        if (st == INFVSR_OK) st = infvsr_vae_encode_chunk(s, &f, first, &l, &err);
        if (st == INFVSR_OK) st = infvsr_vae_decode_chunk(s, &l, &d, &err);
        if (st == INFVSR_OK) st = infvsr_backend_synchronize(be, &err);
        if (st != INFVSR_OK) {
            CHECK_MSG(0, "chunk %d: %s", i, err.msg);
            break;
        }
        if (i + 1 == 20) rss20 = rss_kib();
        if (i + 1 == N_CHUNKS / 2) free100 = backend_free(be);
        if (i + 1 == N_CHUNKS) rss200 = rss_kib(), free200 = backend_free(be);
    }
    printf("  on %s: VmRSS after 20 chunks: %ld KiB, after %d chunks: %ld KiB (cache %zu bytes, scratch %zu bytes, "
           "session %zu bytes)\n", caps.name, rss20, N_CHUNKS, rss200, infvsr_vae_session_cache_bytes(s),
           infvsr_vae_session_scratch_bytes(s), infvsr_vae_session_bytes(s));
    CHECK(rss20 > 0 && rss200 > 0);
    CHECK_MSG(rss200 <= rss20 + rss20 / 100, "RSS grew from %ld to %ld KiB", rss20, rss200);
    if (caps.mem_total > 0) {
        printf("  backend free memory after %d chunks: %zu bytes, after %d chunks: %zu bytes\n", N_CHUNKS / 2,
               free100, N_CHUNKS, free200);
        CHECK(free100 > 0);
        CHECK_MSG(free200 == free100, "backend free memory changed from %zu to %zu bytes", free100, free200);
    }
    infvsr_tensor_release(&host);
    infvsr_backend_tensor_free(be, &frames);
    infvsr_backend_tensor_free(be, &lat);
    infvsr_backend_tensor_free(be, &dec);
    infvsr_vae_session_close(s);
    infvsr_vae_free(vae);
    infvsr_weights_close(w);
}

static const struct test_case tests[] = {
    TEST(test_rss_flat_over_200_chunks),
    { 0 },
};

int main(int argc, char ** argv) {
    tb_parse_args(&argc, argv);
    int rc = test_main(argc, argv, tests);
    tb_free_backends();
    return rc;
}
