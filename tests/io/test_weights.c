/* Checkpoint readers against fixtures written by PyTorch (tests/io/gen_fixtures.py):
 * every tensor's key, dtype, shape and sha256 must match what torch computed, every hostile
 * file must fail with a message naming the problem, and byte-level mutations of valid files
 * must never crash (run under ASan/UBSan in CI). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "infvsr/weights.h"
#include "infvsr/sha256.h"

static const char * fixture(const char * rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", FIXTURE_DIR, rel);
    return buf;
}

static json_t * load_manifest(void) {
    json_error_t e;
    json_t *     m = json_load_file(fixture("manifest.json"), 0, &e);
    CHECK_MSG(m != NULL, "cannot read %s: %s (run the io.fixtures test first)", fixture("manifest.json"), e.text);
    return m;
}

static void tensor_sha(const struct infvsr_tensor * t, char hex[65]) {
    infvsr_sha256_hex(t->data, infvsr_tensor_nbytes(t), hex);
}

/* ---- sha256: FIPS 180-4 / NIST CSRC example vectors ------------------------------------ */

static void test_sha256_nist(void) {
    static const struct { const char * msg, * hex; } v[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        infvsr_sha256_hex(v[i].msg, strlen(v[i].msg), hex);
        CHECK_MSG(strcmp(hex, v[i].hex) == 0, "sha256(\"%s\") = %s", v[i].msg, hex);
    }
    /* one million 'a', fed in uneven chunks to exercise the block buffering */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    infvsr_sha256_hex(a, sizeof a, hex);
    CHECK_STR_CONTAINS(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    static const size_t chunks[] = { 1, 63, 64, 65, 7, 128, 55, 56, 57 };
    struct infvsr_sha256 s;
    infvsr_sha256_init(&s);
    size_t done = 0;
    for (size_t k = 0; done < sizeof a; k++) {
        size_t n = chunks[k % 9] < sizeof a - done ? chunks[k % 9] : sizeof a - done;
        infvsr_sha256_update(&s, a + done, n);
        done += n;
    }
    uint8_t d[32];
    infvsr_sha256_final(&s, d);
    CHECK_EQ_INT(d[0], 0xcd);
    CHECK_EQ_INT(d[31], 0xd0);
}

/* ---- valid files ------------------------------------------------------------------------ */

static void check_good_file(const json_t * g) {
    const char *            rel = json_string_value(json_object_get(g, "file"));
    const json_t *          exp = json_object_get(g, "tensors");
    struct infvsr_weights * w   = NULL;
    struct infvsr_err       err = { 0 };
    enum infvsr_status      st  = infvsr_weights_open(fixture(rel), &w, &err);
    CHECK_MSG(st == INFVSR_OK, "%s: %s", rel, err.msg);
    if (st != INFVSR_OK) return;
    CHECK_MSG(infvsr_weights_count(w) == json_array_size(exp), "%s: %zu tensors, expected %zu", rel,
              infvsr_weights_count(w), json_array_size(exp));
    const char * fmt = json_string_value(json_object_get(g, "format")); /* "legacy", else by extension */
    CHECK_EQ_INT(infvsr_weights_format(w), fmt && strcmp(fmt, "legacy") == 0 ? INFVSR_WEIGHTS_TORCH_LEGACY
                                           : strstr(rel, ".safetensors")     ? INFVSR_WEIGHTS_SAFETENSORS
                                                                             : INFVSR_WEIGHTS_TORCH_ZIP);
    size_t         i;
    const json_t * e;
    json_array_foreach(exp, i, e) {
        const char *                 key = json_string_value(json_object_get(e, "key"));
        const struct infvsr_tensor * t   = infvsr_weights_find(w, key);
        CHECK_MSG(t != NULL, "%s: tensor '%s' not found", rel, key);
        if (!t) continue;
        CHECK_MSG(strcmp(infvsr_dtype_name(t->dtype), json_string_value(json_object_get(e, "dtype"))) == 0,
                  "%s: '%s' dtype %s", rel, key, infvsr_dtype_name(t->dtype));
        const json_t * shape = json_object_get(e, "shape");
        bool shape_ok = t->ndim == (int)json_array_size(shape);
        for (int d = 0; shape_ok && d < t->ndim; d++) shape_ok = t->shape[d] == json_integer_value(json_array_get(shape, (size_t)d));
        CHECK_MSG(shape_ok, "%s: '%s' shape mismatch (ndim %d)", rel, key, t->ndim);
        const char * want = json_string_value(json_object_get(e, "sha256")); /* null: too big to hash */
        if (want) {
            char hex[65];
            tensor_sha(t, hex);
            CHECK_MSG(strcmp(hex, want) == 0, "%s: '%s' data differs", rel, key);
        }
        CHECK_MSG((uintptr_t)t->data % infvsr_dtype_size(t->dtype) == 0, "%s: '%s' data misaligned", rel, key);
    }
    /* index order = file order for torch (pickle order) files: key_at/at agree with find */
    for (size_t k = 0; k < infvsr_weights_count(w); k++) {
        CHECK(infvsr_weights_find(w, infvsr_weights_key_at(w, k)) == infvsr_weights_at(w, k));
    }
    CHECK(infvsr_weights_find(w, "no.such.key") == NULL);
    CHECK(infvsr_weights_at(w, infvsr_weights_count(w)) == NULL);
    infvsr_weights_close(w);
}

static void test_good_fixtures(void) {
    json_t * m = load_manifest();
    if (!m) return;
    const json_t * good = json_object_get(m, "good");
    CHECK(json_array_size(good) >= 10);
    size_t         i;
    const json_t * g;
    json_array_foreach(good, i, g) check_good_file(g);
    json_decref(m);
}

/* ---- hostile files ------------------------------------------------------------------------ */

static void test_bad_fixtures(void) {
    json_t * m = load_manifest();
    if (!m) return;
    const json_t * bad = json_object_get(m, "bad");
    CHECK(json_array_size(bad) >= 20);
    size_t         i;
    const json_t * b;
    json_array_foreach(bad, i, b) {
        const char *            rel  = json_string_value(json_object_get(b, "file"));
        const json_t *          words = json_object_get(b, "expect"); /* a word, or a list of them */
        const char *            word = json_is_array(words) ? json_string_value(json_array_get(words, 0)) : json_string_value(words);
        const char *            path = fixture(rel);
        struct infvsr_weights * w    = (struct infvsr_weights *)&i; /* must be reset to NULL */
        struct infvsr_err       err  = { 0 };
        enum infvsr_status      st   = infvsr_weights_open(path, &w, &err);
        CHECK_MSG(st == INFVSR_ERR_FORMAT, "%s: status %d (%s)", rel, st, err.msg);
        CHECK_MSG(w == NULL, "%s: handle not cleared", rel);
        CHECK_EQ_INT(err.status, st);
        /* the message starts with the path; the useful word must be in the rest */
        size_t plen = strlen(path);
        CHECK_MSG(strncmp(err.msg, path, plen) == 0, "%s: message does not name the file: %s", rel, err.msg);
        const char * rest = strlen(err.msg) > plen ? err.msg + plen : "";
        CHECK_MSG(strstr(rest, word) != NULL, "%s: message \"%s\" lacks \"%s\"", rel, err.msg, word);
        for (size_t k = 1; k < json_array_size(words); k++) {
            const char * more = json_string_value(json_array_get(words, k));
            CHECK_MSG(strstr(rest, more) != NULL, "%s: message \"%s\" lacks \"%s\"", rel, err.msg, more);
        }
        if (st == INFVSR_OK) infvsr_weights_close(w);
    }
    json_decref(m);
}

static void test_missing_file(void) {
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    CHECK_EQ_INT(infvsr_weights_open(fixture("does/not/exist.pt"), &w, &err), INFVSR_ERR_IO);
    CHECK_STR_CONTAINS(err.msg, "exist.pt");
    CHECK_EQ_INT(infvsr_weights_open(FIXTURE_DIR, &w, &err), INFVSR_ERR_IO); /* a directory */
    CHECK_STR_CONTAINS(err.msg, "not a regular file");
}

/* ---- mutations: no input may crash the reader ---------------------------------------------- */

static bool read_file(const char * path, uint8_t ** data, size_t * n) {
    FILE * f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(*n ? *n : 1);
    bool ok = *data && fread(*data, 1, *n, f) == *n;
    fclose(f);
    return ok;
}

/* Opens `data` through an in-memory file (memfd: thousands of mutants, no disk traffic);
 * on success touches every tensor byte so ASan sees any out-of-bounds view. */
static int open_bytes(const uint8_t * data, size_t n) {
    static int fd = -1;
    if (fd < 0) fd = memfd_create("infvsr-mutant", 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (fd < 0 || ftruncate(fd, 0) != 0 || (n && pwrite(fd, data, n, 0) != (ssize_t)n)) {
        CHECK_MSG(false, "memfd write failed");
        return -1;
    }
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    enum infvsr_status      st  = infvsr_weights_open(path, &w, &err);
    if (st != INFVSR_OK) {
        CHECK_MSG(err.msg[0] != '\0' && err.status == st, "error %d without a message", st);
        return 0;
    }
    for (size_t i = 0; i < infvsr_weights_count(w); i++) {
        char hex[65];
        tensor_sha(infvsr_weights_at(w, i), hex);
    }
    infvsr_weights_close(w);
    return 1;
}

static void mutate_file(const char * rel) {
    uint8_t * data = NULL;
    size_t    n    = 0;
    CHECK_MSG(read_file(fixture(rel), &data, &n), "cannot read %s", rel);
    if (!data) return;
    int      opened = 0, failed = 0;
    uint64_t rng    = 42;
    for (size_t i = 0; i < n; i++) {
        uint8_t keep = data[i];
        data[i] ^= 0xff;
        open_bytes(data, n) ? opened++ : failed++;
        data[i] = (uint8_t)test_rng_next(&rng);
        open_bytes(data, n) ? opened++ : failed++;
        data[i] = keep;
        if (i % 3 == 0) open_bytes(data, i) ? opened++ : failed++; /* truncated copy */
    }
    CHECK_EQ_INT(open_bytes(data, n), 1); /* the unmutated file still loads */
    printf("  %s: %zu bytes, %d mutants opened, %d rejected\n", rel, n, opened, failed);
    CHECK(failed > 0);
    free(data);
}

static void test_mutations(void) {
    mutate_file("good/handmade.pt");
    mutate_file("good/views.pt");
    mutate_file("good/all_dtypes.safetensors");
}

/* ---- writer, get, metadata ---------------------------------------------------------------- */

static void test_safetensors_roundtrip(void) {
    struct infvsr_tensor t[4];
    int64_t s0[3] = { 2, 3, 4 }, s1[1] = { 5 }, s2[2] = { 0, 7 };
    CHECK_EQ_INT(infvsr_tensor_alloc(&t[0], "a.weight", INFVSR_TYPE_F32, 3, s0), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&t[1], "b.bias", INFVSR_TYPE_BF16, 1, s1), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&t[2], "empty", INFVSR_TYPE_I64, 2, s2), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&t[3], "scalar", INFVSR_TYPE_U8, 0, NULL), INFVSR_OK);
    test_fill_uniform(t[0].data, 24, -1, 1, 7);
    for (int i = 0; i < 5; i++) ((uint16_t *)t[1].data)[i] = infvsr_f32_to_bf16((float)i - 2.5f);
    *(uint8_t *)t[3].data = 200;
    const char *      path = TEST_TMP_DIR "/roundtrip.safetensors";
    struct infvsr_err err  = { 0 };
    CHECK_EQ_INT(infvsr_safetensors_write(path, t, 4, &err), INFVSR_OK);
    FILE * tmp = fopen(TEST_TMP_DIR "/roundtrip.safetensors.tmp", "rb");
    CHECK(tmp == NULL); /* renamed into place */
    if (tmp) fclose(tmp);
    struct infvsr_weights * w;
    CHECK_EQ_INT(infvsr_weights_open(path, &w, &err), INFVSR_OK);
    if (!w) return;
    CHECK_EQ_INT(infvsr_weights_count(w), 4);
    for (int i = 0; i < 4; i++) {
        const struct infvsr_tensor * r = infvsr_weights_find(w, t[i].name);
        CHECK_MSG(r != NULL, "'%s' missing", t[i].name);
        if (!r) continue;
        CHECK(infvsr_tensor_same_shape(r, &t[i]));
        CHECK_EQ_INT(r->dtype, t[i].dtype);
        CHECK(memcmp(r->data, t[i].data, infvsr_tensor_nbytes(&t[i])) == 0);
        CHECK(!r->owns_data); /* 8-byte aligned header: used in place */
    }
    CHECK(infvsr_weights_metadata(w, "format") == NULL);
    infvsr_weights_close(w);
    /* duplicate names are refused */
    snprintf(t[1].name, sizeof t[1].name, "a.weight");
    CHECK_EQ_INT(infvsr_safetensors_write(path, t, 2, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "duplicate");
    for (int i = 0; i < 4; i++) infvsr_tensor_release(&t[i]);
}

static void test_weights_get(void) {
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    CHECK_EQ_INT(infvsr_weights_open(fixture("good/ram_like.pt"), &w, &err), INFVSR_OK);
    if (!w) return;
    struct infvsr_tensor t;
    int64_t              ok_shape[4] = { 4, 3, 3, 3 }, bad_shape[4] = { 4, 3, 3, 5 };
    CHECK_EQ_INT(infvsr_weights_get(w, "model.", "encoder.conv.weight", 4, ok_shape, &t, &err), INFVSR_OK);
    CHECK(!t.owns_data);
    CHECK(t.data == infvsr_weights_find(w, "model.encoder.conv.weight")->data);
    CHECK_EQ_INT(infvsr_weights_get(w, "model.", "encoder.conv.weight", 4, bad_shape, &t, &err), INFVSR_ERR_MODEL);
    CHECK_STR_CONTAINS(err.msg, "model.encoder.conv.weight");
    CHECK_STR_CONTAINS(err.msg, "[4, 3, 3, 5]");
    CHECK_STR_CONTAINS(err.msg, "[4, 3, 3, 3]");
    CHECK_EQ_INT(infvsr_weights_get(w, "model.", "encoder.conv.weight", 2, ok_shape, &t, &err), INFVSR_ERR_MODEL);
    CHECK_EQ_INT(infvsr_weights_get(w, "model.", "encoder.missing", 1, ok_shape, &t, &err), INFVSR_ERR_MODEL);
    CHECK_STR_CONTAINS(err.msg, "missing tensor 'model.encoder.missing'");
    /* extras ("epoch", "names", "cfg", "lr", "opt.step") are skipped, not indexed */
    CHECK_EQ_INT(infvsr_weights_count(w), 3);
    infvsr_weights_close(w);

    CHECK_EQ_INT(infvsr_weights_open(fixture("good/all_dtypes.safetensors"), &w, &err), INFVSR_OK);
    if (!w) return;
    int64_t s[2] = { 3, 5 };
    CHECK_EQ_INT(infvsr_weights_get(w, NULL, "w_i64", 2, s, &t, &err), INFVSR_ERR_MODEL);
    CHECK_STR_CONTAINS(err.msg, "float dtype, got i64");
    CHECK_EQ_INT(infvsr_weights_get(w, NULL, "w_bf16", 2, s, &t, &err), INFVSR_OK);
    CHECK_EQ_INT(t.dtype, INFVSR_TYPE_BF16);
    CHECK(infvsr_weights_metadata(w, "note") && strcmp(infvsr_weights_metadata(w, "note"), "io test") == 0);
    CHECK(infvsr_weights_metadata(w, "absent") == NULL);
    infvsr_weights_close(w);
}

/* Wrappers (issue 19): find() resolves a bare key under the file's wrapper prefixes. */
static void test_wrappers(void) {
    static const struct {
        const char * file, * wrapper;
    } cases[] = {
        { "good/wrap_state_dict.pth", "state_dict." }, { "good/wrap_model.pth", "model." },
        { "good/wrap_model_state.pth", "model_state." }, { "good/wrap_ema.pth", "ema." },
        { "good/wrap_module.pth", "module." }, { "good/wrap_state_dict_module.pth", "state_dict.module." },
        { "good/lightning.ckpt", "state_dict.model." }, { "good/lightning_legacy.ckpt", "state_dict.model." },
        { "good/legacy_ram_like.pth", "model." },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct infvsr_weights * w;
        struct infvsr_err       err = { 0 };
        CHECK_MSG(infvsr_weights_open(fixture(cases[i].file), &w, &err) == INFVSR_OK, "%s: %s", cases[i].file, err.msg);
        if (!w) continue;
        CHECK(infvsr_weights_wrapper_of(w, "no.such.key") == NULL);
        const struct infvsr_tensor * t = infvsr_weights_find(w, "blocks.0.attn.qkv.weight");
        char full[128];
        snprintf(full, sizeof full, "%sblocks.0.attn.qkv.weight", cases[i].wrapper);
        CHECK_MSG(t != NULL && t == infvsr_weights_find(w, full), "%s: bare key not found under %s", cases[i].file, full);
        const char * wr = infvsr_weights_wrapper_of(w, "blocks.0.attn.qkv.weight");
        CHECK_MSG(wr && strcmp(wr, cases[i].wrapper) == 0, "%s: wrapper \"%s\"", cases[i].file, wr ? wr : "(null)");
        wr = infvsr_weights_wrapper_of(w, full);
        CHECK(wr && wr[0] == '\0');
        /* a missing key: the error lists the top-level entries and the nearest keys */
        struct infvsr_tensor out;
        int64_t              shape[1] = { 4 };
        CHECK_EQ_INT(infvsr_weights_get(w, "", "norm.wieght", 1, shape, &out, &err), INFVSR_ERR_MODEL);
        CHECK_STR_CONTAINS(err.msg, "missing tensor 'norm.wieght'");
        CHECK_STR_CONTAINS(err.msg, "top-level entries: ");
        char nearest[160];
        snprintf(nearest, sizeof nearest, "nearest keys: '%snorm.weight'", cases[i].wrapper);
        CHECK_STR_CONTAINS(err.msg, nearest);
        infvsr_weights_close(w);
    }
    /* Lightning: the non-tensor entries are named too; the ema file keeps model before ema */
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    char                    hint[1024];
    CHECK_EQ_INT(infvsr_weights_open(fixture("good/lightning.ckpt"), &w, &err), INFVSR_OK);
    if (w) {
        infvsr_weights_hint(w, "x", hint, sizeof hint);
        CHECK_STR_CONTAINS(hint, "state_dict (5 tensors)");
        CHECK_STR_CONTAINS(hint, "callbacks (1 tensor)");
        CHECK_STR_CONTAINS(hint, "epoch (an int)");
        CHECK_STR_CONTAINS(hint, "optimizer_states (a list)");
        CHECK_STR_CONTAINS(hint, "hyper_parameters (no tensors)");
        CHECK_EQ_INT(infvsr_weights_format(w), INFVSR_WEIGHTS_TORCH_ZIP);
        infvsr_weights_close(w);
    }
    CHECK_EQ_INT(infvsr_weights_open(fixture("good/p4_meta.pt"), &w, &err), INFVSR_OK);
    if (w) { /* {"model": sd, "ema": copy}: equal counts, file order decides */
        CHECK(infvsr_weights_find(w, "norm.weight") == infvsr_weights_find(w, "model.norm.weight"));
        char fmt[64];
        CHECK_STR_CONTAINS(infvsr_weights_format_name(w, fmt, sizeof fmt), "torch zip, pickle protocol 4");
        infvsr_weights_close(w);
    }
    CHECK_EQ_INT(infvsr_weights_open(fixture("good/p5_legacy_meta.pth"), &w, &err), INFVSR_OK);
    if (w) {
        char fmt[64];
        CHECK_STR_CONTAINS(infvsr_weights_format_name(w, fmt, sizeof fmt), "legacy torch.save, pickle protocol 5");
        infvsr_weights_close(w);
    }
}

static const struct test_case tests[] = {
    TEST(test_sha256_nist),
    TEST(test_good_fixtures),
    TEST(test_bad_fixtures),
    TEST(test_missing_file),
    TEST(test_mutations),
    TEST(test_safetensors_roundtrip),
    TEST(test_weights_get),
    TEST(test_wrappers),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
