#include "threadpool.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* How long a thread spins before it sleeps: a worker waiting for the next job, the caller
 * waiting for the workers to finish one. A model runs thousands of short ops back to back
 * (a bf16 DiT chunk of 192 tokens: ~700 ms for ~2,400 parallel_for calls), and waking a
 * thread sleeping on a condition variable costs tens of microseconds on a VM, for each call
 * and on both sides; a spin of a fraction of a millisecond covers the gap between two ops
 * and still puts an idle pool to sleep at once on a human scale, so a daemon between
 * jobs, or the caller running something else, does not lose a core for long.
 * INFVSR_CPU_SPIN_US overrides it (0: never spin). */
#define SPIN_US_DEFAULT 200

struct infvsr_threadpool {
    int              n_threads;
    pthread_t *      workers;       /* n_threads - 1 */
    pthread_mutex_t  call_lock;     /* serialises parallel_for callers */
    pthread_mutex_t  lock;
    pthread_cond_t   wake;          /* a new job or shutdown */
    pthread_cond_t   done;          /* a worker finished its share */
    atomic_uint_least64_t generation; /* bumped for every job (under lock, release) */
    atomic_bool      shutdown;
    atomic_int       n_busy;        /* workers still inside the current job */
    int64_t          spin_ns;       /* SPIN_US_DEFAULT or INFVSR_CPU_SPIN_US */

    /* the current job */
    infvsr_task_cb   fn;
    void *           ctx;
    int64_t          n_tasks;
    atomic_llong     next_task;
};

/* Set while this thread runs a task: a nested parallel_for then runs inline with the
 * same thread id, so it keeps using this thread's scratch. */
static _Thread_local bool in_pool_task;
static _Thread_local int  current_thread_id;

static void run_tasks(struct infvsr_threadpool * pool, int thread_id) {
    in_pool_task      = true;
    current_thread_id = thread_id;
    for (;;) {
        int64_t t = atomic_fetch_add(&pool->next_task, 1);
        if (t >= pool->n_tasks) break;
        pool->fn(pool->ctx, t, thread_id);
    }
    in_pool_task = false;
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins up to spin_ns until done(arg) holds; true if it did. The clock is read every 64
 * pauses (a pause is tens of cycles). */
static bool spin_until(int64_t spin_ns, bool (*done)(struct infvsr_threadpool *, uint64_t),
                       struct infvsr_threadpool * pool, uint64_t arg) {
    if (spin_ns <= 0) return done(pool, arg);
    const int64_t end = now_ns() + spin_ns;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done(pool, arg)) return true;
            _mm_pause();
        }
        if (now_ns() > end) return done(pool, arg);
    }
}

static bool new_job_or_shutdown(struct infvsr_threadpool * pool, uint64_t seen) {
    return atomic_load_explicit(&pool->generation, memory_order_acquire) != seen ||
           atomic_load_explicit(&pool->shutdown, memory_order_acquire);
}

static bool workers_done(struct infvsr_threadpool * pool, uint64_t unused) {
    (void)unused;
    return atomic_load_explicit(&pool->n_busy, memory_order_acquire) == 0;
}

struct worker_arg {
    struct infvsr_threadpool * pool;
    int                        id;
};

static void * worker_main(void * p) {
    struct worker_arg arg = *(struct worker_arg *)p;
    free(p);
    struct infvsr_threadpool * pool = arg.pool;
    uint64_t seen = 0;
    for (;;) {
        /* the job's fields are written before generation is bumped (under the lock): the
         * acquire that sees the new generation sees them too */
        if (!spin_until(pool->spin_ns, new_job_or_shutdown, pool, seen)) {
            pthread_mutex_lock(&pool->lock);
            while (!new_job_or_shutdown(pool, seen)) pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        if (atomic_load_explicit(&pool->shutdown, memory_order_acquire)) break;
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        run_tasks(pool, arg.id);
        /* the decrement under the lock: a caller that found n_busy > 0 under it is already
         * waiting on `done` when the signal comes */
        pthread_mutex_lock(&pool->lock);
        if (atomic_fetch_sub_explicit(&pool->n_busy, 1, memory_order_acq_rel) == 1) pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->lock);
    }
    return NULL;
}

struct infvsr_threadpool * infvsr_threadpool_init(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    struct infvsr_threadpool * pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->call_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->shutdown, false);
    atomic_init(&pool->n_busy, 0);
    /* microseconds, 0 to 1 s; anything else (unset, empty, not a number) is the default */
    const char * spin = getenv("INFVSR_CPU_SPIN_US");
    char *       end  = NULL;
    long         us   = spin && *spin ? strtol(spin, &end, 10) : -1;
    if (!spin || !*spin || *end || us < 0 || us > 1000000) us = SPIN_US_DEFAULT;
    pool->spin_ns = (int64_t)us * 1000;
    if (n_threads > 1) {
        pool->workers = calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            infvsr_threadpool_free(pool);
            return NULL;
        }
        for (int i = 1; i < n_threads; i++) {
            struct worker_arg * arg = malloc(sizeof *arg);
            if (arg) {
                arg->pool = pool;
                arg->id   = i;
            }
            if (!arg || pthread_create(&pool->workers[i - 1], NULL, worker_main, arg) != 0) {
                free(arg);
                pool->n_threads = i; /* only i - 1 workers exist: free joins those */
                infvsr_threadpool_free(pool);
                return NULL;
            }
        }
    }
    return pool;
}

void infvsr_threadpool_free(struct infvsr_threadpool * pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->shutdown, true, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i + 1 < pool->n_threads && pool->workers; i++) pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->call_lock);
    free(pool);
}

int infvsr_threadpool_n_threads(const struct infvsr_threadpool * pool) {
    return pool ? pool->n_threads : 1;
}

void infvsr_threadpool_parallel_for(struct infvsr_threadpool * pool, int64_t n_tasks,
                                    infvsr_task_cb fn, void * ctx) {
    if (n_tasks <= 0) return;
    if (in_pool_task) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, current_thread_id);
        return;
    }
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&pool->call_lock);
    pthread_mutex_lock(&pool->lock);
    pool->fn      = fn;
    pool->ctx     = ctx;
    pool->n_tasks = n_tasks;
    atomic_store(&pool->next_task, 0);
    atomic_store_explicit(&pool->n_busy, pool->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake); /* no system call when every worker is spinning */
    pthread_mutex_unlock(&pool->lock);

    run_tasks(pool, 0);

    if (!spin_until(pool->spin_ns, workers_done, pool, 0)) {
        pthread_mutex_lock(&pool->lock);
        while (!workers_done(pool, 0)) pthread_cond_wait(&pool->done, &pool->lock);
        pthread_mutex_unlock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->call_lock);
}
