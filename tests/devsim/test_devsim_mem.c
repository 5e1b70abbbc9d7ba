/* The memory contract devsim enforces, and its negative cases (label "devsim").
 *
 *  (a) host access: a forked child dereferences a devsim tensor's data (read, write, a
 *      view) and dies of SIGSEGV at exactly that address;
 *  (b) missing synchronize: after tensor_get the buffer holds poison (NaN) until
 *      infvsr_backend_synchronize, which delivers the bytes as they were at the get;
 *  (c) a host tensor (or another backend's) handed to an op is refused with its name;
 *  (d) use after free (also once the same size was allocated again: freed blocks wait
 *      in a quarantine) and out-of-range views are refused; a double free aborts;
 *  (e) fault injection: the Nth op fails with INFVSR_ERR_DEVICE, the backend stays
 *      unhealthy, every later call fails;
 *  (f) capacity: INFVSR_ERR_NOMEM with the numbers when full; allocation/free stress with
 *      coalescing; the default 16 GiB costs address space only.
 * Plus caps, zero-filled allocation, environment overrides, the CUDA dtype rules devsim
 * mirrors, and freeing a backend with live tensors (leak-free under LSan). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "infvsr/backend.h"
#include "ops.h"

static struct infvsr_backend * open_devsim(const char * name, size_t capacity, int64_t fault_at,
                                           enum infvsr_precision p) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    o.n_threads          = 1;
    o.precision          = p;
    o.devsim_capacity    = capacity;
    o.devsim_fault_at_op = fault_at;
    struct infvsr_backend * be = NULL;
    struct infvsr_err err = { 0 };
    if (infvsr_backend_init_by_name(name, &o, &be, &err) != INFVSR_OK) {
        fprintf(stderr, "  cannot open %s: %s\n", name, err.msg);
        return NULL;
    }
    return be;
}

static bool alloc_f32(struct infvsr_backend * be, struct infvsr_tensor * t, const char * name, int64_t n) {
    struct infvsr_err err = { 0 };
    memset(t, 0, sizeof *t);
    infvsr_tensor_setup(t, name, INFVSR_TYPE_F32, 1, (const int64_t[]){ n });
    enum infvsr_status st = infvsr_backend_tensor_alloc(be, t, &err);
    if (st != INFVSR_OK) fprintf(stderr, "  alloc %s: %s\n", name, err.msg);
    return st == INFVSR_OK;
}

static bool set_f32(struct infvsr_backend * be, struct infvsr_tensor * t, const float * v) {
    return infvsr_backend_tensor_set(be, t, v, 0, infvsr_tensor_nbytes(t), NULL) == INFVSR_OK;
}

/* get + synchronize */
static bool get_f32(struct infvsr_backend * be, const struct infvsr_tensor * t, float * v) {
    return infvsr_backend_tensor_get(be, t, v, 0, infvsr_tensor_nbytes(t), NULL) == INFVSR_OK &&
           infvsr_backend_synchronize(be, NULL) == INFVSR_OK;
}

/* ---- caps ---- */

static void test_caps(void) {
    struct infvsr_backend * be = open_devsim("devsim:3", (size_t)32 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    CHECK_STR_CONTAINS(caps.name, "devsim:3");
    CHECK_STR_CONTAINS(caps.device, "devsim (CPU kernels behind unreadable memory), 1 threads");
    CHECK(!caps.host_visible);
    CHECK_EQ_INT(caps.act_dtype, INFVSR_TYPE_F32);
    CHECK(caps.act_f32 && caps.act_bf16);
    CHECK_EQ_INT(caps.mem_total, (size_t)32 << 20);
    CHECK_EQ_INT(caps.mem_free, (size_t)32 << 20);
    CHECK(infvsr_backend_healthy(be));
    CHECK_EQ_INT(strlen(infvsr_backend_last_error(be)), 0);
    struct infvsr_tensor t;
    CHECK(alloc_f32(be, &t, "t", 1000)); /* 4000 bytes -> 4096 in 256-byte blocks */
    CHECK_EQ_INT(t.mem, INFVSR_MEM_DEVICE);
    CHECK((uintptr_t)t.data % 256 == 0);
    infvsr_backend_get_caps(be, &caps);
    CHECK_EQ_INT(caps.mem_free, ((size_t)32 << 20) - 4096);
    infvsr_backend_tensor_free(be, &t);
    infvsr_backend_get_caps(be, &caps);
    CHECK_EQ_INT(caps.mem_free, (size_t)32 << 20);
    infvsr_backend_free(be);

    be = open_devsim("devsim", (size_t)32 << 20, 0, INFVSR_PRECISION_BF16);
    CHECK(be);
    if (!be) return;
    infvsr_backend_get_caps(be, &caps);
    CHECK(strcmp(caps.name, "devsim") == 0);
    CHECK_EQ_INT(caps.act_dtype, INFVSR_TYPE_BF16);
    infvsr_backend_free(be);
}

/* ---- zero fill, round trip, reuse ---- */

static void test_alloc_zero_filled_and_reused_zeroed(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)8 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    enum { N = 300000 }; /* > 16 pages: freed through MADV_DONTNEED + ragged ends */
    float * v = malloc(N * sizeof *v), * back = malloc(N * sizeof *back);
    struct infvsr_tensor a, b;
    CHECK(alloc_f32(be, &a, "a", N));
    CHECK(get_f32(be, &a, back));
    size_t nonzero = 0;
    for (int i = 0; i < N; i++) nonzero += back[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);
    for (int i = 0; i < N; i++) v[i] = (float)i + 0.5f;
    CHECK(set_f32(be, &a, v));
    CHECK(get_f32(be, &a, back));
    CHECK(memcmp(v, back, N * sizeof *v) == 0);
    void * old = a.data;
    infvsr_backend_tensor_free(be, &a);
    CHECK(a.data == NULL);
    /* 1.2 MB is more than the quarantine holds (capacity / 8): reusable at once, and
     * first fit hands out the same block again. */
    CHECK(alloc_f32(be, &b, "b", N));
    CHECK(b.data == old);
    CHECK(get_f32(be, &b, back));
    nonzero = 0;
    for (int i = 0; i < N; i++) nonzero += back[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);
    infvsr_backend_tensor_free(be, &b);
    free(v);
    free(back);
    infvsr_backend_free(be);
}

/* ---- (a) host access crashes ---- */

static int g_pipe_w = -1;

/* Reports the faulting address, then returns: SA_RESETHAND restored the default action,
 * so the access faults again and the child dies of SIGSEGV. */
static void on_segv(int sig, siginfo_t * si, void * uc) {
    (void)sig;
    (void)uc;
    void * addr = si->si_addr;
    if (write(g_pipe_w, &addr, sizeof addr) != (ssize_t)sizeof addr) _exit(3);
}

enum access { READ, WRITE };

/* Forks a child that touches p on the host; returns true when it died of SIGSEGV at p. */
static bool child_segfaults_at(volatile float * p, enum access how) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        g_pipe_w = fds[1];
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags     = SA_SIGINFO | SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
        if (how == READ) {
            float x = *p; /* the planted host access */
            _exit(x == x ? 0 : 1);
        }
        *p = 1.0f;
        _exit(0);
    }
    close(fds[1]);
    void * addr = NULL;
    ssize_t got = read(fds[0], &addr, sizeof addr);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
    CHECK_MSG(segv, "child status %d (exited %d, signal %d)", status, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    CHECK_MSG(got == (ssize_t)sizeof addr && addr == (void *)p, "fault address %p, expected %p", addr, (void *)p);
    return segv && addr == (void *)p;
}

static void test_planted_host_access_segfaults(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_tensor t;
    CHECK(alloc_f32(be, &t, "t", 1024));
    float v[1024];
    for (int i = 0; i < 1024; i++) v[i] = (float)i;
    CHECK(set_f32(be, &t, v));
    float * data = t.data;
    CHECK(child_segfaults_at(data, READ));
    CHECK(child_segfaults_at(data + 777, READ)); /* a view made by pointer arithmetic */
    CHECK(child_segfaults_at(data + 5, WRITE));
    /* The same bytes read the right way, in the parent, after all that. */
    float back[1024];
    CHECK(get_f32(be, &t, back));
    CHECK(memcmp(v, back, sizeof v) == 0);
    infvsr_backend_tensor_free(be, &t);
    infvsr_backend_free(be);
}

/* ---- (b) results visible only after synchronize ---- */

static void test_get_needs_synchronize(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    enum { N = 64 };
    struct infvsr_tensor t;
    struct infvsr_err err = { 0 };
    CHECK(alloc_f32(be, &t, "t", N));
    float v[N], dst[N], dst2[N];
    for (int i = 0; i < N; i++) v[i] = (float)i * 0.25f;
    CHECK(set_f32(be, &t, v));
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &t, dst, 0, sizeof dst, &err), INFVSR_OK);
    /* Code that forgets to synchronize reads poison: every float is NaN. */
    int nans = 0;
    for (int i = 0; i < N; i++) nans += isnan(dst[i]);
    CHECK_EQ_INT(nans, N);
    /* Stream order: a later op does not change what the earlier get delivers. */
    CHECK_EQ_INT(infvsr_op_fill(be, &t, 7.0f, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &t, dst2, 4 * sizeof(float), 8 * sizeof(float), &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_synchronize(be, &err), INFVSR_OK);
    CHECK(memcmp(dst, v, sizeof v) == 0);
    for (int i = 0; i < 8; i++) CHECK(dst2[i] == 7.0f);
    /* The helper programs use does it right. */
    struct infvsr_tensor host;
    CHECK_EQ_INT(infvsr_backend_download_f32(be, &t, &host, &err), INFVSR_OK);
    CHECK(((float *)host.data)[N - 1] == 7.0f);
    infvsr_tensor_release(&host);
    struct infvsr_backend_traffic tr;
    infvsr_backend_get_traffic(be, &tr);
    CHECK_EQ_INT(tr.bytes_to_device, sizeof v);
    CHECK_EQ_INT(tr.bytes_from_device, sizeof dst + 8 * sizeof(float) + sizeof dst);
    /* Out-of-range set/get are refused. */
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &t, dst, 4, sizeof dst, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "outside its 256 bytes");
    infvsr_backend_tensor_free(be, &t);
    infvsr_backend_free(be);
}

/* ---- (c) host tensors refused ---- */

static void test_host_tensor_refused(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    struct infvsr_backend * other = open_devsim("devsim:1", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be && other);
    if (!be || !other) goto out;
    struct infvsr_err err = { 0 };
    struct infvsr_tensor x, y, w_host, w_other;
    CHECK(alloc_f32(be, &x, "x", 8));
    CHECK(alloc_f32(be, &y, "y", 4));
    x.ndim = 2, x.shape[0] = 1, x.shape[1] = 8;
    y.ndim = 2, y.shape[0] = 1, y.shape[1] = 4;
    CHECK_EQ_INT(infvsr_tensor_alloc(&w_host, "blocks.0.ffn.w_never_imported", INFVSR_TYPE_F32, 2,
                                     (const int64_t[]){ 4, 8 }), INFVSR_OK);
    /* Through the op wrapper: the memory kind says host. */
    CHECK_EQ_INT(infvsr_op_linear(be, &x, &w_host, NULL, INFVSR_UNARY_COUNT, &y, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "blocks.0.ffn.w_never_imported");
    /* A host pointer wrongly marked as device memory: devsim's own check names it. */
    w_host.mem = INFVSR_MEM_DEVICE;
    CHECK_EQ_INT(infvsr_op_linear(be, &x, &w_host, NULL, INFVSR_UNARY_COUNT, &y, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "w tensor 'blocks.0.ffn.w_never_imported'");
    CHECK_STR_CONTAINS(err.msg, "is not devsim memory");
    CHECK_EQ_INT(infvsr_backend_tensor_set(be, &w_host, &x, 0, 4, &err), INFVSR_ERR_INVALID_ARG);
    w_host.mem = INFVSR_MEM_HOST;
    infvsr_tensor_release(&w_host);
    /* Another devsim instance's tensor is not this one's memory either. */
    memset(&w_other, 0, sizeof w_other);
    infvsr_tensor_setup(&w_other, "w_on_devsim1", INFVSR_TYPE_F32, 2, (const int64_t[]){ 4, 8 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(other, &w_other, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_op_linear(be, &x, &w_other, NULL, INFVSR_UNARY_COUNT, &y, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "'w_on_devsim1'");
    CHECK_EQ_INT(infvsr_op_linear(other, &x, &w_other, NULL, INFVSR_UNARY_COUNT, &y, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "x tensor 'x'");
    /* Refusals are argument errors: the backend stays healthy and works. */
    CHECK(infvsr_backend_healthy(be));
    struct infvsr_tensor w;
    memset(&w, 0, sizeof w);
    infvsr_tensor_setup(&w, "w", INFVSR_TYPE_F32, 2, (const int64_t[]){ 4, 8 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &w, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_op_linear(be, &x, &w, NULL, INFVSR_UNARY_COUNT, &y, &err), INFVSR_OK);
    infvsr_backend_tensor_free(be, &w);
    infvsr_backend_tensor_free(other, &w_other);
    infvsr_backend_tensor_free(be, &x);
    infvsr_backend_tensor_free(be, &y);
out:
    infvsr_backend_free(be);
    infvsr_backend_free(other);
}

/* ---- (d) use after free, out-of-range views, double free ---- */

static void test_use_after_free_and_bad_views(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_err err = { 0 };
    struct infvsr_tensor a, b, keep, stale, view;
    CHECK(alloc_f32(be, &keep, "keep", 64)); /* so that the freed block is not the only one */
    CHECK(alloc_f32(be, &a, "a", 10));
    CHECK(alloc_f32(be, &b, "b", 10));
    /* A view inside a: fine. */
    infvsr_tensor_view(&view, "a[2:10]", INFVSR_TYPE_F32, 1, (const int64_t[]){ 8 }, (float *)a.data + 2);
    view.mem = INFVSR_MEM_DEVICE;
    CHECK_EQ_INT(infvsr_op_fill(be, &view, 1.0f, &err), INFVSR_OK);
    float back[10];
    CHECK(get_f32(be, &a, back));
    CHECK(back[0] == 0.0f && back[1] == 0.0f && back[2] == 1.0f && back[9] == 1.0f);
    /* A view running past the end of a (into b's block): refused, though b is live. */
    infvsr_tensor_view(&view, "a[4:12]", INFVSR_TYPE_F32, 1, (const int64_t[]){ 8 }, (float *)a.data + 4);
    view.mem = INFVSR_MEM_DEVICE;
    CHECK_EQ_INT(infvsr_op_fill(be, &view, 1.0f, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "'a[4:12]'");
    CHECK_STR_CONTAINS(err.msg, "past the end of its allocation");
    CHECK_EQ_INT(infvsr_backend_tensor_set(be, &view, back, 0, 4, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_EQ_INT(infvsr_op_add(be, &view, &b, &b, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "a tensor 'a[4:12]'");
    /* Use after free: a stale copy of a freed tensor. */
    stale = a;
    infvsr_backend_tensor_free(be, &a);
    CHECK_EQ_INT(infvsr_op_add(be, &stale, &b, &b, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "not in any live allocation (used after free?)");
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &stale, back, 0, 4, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "'a'");
    /* The commonest pattern: free, allocate the same size again, keep using the old
     * tensor. The quarantine keeps the freed block out of reuse, so it is still caught. */
    struct infvsr_tensor again;
    CHECK(alloc_f32(be, &again, "again", 10));
    CHECK(again.data != stale.data);
    CHECK_EQ_INT(infvsr_op_add(be, &stale, &b, &b, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "used after free?");
    infvsr_backend_tensor_free(be, &again);
    CHECK(infvsr_backend_healthy(be));

    /* A double free through a stale copy is a programmer error: abort, not corruption. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        if (!freopen("/dev/null", "w", stderr)) _exit(2);
        infvsr_backend_tensor_free(be, &stale);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "double free: child status %d", status);
    infvsr_backend_tensor_free(be, &b);
    infvsr_backend_tensor_free(be, &keep);
    infvsr_backend_free(be);
}

/* ---- (e) fault injection ---- */

static void test_fault_injection_is_sticky(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 3, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_err err = { 0 };
    struct infvsr_tensor x, y;
    CHECK(alloc_f32(be, &x, "x", 32));
    CHECK(alloc_f32(be, &y, "y", 32));
    float v[32], pending[32];
    for (int i = 0; i < 32; i++) v[i] = (float)i;
    CHECK(set_f32(be, &x, v));
    CHECK_EQ_INT(infvsr_op_fill(be, &y, 2.0f, &err), INFVSR_OK);          /* op 1 (copy) */
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &y, pending, 0, sizeof pending, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_op_add(be, &x, &y, &y, &err), INFVSR_OK);         /* op 2 */
    CHECK_EQ_INT(infvsr_op_softmax(be, &x, &y, &err), INFVSR_ERR_DEVICE); /* op 3: the fault */
    CHECK_STR_CONTAINS(err.msg, "devsim: injected device fault at op 3 (softmax)");
    CHECK(!infvsr_backend_healthy(be));
    CHECK_STR_CONTAINS(infvsr_backend_last_error(be), "injected device fault at op 3 (softmax)");
    /* Unhealthy for good: ops, memory calls and synchronize fail with the first error. */
    CHECK_EQ_INT(infvsr_op_add(be, &x, &y, &y, &err), INFVSR_ERR_DEVICE);
    CHECK_STR_CONTAINS(err.msg, "devsim backend unhealthy: devsim: injected device fault at op 3");
    CHECK_EQ_INT(infvsr_op_fill(be, &y, 0.0f, &err), INFVSR_ERR_DEVICE);
    CHECK_EQ_INT(infvsr_backend_tensor_set(be, &x, v, 0, sizeof v, &err), INFVSR_ERR_DEVICE);
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &x, v, 0, sizeof v, &err), INFVSR_ERR_DEVICE);
    CHECK_EQ_INT(infvsr_backend_synchronize(be, &err), INFVSR_ERR_DEVICE);
    int nans = 0; /* the get queued before the fault never completes */
    for (int i = 0; i < 32; i++) nans += isnan(pending[i]);
    CHECK_EQ_INT(nans, 32);
    struct infvsr_tensor z;
    memset(&z, 0, sizeof z);
    infvsr_tensor_setup(&z, "z", INFVSR_TYPE_F32, 1, (const int64_t[]){ 4 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &z, &err), INFVSR_ERR_DEVICE);
    CHECK_STR_CONTAINS(infvsr_backend_last_error(be), "op 3 (softmax)"); /* the first error stays */
    /* Cleanup still works. */
    infvsr_backend_tensor_free(be, &x);
    infvsr_backend_tensor_free(be, &y);
    infvsr_backend_free(be);

    /* The environment sets it for programs that cannot pass options; copies count. */
    setenv("INFVSR_DEVSIM_FAULT_AT_OP", "1", 1);
    be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    unsetenv("INFVSR_DEVSIM_FAULT_AT_OP");
    CHECK(be);
    if (!be) return;
    CHECK(alloc_f32(be, &y, "y", 32));
    CHECK_EQ_INT(infvsr_op_fill(be, &y, 1.0f, &err), INFVSR_ERR_DEVICE);
    CHECK_STR_CONTAINS(err.msg, "injected device fault at op 1 (copy)");
    infvsr_backend_free(be); /* y still allocated: freed with the backend */

    setenv("INFVSR_DEVSIM_FAULT_AT_OP", "soon", 1);
    struct infvsr_backend * bad = NULL;
    CHECK_EQ_INT(infvsr_backend_init_by_name("devsim", NULL, &bad, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "INFVSR_DEVSIM_FAULT_AT_OP='soon'");
    unsetenv("INFVSR_DEVSIM_FAULT_AT_OP");
    CHECK(bad == NULL);
}

/* ---- (f) capacity ---- */

static void test_nomem_when_full(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)1 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_err err = { 0 };
    struct infvsr_tensor a, b, c;
    CHECK(alloc_f32(be, &a, "a", 128 * 1024)); /* 512 KiB */
    memset(&b, 0, sizeof b);
    infvsr_tensor_setup(&b, "too_big", INFVSR_TYPE_F32, 1, (const int64_t[]){ 150 * 1024 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &b, &err), INFVSR_ERR_NOMEM);
    CHECK_STR_CONTAINS(err.msg, "'too_big'");
    CHECK_STR_CONTAINS(err.msg, "out of device memory: 614400 bytes requested, capacity 1048576, 524288 in use by 1 "
                                "allocations, largest free block 524288");
    CHECK(b.data == NULL);
    CHECK(infvsr_backend_healthy(be)); /* NOMEM is not a device fault */
    infvsr_backend_tensor_free(be, &a);
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &b, &err), INFVSR_OK);
    /* Overflowing shapes are argument errors, not huge allocations. */
    memset(&c, 0, sizeof c);
    infvsr_tensor_setup(&c, "huge", INFVSR_TYPE_F32, 2, (const int64_t[]){ INT64_MAX / 2, 4 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &c, &err), INFVSR_ERR_INVALID_ARG);
    infvsr_tensor_setup(&c, "4 TiB", INFVSR_TYPE_F32, 2, (const int64_t[]){ (int64_t)1 << 40, 1 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &c, &err), INFVSR_ERR_NOMEM);
    infvsr_backend_tensor_free(be, &b);
    infvsr_backend_free(be);

    setenv("INFVSR_DEVSIM_CAPACITY_MB", "3", 1);
    be = open_devsim("devsim", (size_t)1 << 20, 0, INFVSR_PRECISION_AUTO);
    unsetenv("INFVSR_DEVSIM_CAPACITY_MB");
    CHECK(be);
    if (!be) return;
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    CHECK_EQ_INT(caps.mem_total, (size_t)3 << 20);
    infvsr_backend_free(be);
    setenv("INFVSR_DEVSIM_CAPACITY_MB", "0", 1);
    CHECK_EQ_INT(infvsr_backend_init_by_name("devsim", NULL, &be, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "INFVSR_DEVSIM_CAPACITY_MB='0'");
    unsetenv("INFVSR_DEVSIM_CAPACITY_MB");
}

/* Blocks freed out of order coalesce: four quarters, free 1 and 3 -> no room for a half;
 * free 2 -> three quarters in one piece. */
static void test_free_coalesces(void) {
    const size_t cap = (size_t)1 << 20, q = cap / 4;
    struct infvsr_backend * be = open_devsim("devsim", cap, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_err err = { 0 };
    struct infvsr_tensor t[4], big;
    for (int i = 0; i < 4; i++) CHECK(alloc_f32(be, &t[i], "quarter", (int64_t)(q / 4)));
    infvsr_backend_tensor_free(be, &t[1]);
    infvsr_backend_tensor_free(be, &t[3]);
    memset(&big, 0, sizeof big);
    infvsr_tensor_setup(&big, "half", INFVSR_TYPE_F32, 1, (const int64_t[]){ (int64_t)(2 * q / 4) });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &big, &err), INFVSR_ERR_NOMEM);
    infvsr_backend_tensor_free(be, &t[2]);
    infvsr_tensor_setup(&big, "three quarters", INFVSR_TYPE_F32, 1, (const int64_t[]){ (int64_t)(3 * q / 4) });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &big, &err), INFVSR_OK);
    infvsr_backend_tensor_free(be, &big);
    infvsr_backend_tensor_free(be, &t[0]);
    /* Everything back in one piece: the whole capacity in one allocation. */
    infvsr_tensor_setup(&big, "all", INFVSR_TYPE_U8, 1, (const int64_t[]){ (int64_t)cap });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &big, &err), INFVSR_OK);
    infvsr_backend_tensor_free(be, &big);
    infvsr_backend_free(be);
}

/* The quarantine never costs capacity: a full-capacity allocation right after frees
 * drains it. */
static void test_quarantine_drains_when_full(void) {
    const size_t cap = (size_t)1 << 20;
    struct infvsr_backend * be = open_devsim("devsim", cap, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_tensor t[16], all;
    for (int i = 0; i < 16; i++) CHECK(alloc_f32(be, &t[i], "small", 1000));
    for (int i = 0; i < 16; i++) infvsr_backend_tensor_free(be, &t[i]); /* 64 KiB: all quarantined */
    memset(&all, 0, sizeof all);
    infvsr_tensor_setup(&all, "all", INFVSR_TYPE_U8, 1, (const int64_t[]){ (int64_t)cap });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &all, NULL), INFVSR_OK);
    infvsr_backend_tensor_free(be, &all);
    infvsr_backend_free(be);
}

/* Random allocations and frees: blocks never overlap, contents survive other blocks'
 * traffic, free bytes add up, and at the end everything coalesces back. */
static void test_alloc_free_stress(void) {
    const size_t cap = (size_t)1 << 20; /* about half of what the slots would hold: NOMEM happens */
    struct infvsr_backend * be = open_devsim("devsim", cap, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    enum { SLOTS = 96, ROUNDS = 3000 };
    struct infvsr_tensor t[SLOTS];
    uint32_t tag[SLOTS];
    memset(t, 0, sizeof t);
    uint64_t rng = 42;
    size_t live = 0, nomem = 0, bad = 0;
    uint32_t buf[16384];
    for (int r = 0; r < ROUNDS; r++) {
        int i = (int)(test_rng_next(&rng) % SLOTS);
        if (t[i].data) {
            /* check then free */
            int64_t n = infvsr_tensor_numel(&t[i]);
            if (get_f32(be, &t[i], (float *)buf)) {
                for (int64_t k = 0; k < n; k++) bad += buf[k] != tag[i] + (uint32_t)k;
            } else {
                bad++;
            }
            live -= ((size_t)n * 4 + 255) / 256 * 256;
            infvsr_backend_tensor_free(be, &t[i]);
        } else {
            int64_t n = 1 + (int64_t)(test_rng_next(&rng) % 16384);
            infvsr_tensor_setup(&t[i], "s", INFVSR_TYPE_F32, 1, (const int64_t[]){ n });
            struct infvsr_err err = { 0 };
            enum infvsr_status st = infvsr_backend_tensor_alloc(be, &t[i], &err);
            if (st == INFVSR_ERR_NOMEM) {
                nomem++;
                memset(&t[i], 0, sizeof t[i]);
                continue;
            }
            CHECK_EQ_INT(st, INFVSR_OK);
            tag[i] = (uint32_t)test_rng_next(&rng);
            for (int64_t k = 0; k < n; k++) buf[k] = tag[i] + (uint32_t)k;
            CHECK(set_f32(be, &t[i], (const float *)buf));
            live += ((size_t)n * 4 + 255) / 256 * 256;
        }
        struct infvsr_backend_caps caps;
        infvsr_backend_get_caps(be, &caps);
        if (caps.mem_free != cap - live) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* No two live blocks overlap. */
    for (int i = 0; i < SLOTS; i++)
        for (int j = 0; j < SLOTS; j++) {
            if (i == j || !t[i].data || !t[j].data) continue;
            uintptr_t a0 = (uintptr_t)t[i].data, a1 = a0 + infvsr_tensor_nbytes(&t[i]);
            uintptr_t b0 = (uintptr_t)t[j].data;
            CHECK(!(b0 >= a0 && b0 < a1));
        }
    for (int i = 0; i < SLOTS; i++) infvsr_backend_tensor_free(be, &t[i]);
    struct infvsr_tensor all;
    memset(&all, 0, sizeof all);
    infvsr_tensor_setup(&all, "all", INFVSR_TYPE_U8, 1, (const int64_t[]){ (int64_t)cap });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &all, NULL), INFVSR_OK);
    infvsr_backend_tensor_free(be, &all);
    printf("  stress: %d rounds, %zu NOMEM refusals\n", ROUNDS, nomem);
    CHECK(nomem > 0);
    infvsr_backend_free(be);
}

/* The default capacity is 16 GiB of address space: a tensor of 8 GiB allocates (its pages
 * are never touched, so it costs no RAM) and frees. */
static void test_default_capacity_is_address_space(void) {
    struct infvsr_backend * be = NULL;
    struct infvsr_err err = { 0 };
    enum infvsr_status st = infvsr_backend_init_by_name("devsim", NULL, &be, &err);
    CHECK_MSG(st == INFVSR_OK, "%s", err.msg);
    if (!be) return;
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    CHECK_EQ_INT(caps.mem_total, (size_t)16 << 30);
    struct infvsr_tensor t;
    memset(&t, 0, sizeof t);
    infvsr_tensor_setup(&t, "8GiB", INFVSR_TYPE_BF16, 2, (const int64_t[]){ (int64_t)1 << 20, 4096 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &t, &err), INFVSR_OK);
    uint16_t one = 0x3f80, back = 0;
    CHECK_EQ_INT(infvsr_backend_tensor_set(be, &t, &one, infvsr_tensor_nbytes(&t) - 2, 2, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &t, &back, infvsr_tensor_nbytes(&t) - 2, 2, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_synchronize(be, &err), INFVSR_OK);
    CHECK_EQ_INT(back, 0x3f80);
    infvsr_backend_tensor_free(be, &t);
    infvsr_backend_free(be);
}

/* ---- the dtype rules of the CUDA backend, mirrored ---- */

static void test_cuda_dtype_rules(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_BF16);
    CHECK(be);
    if (!be) return;
    struct infvsr_err err = { 0 };
    struct infvsr_tensor f[4], h[4];
    const int64_t s2[2] = { 4, 4 };
    for (int i = 0; i < 4; i++) {
        memset(&f[i], 0, sizeof f[i]);
        memset(&h[i], 0, sizeof h[i]);
        infvsr_tensor_setup(&f[i], "f32", INFVSR_TYPE_F32, 2, s2);
        infvsr_tensor_setup(&h[i], "bf16", INFVSR_TYPE_BF16, 2, s2);
        CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &f[i], &err), INFVSR_OK);
        CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &h[i], &err), INFVSR_OK);
    }
    /* mixed f32/bf16 operands are fine where CUDA takes them ... */
    CHECK_EQ_INT(infvsr_op_add(be, &f[0], &h[0], &h[1], &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_op_matmul(be, &h[0], &h[1], true, 1.0f, &f[2], &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_op_linear(be, &h[0], &f[0], NULL, INFVSR_UNARY_COUNT, &f[1], &err), INFVSR_OK);
    /* ... and refused where it does not. */
    CHECK_EQ_INT(infvsr_op_matmul(be, &f[0], &h[1], true, 1.0f, &f[2], &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "must share a dtype");
    struct infvsr_tensor bias;
    memset(&bias, 0, sizeof bias);
    infvsr_tensor_setup(&bias, "bias", INFVSR_TYPE_BF16, 3, (const int64_t[]){ 1, 4, 4 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &bias, &err), INFVSR_OK);
    struct infvsr_attn_args a = { .q = &h[0], .k0 = &h[1], .v0 = &h[2], .bias = &bias, .n_heads = 1, .scale = 1.0f,
                                  .out = &h[3] };
    CHECK_EQ_INT(infvsr_op_attention(be, &a, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "bias 'bias' is bf16, must be f32");
    a.bias = NULL;
    CHECK_EQ_INT(infvsr_op_attention(be, &a, &err), INFVSR_OK);
    /* in place with two dtypes over one storage */
    struct infvsr_tensor alias = f[0];
    alias.dtype = INFVSR_TYPE_BF16;
    CHECK_EQ_INT(infvsr_op_unary(be, INFVSR_UNARY_SILU, &f[0], &alias, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "share storage");
    /* f16 is a weight dtype, never an activation */
    struct infvsr_tensor f16 = h[2];
    f16.dtype = INFVSR_TYPE_F16;
    f16.name[0] = 0;
    CHECK_EQ_INT(infvsr_op_softmax(be, &f16, &h[3], &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "activations must be f32 or bf16");
    /* conv3d: f32 input into a bf16 output is not a CUDA path */
    struct infvsr_tensor x, w, y;
    memset(&x, 0, sizeof x), memset(&w, 0, sizeof w), memset(&y, 0, sizeof y);
    infvsr_tensor_setup(&x, "x", INFVSR_TYPE_F32, 4, (const int64_t[]){ 2, 1, 3, 3 });
    infvsr_tensor_setup(&w, "w", INFVSR_TYPE_F32, 5, (const int64_t[]){ 2, 2, 1, 1, 1 });
    infvsr_tensor_setup(&y, "y", INFVSR_TYPE_BF16, 4, (const int64_t[]){ 2, 1, 3, 3 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &x, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &w, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(be, &y, &err), INFVSR_OK);
    struct infvsr_conv3d_args ca = { .x = &x, .w = &w, .stride_t = 1, .stride_h = 1, .stride_w = 1, .y = &y };
    CHECK_EQ_INT(infvsr_op_conv3d(be, &ca, &err), INFVSR_ERR_UNSUPPORTED);
    CHECK(infvsr_backend_healthy(be));
    infvsr_backend_free(be); /* every tensor above still allocated: unmapped with the heap */
}

/* ---- lifetime ---- */

static void test_free_backend_with_live_tensors_and_pending_gets(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_tensor t[8];
    float dst[100];
    for (int i = 0; i < 8; i++) CHECK(alloc_f32(be, &t[i], "leaked", 100 + 1000 * i));
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &t[0], dst, 0, sizeof dst, NULL), INFVSR_OK);
    infvsr_backend_free(be); /* LSan (the sanitizer build) reports any leak here */
}

static void test_empty_tensors(void) {
    struct infvsr_backend * be = open_devsim("devsim", (size_t)16 << 20, 0, INFVSR_PRECISION_AUTO);
    CHECK(be);
    if (!be) return;
    struct infvsr_err err = { 0 };
    struct infvsr_tensor a, b;
    CHECK(alloc_f32(be, &a, "empty_a", 0));
    CHECK(alloc_f32(be, &b, "empty_b", 0));
    CHECK(a.data != NULL && a.data != b.data);
    CHECK_EQ_INT(infvsr_op_add(be, &a, &a, &b, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_tensor_get(be, &a, NULL, 0, 0, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_synchronize(be, &err), INFVSR_OK);
    infvsr_backend_tensor_free(be, &a);
    infvsr_backend_tensor_free(be, &b);
    infvsr_backend_free(be);
}

static const struct test_case tests[] = {
    TEST(test_caps),
    TEST(test_alloc_zero_filled_and_reused_zeroed),
    TEST(test_planted_host_access_segfaults),
    TEST(test_get_needs_synchronize),
    TEST(test_host_tensor_refused),
    TEST(test_use_after_free_and_bad_views),
    TEST(test_fault_injection_is_sticky),
    TEST(test_nomem_when_full),
    TEST(test_free_coalesces),
    TEST(test_quarantine_drains_when_full),
    TEST(test_alloc_free_stress),
    TEST(test_default_capacity_is_address_space),
    TEST(test_cuda_dtype_rules),
    TEST(test_free_backend_with_live_tensors_and_pending_gets),
    TEST(test_empty_tensors),
    { 0 },
};

int main(int argc, char ** argv) {
    /* The environment of the test itself must not change the backends it opens. */
    unsetenv("INFVSR_DEVSIM_FAULT_AT_OP");
    unsetenv("INFVSR_DEVSIM_CAPACITY_MB");
    return test_main(argc, argv, tests);
}
