/* The CPU backend's thread pool: every task runs exactly once, thread ids stay in range,
 * nested calls run inline, repeated and empty jobs work, several pool sizes, with the
 * threads spinning between jobs, sleeping at once, and sleeping after a short spin. */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "threadpool.h"

struct count_ctx {
    atomic_int * hits;
    atomic_int   bad_tid;
    int          n_threads;
};

static void count_task(void * p, int64_t t, int tid) {
    struct count_ctx * c = p;
    atomic_fetch_add(&c->hits[t], 1);
    if (tid < 0 || tid >= c->n_threads) atomic_fetch_add(&c->bad_tid, 1);
}

static void test_every_task_once(void) {
    const int sizes[] = { 1, 2, 3, 8 };
    for (int s = 0; s < 4; s++) {
        struct infvsr_threadpool * pool = infvsr_threadpool_init(sizes[s]);
        CHECK(pool != NULL);
        CHECK_EQ_INT(infvsr_threadpool_n_threads(pool), sizes[s]);
        const int64_t ns[] = { 0, 1, 2, 7, 1000 };
        for (int r = 0; r < 50; r++) { /* many jobs back to back: no lost wake-ups */
            for (int k = 0; k < 5; k++) {
                atomic_int hits[1000];
                for (int i = 0; i < 1000; i++) atomic_init(&hits[i], 0);
                struct count_ctx c = { .hits = hits, .n_threads = sizes[s] };
                atomic_init(&c.bad_tid, 0);
                infvsr_threadpool_parallel_for(pool, ns[k], count_task, &c);
                for (int64_t i = 0; i < 1000; i++) {
                    if (atomic_load(&hits[i]) != (i < ns[k] ? 1 : 0)) {
                        CHECK_MSG(false, "pool %d: task %lld ran %d times (n %lld)", sizes[s], (long long)i,
                                  atomic_load(&hits[i]), (long long)ns[k]);
                        break;
                    }
                }
                CHECK_EQ_INT(atomic_load(&c.bad_tid), 0);
            }
        }
        infvsr_threadpool_free(pool);
    }
}

/* One job of n tasks; every task must run once. */
static void run_job(struct infvsr_threadpool * pool, int n_threads, int64_t n, const char * what) {
    atomic_int hits[64];
    for (int i = 0; i < 64; i++) atomic_init(&hits[i], 0);
    struct count_ctx c = { .hits = hits, .n_threads = n_threads };
    atomic_init(&c.bad_tid, 0);
    infvsr_threadpool_parallel_for(pool, n, count_task, &c);
    for (int64_t i = 0; i < 64; i++) {
        if (atomic_load(&hits[i]) != (i < n ? 1 : 0)) {
            CHECK_MSG(false, "%s: task %lld ran %d times (n %lld)", what, (long long)i, atomic_load(&hits[i]), (long long)n);
            break;
        }
    }
    CHECK_EQ_INT(atomic_load(&c.bad_tid), 0);
}

/* INFVSR_CPU_SPIN_US (read when a pool starts): 0 sleeps at once, 1 us sleeps between jobs
 * 2 ms apart, the default spins through jobs back to back; a bad value is the default. In
 * every mode the hand-over between jobs must lose no wake-up and run no task twice. */
static void test_spin_and_sleep(void) {
    const char * modes[] = { "0", "1", "", "junk", NULL /* unset */ };
    for (int m = 0; m < 5; m++) {
        if (modes[m]) setenv("INFVSR_CPU_SPIN_US", modes[m], 1);
        else unsetenv("INFVSR_CPU_SPIN_US");
        struct infvsr_threadpool * pool = infvsr_threadpool_init(3);
        CHECK(pool != NULL);
        for (int r = 0; r < 2000; r++) run_job(pool, 3, r % 5 == 0 ? 1 : 2 + r % 40, "back to back");
        for (int r = 0; r < 20; r++) { /* gaps longer than any short spin: the workers sleep */
            struct timespec gap = { 0, 2000000 };
            nanosleep(&gap, NULL);
            run_job(pool, 3, 17, "after a gap");
        }
        infvsr_threadpool_free(pool);
    }
    unsetenv("INFVSR_CPU_SPIN_US");
}

struct nest_ctx {
    struct infvsr_threadpool * pool;
    atomic_int                 inner_hits;
    atomic_int                 tid_mismatch;
};

static _Thread_local int outer_tid;

static void inner_task(void * p, int64_t t, int tid) {
    struct nest_ctx * c = p;
    atomic_fetch_add(&c->inner_hits, 1);
    if (tid != outer_tid) atomic_fetch_add(&c->tid_mismatch, 1); /* nested: same thread's scratch */
}

static void outer_task(void * p, int64_t t, int tid) {
    struct nest_ctx * c = p;
    outer_tid = tid;
    infvsr_threadpool_parallel_for(c->pool, 10, inner_task, c);
}

static void test_nested_runs_inline(void) {
    struct infvsr_threadpool * pool = infvsr_threadpool_init(3);
    struct nest_ctx c = { .pool = pool };
    atomic_init(&c.inner_hits, 0);
    atomic_init(&c.tid_mismatch, 0);
    infvsr_threadpool_parallel_for(pool, 20, outer_task, &c);
    CHECK_EQ_INT(atomic_load(&c.inner_hits), 200);
    CHECK_EQ_INT(atomic_load(&c.tid_mismatch), 0);
    infvsr_threadpool_free(pool);
}

static void sum_task(void * p, int64_t t, int tid) {
    double * out = p;
    double s = 0;
    for (int i = 0; i < 1000; i++) s += (double)(t * 1000 + i);
    out[t] = s;
}

static void test_results_and_default_size(void) {
    struct infvsr_threadpool * pool = infvsr_threadpool_init(0); /* online cores */
    CHECK(pool != NULL);
    CHECK(infvsr_threadpool_n_threads(pool) >= 1);
    double out[64];
    infvsr_threadpool_parallel_for(pool, 64, sum_task, out);
    for (int t = 0; t < 64; t++) {
        double want = 1000.0 * t * 1000 + 999.0 * 1000 / 2;
        CHECK(out[t] == want);
    }
    infvsr_threadpool_free(pool);
    infvsr_threadpool_free(NULL);
}

static const struct test_case tests[] = {
    TEST(test_every_task_once),
    TEST(test_nested_runs_inline),
    TEST(test_results_and_default_size),
    TEST(test_spin_and_sleep),
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
