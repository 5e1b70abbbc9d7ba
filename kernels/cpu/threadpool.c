#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct infvsr_threadpool {
    int              n_threads;
    pthread_t *      workers;       /* n_threads - 1 */
    pthread_mutex_t  call_lock;     /* serialises parallel_for callers */
    pthread_mutex_t  lock;
    pthread_cond_t   wake;          /* a new job or shutdown */
    pthread_cond_t   done;          /* a worker finished its share */
    uint64_t         generation;    /* bumped for every job */
    bool             shutdown;
    int              n_busy;        /* workers still inside the current job */

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

struct worker_arg {
    struct infvsr_threadpool * pool;
    int                        id;
};

static void * worker_main(void * p) {
    struct worker_arg arg = *(struct worker_arg *)p;
    free(p);
    struct infvsr_threadpool * pool = arg.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->shutdown && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->shutdown) break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        run_tasks(pool, arg.id);
        pthread_mutex_lock(&pool->lock);
        if (--pool->n_busy == 0) pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
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
    pool->shutdown = true;
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
    pool->n_busy  = pool->n_threads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    run_tasks(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->n_busy > 0) pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->call_lock);
}
