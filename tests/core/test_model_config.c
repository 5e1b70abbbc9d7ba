/* Model config parsing: the shipped configs load, the full config equals MODEL-SPEC.md's
 * numbers (the built-in default), and bad configs are rejected with a message naming the key. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "infvsr/model_config.h"

static void write_file(const char * path, const char * text) {
    FILE * f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_full_config_matches_builtin(void) {
    struct infvsr_model_config c;
    struct infvsr_err          err = { 0 };
    CHECK_EQ_INT(infvsr_model_config_load(INFVSR_SOURCE_DIR "/config/models/infvsr-full.json", &c, &err), INFVSR_OK);
    struct infvsr_model_config b = infvsr_model_config_full();
    CHECK_EQ_INT(c.dit.dim, 1536);
    CHECK_EQ_INT(c.dit.num_layers, 30);
    CHECK_EQ_INT(c.dit.ffn_dim, 8960);
    CHECK_EQ_INT(c.dit.num_heads, 12);
    CHECK_EQ_INT(c.dit.text_dim, 512);
    CHECK(c.dit.eps == b.dit.eps);
    CHECK_EQ_INT(c.vae.dim, 96);
    CHECK_EQ_INT(c.vae.dim_mult[3], 4);
    CHECK_EQ_INT(c.visual.depths[2], 18);
    CHECK_EQ_INT(c.visual.num_heads[3], 48);
    CHECK(memcmp(&c.dit, &b.dit, sizeof c.dit) == 0);
    CHECK(memcmp(&c.vae, &b.vae, sizeof c.vae) == 0);
    CHECK(memcmp(&c.visual, &b.visual, sizeof c.visual) == 0);
}

static void test_tiny_config_loads(void) {
    struct infvsr_model_config c;
    struct infvsr_err          err = { 0 };
    CHECK_EQ_INT(infvsr_model_config_load(INFVSR_SOURCE_DIR "/config/models/infvsr-tiny.json", &c, &err), INFVSR_OK);
    CHECK(strcmp(c.name, "infvsr-tiny") == 0);
    CHECK_EQ_INT(c.dit.num_layers, 2);
    CHECK_EQ_INT(c.visual.embed_dim, 32);
}

static void expect_error(const char * text, const char * word) {
    const char * path = TEST_TMP_DIR "/bad_config.json";
    write_file(path, text);
    struct infvsr_model_config c;
    struct infvsr_err          err = { 0 };
    CHECK_EQ_INT(infvsr_model_config_load(path, &c, &err), INFVSR_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, word);
}

static void test_bad_configs_rejected(void) {
    expect_error("{\"dit\": {\"dimm\": 3}}", "dimm");
    expect_error("{\"dit\": {\"dim\": -3}}", "dit.dim");
    expect_error("{\"dit\": {\"dim\": 100, \"num_heads\": 3}}", "heads");
    expect_error("{\"vae\": {\"dim_mult\": [1, 2]}}", "dim_mult");
    expect_error("{\"bogus\": 1}", "bogus");
    expect_error("{\"dit\": ", "bad_config.json");
    expect_error("[1, 2]", "object");
}

static const struct test_case tests[] = {
    TEST(test_full_config_matches_builtin),
    TEST(test_tiny_config_loads),
    TEST(test_bad_configs_rejected),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
