/* The backend a test binary runs on: `--backend cpu|devsim|cuda[:N] --precision
 * auto|f32|bf16` (taken out of argv before the test-name filter) or, without them,
 * INFVSR_TEST_BACKEND / INFVSR_TEST_PRECISION; the default is cpu. CMake registers module
 * tests on cpu and on devsim (`<area>.<name>` and `<area>.<name>.devsim`); on devsim in f32
 * a test compares with a cpu run in the same process, bit for bit (tb_cpu()). */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/backend.h"

static const char *          tb_name      = "cpu";
static enum infvsr_precision tb_precision = INFVSR_PRECISION_AUTO;
static struct infvsr_backend * tb_be, * tb_cpu_be;

/* Takes --backend/--precision out of argv (env fallback); exits 2 on a bad value. */
static inline void tb_parse_args(int * argc, char ** argv) {
    const char * b = getenv("INFVSR_TEST_BACKEND"), * p = getenv("INFVSR_TEST_PRECISION");
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        if (i + 1 < *argc && strcmp(argv[i], "--backend") == 0) {
            b = argv[++i];
        } else if (i + 1 < *argc && strcmp(argv[i], "--precision") == 0) {
            p = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;
    if (b && *b) tb_name = b;
    if (p && *p) {
        int v = infvsr_precision_from_name(p);
        if (v < 0) {
            fprintf(stderr, "unknown precision '%s'\n", p);
            exit(2);
        }
        tb_precision = (enum infvsr_precision)v;
    }
}

/* A backend by name; exits 1 when it cannot be created (the test cannot run). */
static inline struct infvsr_backend * tb_open(const char * name, enum infvsr_precision precision, bool use_ref) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    o.precision     = precision;
    o.cpu_reference = use_ref;
    struct infvsr_backend * be = NULL;
    struct infvsr_err err = { 0 };
    if (infvsr_backend_init_by_name(name, &o, &be, &err) != INFVSR_OK) {
        fprintf(stderr, "cannot create backend %s: %s\n", name, err.msg);
        exit(1);
    }
    return be;
}

static inline bool tb_is_cpu(void) { return strcmp(tb_name, "cpu") == 0; }

/* The backend under test (created once). */
static inline struct infvsr_backend * tb_backend(void) {
    if (!tb_be) tb_be = tb_open(tb_name, tb_precision, false);
    return tb_be;
}

/* A cpu backend: the backend under test when that is cpu. */
static inline struct infvsr_backend * tb_cpu(void) {
    if (tb_is_cpu()) return tb_backend();
    if (!tb_cpu_be) tb_cpu_be = tb_open("cpu", INFVSR_PRECISION_AUTO, false);
    return tb_cpu_be;
}

static inline enum infvsr_dtype tb_act_dtype(struct infvsr_backend * be) {
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    return caps.act_dtype;
}

/* The backend under test computes in f32 but is not the cpu: its outputs must equal the
 * cpu's bit for bit (devsim). */
static inline bool tb_expect_cpu_identical(void) {
    return !tb_is_cpu() && strncmp(tb_name, "devsim", 6) == 0 && tb_act_dtype(tb_backend()) == INFVSR_TYPE_F32;
}

/* Backend bytes in use (device backends; 0 on host-memory backends). */
static inline size_t tb_device_bytes_in_use(struct infvsr_backend * be) {
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    return caps.mem_total - caps.mem_free;
}

static inline void tb_free_backends(void) {
    if (tb_cpu_be) infvsr_backend_free(tb_cpu_be);
    if (tb_be) infvsr_backend_free(tb_be);
    tb_cpu_be = tb_be = NULL;
}
