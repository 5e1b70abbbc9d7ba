/* Minimal C test harness: each test is a function in a table; CHECK macros print both
 * operands and mark the current test failed without aborting the rest.
 *
 *   static void test_foo(void) { CHECK_EQ_INT(1 + 1, 2); }
 *   static const struct test_case tests[] = { TEST(test_foo), { 0 } };
 *   int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
 *
 * `prog [substring]` runs only the tests whose name contains the substring (a substring
 * that matches no test is an error). The last line printed is "N passed, N failed". Exit
 * code 0 only when nothing failed. */
#pragma once

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
    const char * name;
    void (*fn)(void);
};
#define TEST(fn) { #fn, fn }

static int test_failed_flag;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);  \
            test_failed_flag = 1;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                            \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
            test_failed_flag = 1;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
    do {                                                                                \
        long long va_ = (long long)(a), vb_ = (long long)(b);                           \
        if (va_ != vb_) {                                                               \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld vs %lld\n", __FILE__,       \
                    __LINE__, #a, #b, va_, vb_);                                        \
            test_failed_flag = 1;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                 \
    do {                                                                                \
        const char * h_ = (hay), * n_ = (needle);                                       \
        if (!h_ || !strstr(h_, n_)) {                                                   \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,      \
                    __LINE__, h_ ? h_ : "(null)", n_);                                  \
            test_failed_flag = 1;                                                       \
        }                                                                               \
    } while (0)

/* Relative L2 error ||a - b|| / max(||b||, tiny), accumulated in double. */
static inline double rel_err_f32(const float * a, const float * b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (!(num == num)) return INFINITY; /* NaN anywhere */
    return sqrt(num) / (den > 1e-300 ? sqrt(den) : 1e-150);
}

#define CHECK_REL_ERR(a, b, n, tol)                                                     \
    do {                                                                                \
        double e_ = rel_err_f32((a), (b), (n));                                         \
        if (!(e_ <= (tol))) {                                                           \
            fprintf(stderr, "  %s:%d: rel err %.3e > %.1e (%s vs %s, n=%zu)\n",         \
                    __FILE__, __LINE__, e_, (double)(tol), #a, #b, (size_t)(n));        \
            test_failed_flag = 1;                                                       \
        }                                                                               \
    } while (0)

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static inline uint64_t test_rng_next(uint64_t * s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline void test_fill_uniform(float * x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(test_rng_next(&s) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = (float)(lo + (hi - lo) * u);
    }
}

static inline int test_main(int argc, char ** argv, const struct test_case * tests) {
    const char * filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (const struct test_case * t = tests; t->name; t++) {
        if (filter && !strstr(t->name, filter)) continue;
        test_failed_flag = 0;
        t->fn();
        if (test_failed_flag) {
            failed++;
            printf("FAIL %s\n", t->name);
        } else {
            passed++;
            printf("ok   %s\n", t->name);
        }
        fflush(stdout);
    }
    if (filter && passed + failed == 0) { /* a renamed test must not turn its ctest entry into a no-op */
        printf("no test name contains '%s'\n", filter);
        return 1;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
