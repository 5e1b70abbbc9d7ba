/* A persistent pthread pool for the CPU backend.
 *
 * n_threads - 1 worker threads are created once; the thread that calls
 * infvsr_threadpool_parallel_for() is worker 0 and takes tasks too, so a pool of 1 runs
 * everything inline. Tasks are handed out through an atomic counter; each task must
 * compute something that does not depend on which thread runs it (thread_id only picks
 * a scratch buffer), which keeps results bit-identical from run to run.
 *
 * A worker waiting for the next job, and the caller waiting for the workers, spin for a
 * short while (200 us; INFVSR_CPU_SPIN_US, 0 turns it off) before they sleep on a
 * condition variable: ops come back to back, and a sleeping thread takes tens of
 * microseconds to wake (threadpool.c). An idle pool sleeps, so OpenBLAS called from the
 * calling thread between two jobs competes with our workers only during that spin.
 * parallel_for called from inside a task runs the inner loop inline (no nesting), and
 * calls from several outside threads are serialised. */
#pragma once

#include <stdint.h>

struct infvsr_threadpool;

/* fn(ctx, task, thread_id): task in [0, n_tasks), thread_id in [0, n_threads). */
typedef void (*infvsr_task_cb)(void * ctx, int64_t task, int thread_id);

/* n_threads <= 0: number of online cores. Returns NULL when out of memory/threads. */
struct infvsr_threadpool * infvsr_threadpool_init(int n_threads);
void                       infvsr_threadpool_free(struct infvsr_threadpool * pool);
int                        infvsr_threadpool_n_threads(const struct infvsr_threadpool * pool);

/* Runs fn for every task in [0, n_tasks) and returns when all are done. */
void infvsr_threadpool_parallel_for(struct infvsr_threadpool * pool, int64_t n_tasks,
                                    infvsr_task_cb fn, void * ctx);
