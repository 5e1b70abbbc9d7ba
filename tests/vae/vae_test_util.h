/* Helpers shared by the VAE tests: the backend under test, the tiny model config, loading a
 * fixture model, moving tensors to and from the backend.
 *
 * The backend comes from the command line (`--backend cpu|devsim --precision auto|f32|bf16`,
 * taken out of argv before the test filter) or, without them, from INFVSR_TEST_BACKEND /
 * INFVSR_TEST_PRECISION; the default is cpu. CMake registers every VAE test on cpu and on
 * devsim. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/backend.h"
#include "infvsr/model_config.h"
#include "infvsr/vae.h"
#include "infvsr/weights.h"
#include "ops.h"

static const char *          vt_backend_name = "cpu";
static enum infvsr_precision vt_precision    = INFVSR_PRECISION_AUTO;

/* Takes --backend/--precision out of argv (env fallback); exits 2 on a bad value. */
static inline void vt_parse_args(int * argc, char ** argv) {
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
    if (b && *b) vt_backend_name = b;
    if (p && *p) {
        int v = infvsr_precision_from_name(p);
        if (v < 0) {
            fprintf(stderr, "unknown precision '%s'\n", p);
            exit(2);
        }
        vt_precision = (enum infvsr_precision)v;
    }
}

static inline struct infvsr_backend * vt_open(const char * name, enum infvsr_precision precision) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    o.precision = precision;
    struct infvsr_backend * be = NULL;
    struct infvsr_err err = { 0 };
    if (infvsr_backend_init_by_name(name, &o, &be, &err) != INFVSR_OK) {
        fprintf(stderr, "cannot create backend %s: %s\n", name, err.msg);
        exit(1);
    }
    return be;
}

/* The backend under test, and a cpu backend (the same one when testing cpu). */
static struct infvsr_backend * vt_be;
static struct infvsr_backend * vt_cpu_be;

static inline struct infvsr_backend * vt_backend(void) {
    if (!vt_be) vt_be = vt_open(vt_backend_name, vt_precision);
    return vt_be;
}

static inline bool vt_is_cpu(void) { return strcmp(vt_backend_name, "cpu") == 0; }

static inline struct infvsr_backend * vt_cpu(void) {
    if (vt_is_cpu()) return vt_backend();
    if (!vt_cpu_be) vt_cpu_be = vt_open("cpu", INFVSR_PRECISION_AUTO);
    return vt_cpu_be;
}

static inline enum infvsr_dtype vt_act_dtype(struct infvsr_backend * be) {
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    return caps.act_dtype;
}

static inline void vt_free_backends(void) {
    if (vt_cpu_be) infvsr_backend_free(vt_cpu_be);
    if (vt_be) infvsr_backend_free(vt_be);
    vt_cpu_be = vt_be = NULL;
}

static inline struct infvsr_vae_config vt_tiny_config(void) {
    struct infvsr_model_config cfg;
    struct infvsr_err err = { 0 };
    if (infvsr_model_config_load(INFVSR_SOURCE_DIR "/config/models/infvsr-tiny.json", &cfg, &err) != INFVSR_OK) {
        fprintf(stderr, "tiny config: %s\n", err.msg);
        exit(1);
    }
    return cfg.vae;
}

/* Opens DIR/name.pth and loads the tiny VAE from it onto `be`; exits on failure (fixture
 * missing). */
static inline struct infvsr_vae * vt_load_on(struct infvsr_backend * be, const char * name, struct infvsr_weights ** w_out) {
    char path[1024];
    struct infvsr_err err = { 0 };
    snprintf(path, sizeof path, "%s/%s.pth", VAE_FIXTURE_DIR, name);
    struct infvsr_weights * w = NULL;
    struct infvsr_vae * vae = NULL;
    struct infvsr_vae_config cfg = vt_tiny_config();
    if (infvsr_weights_open(path, &w, &err) != INFVSR_OK || infvsr_vae_load(w, &cfg, be, &vae, &err) != INFVSR_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        exit(1);
    }
    *w_out = w;
    return vae;
}

static inline struct infvsr_vae * vt_load(const char * name, struct infvsr_weights ** w_out) {
    return vt_load_on(vt_backend(), name, w_out);
}

/* A host tensor's copy on `be` (its own dtype); exits on failure. */
static inline struct infvsr_tensor vt_upload(struct infvsr_backend * be, const struct infvsr_tensor * host) {
    struct infvsr_tensor t = { 0 };
    struct infvsr_err err = { 0 };
    if (infvsr_backend_upload(be, host, INFVSR_TYPE_COUNT, &t, &err) != INFVSR_OK) {
        fprintf(stderr, "upload %s: %s\n", host->name, err.msg);
        exit(1);
    }
    return t;
}

/* A zero-filled [4-D] tensor on `be`; exits on failure. */
static inline struct infvsr_tensor vt_alloc(struct infvsr_backend * be, const char * name, enum infvsr_dtype dt,
                                     const int64_t * shape) {
    struct infvsr_tensor t = { 0 };
    struct infvsr_err err = { 0 };
    infvsr_tensor_setup(&t, name, dt, 4, shape);
    if (infvsr_backend_tensor_alloc(be, &t, &err) != INFVSR_OK) {
        fprintf(stderr, "alloc %s: %s\n", name, err.msg);
        exit(1);
    }
    return t;
}

/* Synchronizes and returns an owned host F32 copy of a backend tensor; exits on failure. */
static inline struct infvsr_tensor vt_download(struct infvsr_backend * be, const struct infvsr_tensor * dev) {
    struct infvsr_tensor t = { 0 };
    struct infvsr_err err = { 0 };
    if (infvsr_backend_download_f32(be, dev, &t, &err) != INFVSR_OK) {
        fprintf(stderr, "download %s: %s\n", dev->name, err.msg);
        exit(1);
    }
    return t;
}
