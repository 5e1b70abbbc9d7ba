/* Visual encoder (engine/visual) vs the PyTorch reference of tests/reference/visual_ref.py.
 *
 * Fixtures (written by visual_ref.py into the build dir, FIXTURES_SETUP tests): per config, a
 * random-weight ram.pth ({"model": ...} layout, with buffers and unrelated RAM keys), dape.pth
 * (24 or 8 LoRA pairs + an unrelated key), and case.safetensors with the u8 frame, the prepared
 * image, the Swin tokens, the context and the f32 merge of layers.0.blocks.1.
 * The tiny fixture also has the broken checkpoints the error tests load.
 *
 * `test_visual tiny` runs the tiny-config tests, `test_visual full` the full-size parity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "infvsr/model_config.h"
#include "infvsr/visual.h"
#include "infvsr/weights.h"
#include "ops.h"

#define PARITY_TOL 1e-4

struct fixture {
    struct infvsr_model_config cfg;
    struct infvsr_weights *    ram, * dape, * cse;
    struct infvsr_backend *    be;
    struct infvsr_visual *     vis;
};

static void path_of(char * buf, size_t n, const char * name, const char * file) {
    snprintf(buf, n, "%s/%s/%s", VISUAL_FIXTURE_DIR, name, file);
}

static struct infvsr_weights * open_weights(const char * name, const char * file) {
    char path[1024];
    struct infvsr_err err = { 0 };
    struct infvsr_weights * w = NULL;
    path_of(path, sizeof path, name, file);
    if (infvsr_weights_open(path, &w, &err) != INFVSR_OK) fprintf(stderr, "  open %s: %s\n", path, err.msg);
    return w;
}

static void fixture_close(struct fixture * f) {
    infvsr_visual_free(f->vis);
    if (f->be) infvsr_backend_free(f->be);
    infvsr_weights_close(f->ram);
    infvsr_weights_close(f->dape);
    infvsr_weights_close(f->cse);
    memset(f, 0, sizeof *f);
}

/* name: "tiny" or "full" (fixture folder and config/models/infvsr-<name>.json). */
static bool fixture_open(struct fixture * f, const char * name) {
    memset(f, 0, sizeof *f);
    char cfg_path[1024];
    struct infvsr_err err = { 0 };
    snprintf(cfg_path, sizeof cfg_path, "%s/config/models/infvsr-%s.json", INFVSR_SOURCE_DIR, name);
    if (infvsr_model_config_load(cfg_path, &f->cfg, &err) != INFVSR_OK) {
        fprintf(stderr, "  config %s: %s\n", cfg_path, err.msg);
        return false;
    }
    f->ram  = open_weights(name, "ram.pth");
    f->dape = open_weights(name, "dape.pth");
    f->cse  = open_weights(name, "case.safetensors");
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    if (!f->ram || !f->dape || !f->cse || infvsr_cpu_backend_init(&p, &f->be) != INFVSR_OK) {
        fixture_close(f);
        return false;
    }
    if (infvsr_visual_load(f->ram, f->dape, &f->cfg.visual, f->be, &f->vis, &err) != INFVSR_OK) {
        fprintf(stderr, "  visual load: %s\n", err.msg);
        fixture_close(f);
        return false;
    }
    return true;
}

static const struct infvsr_tensor * ref(const struct fixture * f, const char * key) {
    const struct infvsr_tensor * t = infvsr_weights_find(f->cse, key);
    if (!t) fprintf(stderr, "  case.safetensors has no '%s'\n", key);
    return t;
}

static bool alloc2(struct infvsr_tensor * t, int64_t a, int64_t b) {
    int64_t s[2] = { a, b };
    return infvsr_tensor_alloc(t, NULL, INFVSR_TYPE_F32, 2, s) == INFVSR_OK;
}

static bool alloc_image(struct infvsr_tensor * t, const struct infvsr_visual * v) {
    int64_t s[3] = { 3, infvsr_visual_img_size(v), infvsr_visual_img_size(v) };
    return infvsr_tensor_alloc(t, NULL, INFVSR_TYPE_F32, 3, s) == INFVSR_OK;
}

static void report(const char * what, const float * got, const float * want, size_t n) {
    double e = rel_err_f32(got, want, n);
    printf("  %-28s rel err %.3e  (first: %.6f vs %.6f)\n", what, e, got[0], want[0]);
}

/* Encodes (from the prepared image when from_frame is false) and checks tokens and context. */
static void check_parity(const char * name, bool from_frame) {
    struct fixture f;
    CHECK(fixture_open(&f, name));
    if (!f.vis) return;
    const struct infvsr_tensor * r_img = ref(&f, "image"), * r_tok = ref(&f, "tokens"), * r_ctx = ref(&f, "context");
    const struct infvsr_tensor * frame = ref(&f, "frame");
    CHECK(r_img && r_tok && r_ctx && frame);
    struct infvsr_tensor img = { 0 }, tok = { 0 }, ctx = { 0 };
    struct infvsr_err err = { 0 };
    int n = infvsr_visual_n_tokens(f.vis);
    CHECK_EQ_INT(n, r_ctx ? r_ctx->shape[0] : -1);
    if (r_img && r_tok && r_ctx && frame && alloc_image(&img, f.vis) &&
        alloc2(&tok, n, infvsr_visual_token_dim(f.vis)) && alloc2(&ctx, n, infvsr_visual_out_dim(f.vis))) {
        const struct infvsr_tensor * input = r_img;
        if (from_frame) {
            CHECK_MSG(infvsr_visual_prepare_reference(f.vis, frame, &img, &err) == INFVSR_OK, "%s", err.msg);
            report("prepared image", img.data, r_img->data, (size_t)infvsr_tensor_numel(&img));
            CHECK_REL_ERR((const float *)img.data, (const float *)r_img->data, (size_t)infvsr_tensor_numel(&img), 1e-5);
            input = &img;
        }
        CHECK_MSG(infvsr_visual_encode(f.vis, input, &tok, &ctx, &err) == INFVSR_OK, "%s", err.msg);
        CHECK_EQ_INT(infvsr_tensor_numel(&tok), infvsr_tensor_numel(r_tok));
        CHECK_EQ_INT(infvsr_tensor_numel(&ctx), infvsr_tensor_numel(r_ctx));
        if (infvsr_tensor_numel(&ctx) == infvsr_tensor_numel(r_ctx)) {
            report("tokens [145, C]", tok.data, r_tok->data, (size_t)infvsr_tensor_numel(&tok));
            report("context [145, out]", ctx.data, r_ctx->data, (size_t)infvsr_tensor_numel(&ctx));
            CHECK_REL_ERR((const float *)tok.data, (const float *)r_tok->data, (size_t)infvsr_tensor_numel(&tok),
                          PARITY_TOL);
            CHECK_REL_ERR((const float *)ctx.data, (const float *)r_ctx->data, (size_t)infvsr_tensor_numel(&ctx),
                          PARITY_TOL);
            /* token 0 is the mean of tokens 1..N: also checked directly, independent of PyTorch */
            const float * t = tok.data;
            int64_t c = infvsr_visual_token_dim(f.vis);
            double worst = 0;
            for (int64_t j = 0; j < c; j++) {
                double m = 0;
                for (int i = 1; i < n; i++) m += t[i * c + j];
                m /= (n - 1);
                double d = fabs(m - t[j]);
                if (d > worst) worst = d;
            }
            CHECK_MSG(worst < 1e-5, "token 0 differs from the mean by %g", worst);
        }
    }
    infvsr_tensor_release(&img);
    infvsr_tensor_release(&tok);
    infvsr_tensor_release(&ctx);
    fixture_close(&f);
}

static void test_tiny_encode_image(void) { check_parity("tiny", false); }
static void test_tiny_encode_frame(void) { check_parity("tiny", true); }
static void test_full_encode_frame(void) { check_parity("full", true); }

/* Fetches a tensor of the DAPE or RAM file widened to f32 (malloc'ed). */
static float * widened(const struct infvsr_weights * w, const char * key, int64_t * numel) {
    const struct infvsr_tensor * t = infvsr_weights_find(w, key);
    if (!t) {
        fprintf(stderr, "  missing %s\n", key);
        return NULL;
    }
    *numel   = infvsr_tensor_numel(t);
    float * x = malloc((size_t)*numel * sizeof *x);
    if (x) infvsr_convert_to_f32(x, t->data, t->dtype, (size_t)*numel);
    return x;
}

/* For every block: the f32 merge equals W + B.A / r computed here in double (q, v rows), K rows
 * are bit-identical to the file, and the model's BF16 weight is the RNE rounding of that merge.
 * For layers.0.blocks.1 the merge also matches PyTorch's. */
static void check_merge(const char * name) {
    struct fixture f;
    CHECK(fixture_open(&f, name));
    if (!f.vis) return;
    const int r = f.cfg.visual.lora_rank;
    int n_blocks = 0;
    for (int s = 0; s < 4; s++) {
        for (int b = 0; b < f.cfg.visual.depths[s]; b++, n_blocks++) {
            char kw[160], ka[160], kb[160];
            snprintf(kw, sizeof kw, "model.visual_encoder.layers.%d.blocks.%d.attn.qkv.weight", s, b);
            snprintf(ka, sizeof ka, "visual_encoder.layers.%d.blocks.%d.attn.qkv.lora_A", s, b);
            snprintf(kb, sizeof kb, "visual_encoder.layers.%d.blocks.%d.attn.qkv.lora_B", s, b);
            int64_t nw = 0, na = 0, nb = 0;
            float * w = widened(f.ram, kw, &nw), * a = widened(f.dape, ka, &na), * bb = widened(f.dape, kb, &nb);
            const int64_t c = f.cfg.visual.embed_dim << s;
            struct infvsr_tensor merged = { 0 };
            struct infvsr_err err = { 0 };
            CHECK(w && a && bb && nw == 3 * c * c && alloc2(&merged, 3 * c, c));
            if (w && a && bb && merged.data &&
                infvsr_visual_lora_merge_f32(infvsr_weights_find(f.ram, kw), infvsr_weights_find(f.dape, ka),
                                             infvsr_weights_find(f.dape, kb), r, &merged, &err) == INFVSR_OK) {
                const float * m = merged.data;
                float * want = malloc((size_t)nw * sizeof *want);
                for (int64_t i = 0; i < 3 * c; i++) {
                    for (int64_t j = 0; j < c; j++) {
                        double d = 0;
                        int part = (int)(i / c); /* 0 q, 1 k, 2 v */
                        for (int k = 0; part != 1 && k < r; k++) {
                            int64_t brow = (part == 0 ? i : i - c), arow = (part == 0 ? k : r + k);
                            d += (double)bb[brow * r + k] * (double)a[arow * c + j];
                        }
                        want[i * c + j] = (float)((double)w[i * c + j] + d / r);
                    }
                }
                CHECK_REL_ERR(m, want, (size_t)nw, 1e-6);
                CHECK_MSG(memcmp(m + c * c, w + c * c, (size_t)(c * c) * sizeof *m) == 0, "K rows changed (%s)", kw);
                /* the delta is not negligible: merged q differs from W by > 1% */
                CHECK(rel_err_f32(m, w, (size_t)(c * c)) > 1e-2);
                const struct infvsr_tensor * q = infvsr_visual_qkv_weight(f.vis, s, b);
                CHECK(q && q->dtype == INFVSR_TYPE_BF16 && infvsr_tensor_numel(q) == nw);
                if (q && q->dtype == INFVSR_TYPE_BF16) {
                    const uint16_t * h = q->data;
                    int64_t bad = 0;
                    for (int64_t i = 0; i < nw; i++) bad += h[i] != infvsr_f32_to_bf16(m[i]);
                    CHECK_MSG(bad == 0, "%lld bf16 weights differ from the rounded merge (%s)", (long long)bad, kw);
                }
                if (s == 0 && b == 1) {
                    const struct infvsr_tensor * pt = ref(&f, "merged_qkv_l0b1_f32");
                    CHECK(pt && infvsr_tensor_numel(pt) == nw);
                    if (pt) CHECK_REL_ERR(m, (const float *)pt->data, (size_t)nw, 1e-6);
                }
                free(want);
            } else {
                CHECK_MSG(false, "merge failed: %s", err.msg);
            }
            free(w);
            free(a);
            free(bb);
            infvsr_tensor_release(&merged);
        }
    }
    CHECK_EQ_INT(n_blocks, name[0] == 't' ? 8 : 24);
    fixture_close(&f);
}

static void test_tiny_merge(void) { check_merge("tiny"); }
static void test_full_merge(void) { check_merge("full"); }

/* Loads tiny with one file replaced; expects INFVSR_ERR_MODEL and a message with `needle`. */
static void expect_load_error(const char * ram_file, const char * dape_file, const char * needle) {
    struct fixture f;
    memset(&f, 0, sizeof f);
    char cfg_path[1024];
    struct infvsr_err err = { 0 };
    snprintf(cfg_path, sizeof cfg_path, "%s/config/models/infvsr-tiny.json", INFVSR_SOURCE_DIR);
    CHECK(infvsr_model_config_load(cfg_path, &f.cfg, &err) == INFVSR_OK);
    f.ram  = open_weights("tiny", ram_file);
    f.dape = open_weights("tiny", dape_file);
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    CHECK(f.ram && f.dape && infvsr_cpu_backend_init(&p, &f.be) == INFVSR_OK);
    if (f.ram && f.dape && f.be) {
        enum infvsr_status st = infvsr_visual_load(f.ram, f.dape, &f.cfg.visual, f.be, &f.vis, &err);
        CHECK_EQ_INT(st, INFVSR_ERR_MODEL);
        CHECK(f.vis == NULL);
        CHECK_STR_CONTAINS(err.msg, needle);
        printf("  %s + %s -> %s\n", ram_file, dape_file, err.msg);
    }
    fixture_close(&f);
}

static void test_tiny_err_missing_lora_b(void) {
    expect_load_error("ram.pth", "dape_missing_b.pth", "visual_encoder.layers.1.blocks.1.attn.qkv.lora_B");
}
static void test_tiny_err_lora_rank(void) {
    expect_load_error("ram.pth", "dape_rank_half.pth", "visual_encoder.layers.1.blocks.1.attn.qkv.lora_A");
    expect_load_error("ram.pth", "dape_rank_half.pth", "rank 8");
}
static void test_tiny_err_qkv_shape(void) {
    expect_load_error("ram_bad_qkv.pth", "dape.pth", "model.visual_encoder.layers.2.blocks.0.attn.qkv.weight");
}
static void test_tiny_err_missing_key(void) {
    expect_load_error("ram_missing_key.pth", "dape.pth", "model.visual_encoder.norm.bias");
}
static void test_tiny_err_unexpected_key(void) {
    expect_load_error("ram_unexpected_key.pth", "dape.pth", "model.visual_encoder.layers.0.blocks.0.attn.extra");
}

/* Without DAPE (dape = NULL) qkv is used as stored; the context then differs from the merged one. */
static void test_tiny_no_dape(void) {
    struct fixture f;
    CHECK(fixture_open(&f, "tiny"));
    if (!f.vis) return;
    struct infvsr_visual * v = NULL;
    struct infvsr_tensor ctx = { 0 };
    struct infvsr_err err = { 0 };
    const struct infvsr_tensor * img = ref(&f, "image"), * r_ctx = ref(&f, "context_no_dape");
    const struct infvsr_tensor * merged_ctx = ref(&f, "context");
    CHECK(img && r_ctx && merged_ctx);
    if (img && r_ctx && merged_ctx) {
        CHECK_MSG(infvsr_visual_load(f.ram, NULL, &f.cfg.visual, f.be, &v, &err) == INFVSR_OK, "%s", err.msg);
        const struct infvsr_tensor * q = v ? infvsr_visual_qkv_weight(v, 0, 0) : NULL;
        CHECK(q && q->dtype == INFVSR_TYPE_F32 && !q->owns_data); /* the checkpoint's own tensor */
        if (v && alloc2(&ctx, infvsr_visual_n_tokens(v), infvsr_visual_out_dim(v))) {
            CHECK_MSG(infvsr_visual_encode(v, img, NULL, &ctx, &err) == INFVSR_OK, "%s", err.msg);
            size_t n = (size_t)infvsr_tensor_numel(&ctx);
            report("context without DAPE", ctx.data, r_ctx->data, n);
            CHECK_REL_ERR((const float *)ctx.data, (const float *)r_ctx->data, n, PARITY_TOL);
            CHECK(rel_err_f32(ctx.data, merged_ctx->data, n) > 1e-2);
        }
    }
    infvsr_tensor_release(&ctx);
    infvsr_visual_free(v);
    fixture_close(&f);
}

/* A flat state dict (no "model." prefix) in safetensors gives the same context. */
static void test_tiny_flat_layout(void) {
    struct fixture f;
    CHECK(fixture_open(&f, "tiny"));
    if (!f.vis) return;
    struct infvsr_weights * flat = open_weights("tiny", "ram_flat.safetensors");
    struct infvsr_visual * v = NULL;
    struct infvsr_tensor ctx = { 0 };
    struct infvsr_err err = { 0 };
    const struct infvsr_tensor * img = ref(&f, "image"), * r_ctx = ref(&f, "context");
    CHECK(flat && img && r_ctx);
    if (flat && img && r_ctx) {
        CHECK_MSG(infvsr_visual_load(flat, f.dape, &f.cfg.visual, f.be, &v, &err) == INFVSR_OK, "%s", err.msg);
        if (v && alloc2(&ctx, infvsr_visual_n_tokens(v), infvsr_visual_out_dim(v))) {
            CHECK_MSG(infvsr_visual_encode(v, img, NULL, &ctx, &err) == INFVSR_OK, "%s", err.msg);
            CHECK_REL_ERR((const float *)ctx.data, (const float *)r_ctx->data, (size_t)infvsr_tensor_numel(&ctx),
                          PARITY_TOL);
        }
    }
    infvsr_tensor_release(&ctx);
    infvsr_visual_free(v);
    infvsr_weights_close(flat);
    fixture_close(&f);
}

/* Bad encode inputs are errors, not crashes. */
static void test_tiny_err_bad_input(void) {
    struct fixture f;
    CHECK(fixture_open(&f, "tiny"));
    if (!f.vis) return;
    struct infvsr_tensor img = { 0 }, ctx = { 0 }, wrong = { 0 };
    struct infvsr_err err = { 0 };
    int n = infvsr_visual_n_tokens(f.vis);
    CHECK(alloc_image(&img, f.vis) && alloc2(&ctx, n, infvsr_visual_out_dim(f.vis)) && alloc2(&wrong, n, 3));
    CHECK_EQ_INT(infvsr_visual_encode(f.vis, &img, NULL, &wrong, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "context");
    CHECK_EQ_INT(infvsr_visual_prepare_reference(f.vis, &ctx, &img, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "U8 [H, W, 3]");
    infvsr_tensor_release(&img);
    infvsr_tensor_release(&ctx);
    infvsr_tensor_release(&wrong);
    fixture_close(&f);
}

static const struct test_case tests[] = {
    TEST(test_tiny_encode_image),
    TEST(test_tiny_encode_frame),
    TEST(test_tiny_merge),
    TEST(test_tiny_err_missing_lora_b),
    TEST(test_tiny_err_lora_rank),
    TEST(test_tiny_err_qkv_shape),
    TEST(test_tiny_err_missing_key),
    TEST(test_tiny_err_unexpected_key),
    TEST(test_tiny_err_bad_input),
    TEST(test_tiny_flat_layout),
    TEST(test_tiny_no_dape),
    TEST(test_full_encode_frame),
    TEST(test_full_merge),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
