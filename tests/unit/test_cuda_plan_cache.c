/* The CUDA backend's per-shape plan caches (kernels/cuda/plan_cache.h) without a GPU:
 * GEMM keys tell apart every field a cuBLASLt plan depends on and nothing else, resize
 * keys likewise, and the bounded cache returns what was stored, counts hits and misses,
 * evicts the least recently used entry and destroys every value exactly once. */
#include "check.h"
#include "plan_cache.h"

static bool key_eq(const struct cu_plan_key * a, const struct cu_plan_key * b) {
    return memcmp(a, b, sizeof *a) == 0;
}

static struct cu_gemm_shape base_shape(void) {
    struct cu_gemm_shape s = { .trans_a = true, .trans_b = false, .m = 3072, .n = 10800, .k = 1536,
                               .lda = 1536, .ldb = 1536, .ldd = 3072, .batch = 1, .ab_dtype = 2,
                               .d_dtype = 2, .epilogue = 4, .has_bias = true,
                               .align_a = 256, .align_b = 256, .align_d = 256 };
    return s;
}

static void test_gemm_key_fields(void) {
    struct cu_gemm_shape s0 = base_shape();
    struct cu_plan_key k0, k;
    cu_gemm_plan_key(&s0, &k0);
    struct cu_gemm_shape same = base_shape();
    cu_gemm_plan_key(&same, &k);
    CHECK(key_eq(&k0, &k));
    /* every field a plan depends on changes the key */
    for (int f = 0; f < 16; f++) {
        struct cu_gemm_shape s = base_shape();
        switch (f) {
        case 0: s.trans_a = false; break;
        case 1: s.trans_b = true; break;
        case 2: s.m++; break;
        case 3: s.n++; break;
        case 4: s.k++; break;
        case 5: s.lda++; break;
        case 6: s.ldb++; break;
        case 7: s.ldd++; break;
        case 8: s.batch = 2; break;
        case 9: s.ab_dtype = 0; break;
        case 10: s.d_dtype = 0; break;
        case 11: s.epilogue = 1; break;
        case 12: s.has_bias = false; break;
        case 13: s.align_a = 16; break;
        case 14: s.align_b = 2; break;
        case 15: s.align_d = 128; break;
        }
        cu_gemm_plan_key(&s, &k);
        CHECK_MSG(!key_eq(&k0, &k), "field %d does not change the GEMM key", f);
    }
}

static void test_gemm_key_strides(void) {
    /* a single matrix: strides are not set on its layouts, so they must not split the key */
    struct cu_gemm_shape a = base_shape(), b = base_shape();
    b.stride_a = 99, b.stride_b = 7, b.stride_d = 1;
    struct cu_plan_key ka, kb;
    cu_gemm_plan_key(&a, &ka);
    cu_gemm_plan_key(&b, &kb);
    CHECK(key_eq(&ka, &kb));
    /* batched: each stride matters */
    a.batch = b.batch = 24;
    a.stride_a = b.stride_a = 100, a.stride_b = b.stride_b = 200, a.stride_d = b.stride_d = 300;
    cu_gemm_plan_key(&a, &ka);
    cu_gemm_plan_key(&b, &kb);
    CHECK(key_eq(&ka, &kb));
    for (int f = 0; f < 4; f++) {
        struct cu_gemm_shape c = a;
        if (f == 0) c.stride_a++;
        if (f == 1) c.stride_b++;
        if (f == 2) c.stride_d++;
        if (f == 3) c.batch++;
        cu_gemm_plan_key(&c, &kb);
        CHECK_MSG(!key_eq(&ka, &kb), "batched field %d does not change the key", f);
    }
}

static void test_resize_key(void) {
    struct cu_plan_key a, b;
    cu_resize_plan_key(1, 720, 180, &a);
    cu_resize_plan_key(1, 720, 180, &b);
    CHECK(key_eq(&a, &b));
    cu_resize_plan_key(2, 720, 180, &b);
    CHECK(!key_eq(&a, &b));
    cu_resize_plan_key(1, 180, 720, &b); /* in and out are not interchangeable */
    CHECK(!key_eq(&a, &b));
    cu_resize_plan_key(1, 720, 181, &b);
    CHECK(!key_eq(&a, &b));
    /* a resize key never equals a GEMM key, whatever the numbers */
    struct cu_gemm_shape s = { 0 };
    cu_gemm_plan_key(&s, &b);
    cu_resize_plan_key(0, 0, 0, &a);
    CHECK(!key_eq(&a, &b));
}

static void test_ptr_align(void) {
    CHECK_EQ_INT(cu_ptr_align((const void *)(uintptr_t)0x1000), 256);
    CHECK_EQ_INT(cu_ptr_align((const void *)(uintptr_t)0x1080), 128);
    CHECK_EQ_INT(cu_ptr_align((const void *)(uintptr_t)0x1002), 2);
    CHECK_EQ_INT(cu_ptr_align((const void *)(uintptr_t)0x1001), 1);
    CHECK_EQ_INT(cu_ptr_align((const void *)(uintptr_t)0x1010), 16);
}

/* the cached "plans": destroyed[i] counts destroy calls of &values[i] */
static int destroyed[64];
static int values[64];
static void destroy_value(void * value, void * user) {
    (void)user;
    destroyed[(int *)value - values]++;
}

static void resize_key(int i, struct cu_plan_key * k) { cu_resize_plan_key(0, i, i + 1, k); }

static void test_cache_lru(void) {
    memset(destroyed, 0, sizeof destroyed);
    struct cu_plan_cache * pc = cu_plan_cache_create(4, destroy_value, NULL);
    CHECK(pc != NULL);
    struct cu_plan_key k;
    for (int i = 0; i < 4; i++) {
        resize_key(i, &k);
        CHECK(cu_plan_cache_get(pc, &k) == NULL);
        cu_plan_cache_put(pc, &k, &values[i]);
    }
    for (int i = 0; i < 4; i++) {
        resize_key(i, &k);
        CHECK(cu_plan_cache_get(pc, &k) == &values[i]);
    }
    /* touch 0 so that 1 is the least recently used, then insert 4: 1 goes */
    resize_key(0, &k);
    CHECK(cu_plan_cache_get(pc, &k) == &values[0]);
    resize_key(4, &k);
    CHECK(cu_plan_cache_get(pc, &k) == NULL);
    cu_plan_cache_put(pc, &k, &values[4]);
    CHECK_EQ_INT(destroyed[1], 1);
    for (int i = 0; i < 5; i++) {
        resize_key(i, &k);
        void * v = cu_plan_cache_get(pc, &k);
        if (i == 1) CHECK(v == NULL);
        else CHECK_MSG(v == &values[i], "entry %d lost", i);
    }
    struct cu_plan_cache_stats st;
    cu_plan_cache_get_stats(pc, &st);
    CHECK_EQ_INT(st.size, 4);
    CHECK_EQ_INT(st.capacity, 4);
    CHECK_EQ_INT(st.evictions, 1);
    CHECK_EQ_INT(st.misses, 4 + 1 + 1); /* 4 first lookups, key 4, key 1 after eviction */
    CHECK_EQ_INT(st.hits, 4 + 1 + 4);
    cu_plan_cache_free(pc);
    /* every value destroyed exactly once: 1 at eviction, the rest at free */
    for (int i = 0; i < 5; i++) CHECK_MSG(destroyed[i] == 1, "value %d destroyed %d times", i, destroyed[i]);
    CHECK_EQ_INT(destroyed[5], 0);
}

static void test_cache_many_keys(void) {
    /* more distinct keys than the capacity, with one hot key used between each: the hot
     * key is never evicted, and the cache never holds more than its capacity */
    memset(destroyed, 0, sizeof destroyed);
    struct cu_plan_cache * pc = cu_plan_cache_create(8, destroy_value, NULL);
    struct cu_plan_key hot, k;
    cu_resize_plan_key(2, 1000, 1000, &hot);
    cu_plan_cache_put(pc, &hot, &values[63]);
    for (int i = 0; i < 60; i++) {
        CHECK_MSG(cu_plan_cache_get(pc, &hot) == &values[63], "hot key evicted at %d", i);
        resize_key(i, &k);
        if (!cu_plan_cache_get(pc, &k)) cu_plan_cache_put(pc, &k, &values[i]);
    }
    struct cu_plan_cache_stats st;
    cu_plan_cache_get_stats(pc, &st);
    CHECK_EQ_INT(st.size, 8);
    CHECK_EQ_INT(st.evictions, 60 - 7);
    CHECK_EQ_INT(destroyed[63], 0);
    cu_plan_cache_free(pc);
    CHECK_EQ_INT(destroyed[63], 1);
    int total = 0;
    for (int i = 0; i < 64; i++) total += destroyed[i];
    CHECK_EQ_INT(total, 61);
    cu_plan_cache_free(NULL); /* ignored */
    CHECK(cu_plan_cache_create(0, destroy_value, NULL) == NULL);
}

static const struct test_case tests[] = {
    TEST(test_gemm_key_fields), TEST(test_gemm_key_strides), TEST(test_resize_key), TEST(test_ptr_align),
    TEST(test_cache_lru),       TEST(test_cache_many_keys),   { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
