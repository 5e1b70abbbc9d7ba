/* Helpers shared by the VAE tests: the backend under test, the tiny model config, loading a
 * fixture model, moving tensors to and from the backend.
 *
 * The backend under test is tests/common/test_backend.h's (`--backend cpu|devsim --precision
 * auto|f32|bf16`, or INFVSR_TEST_BACKEND / INFVSR_TEST_PRECISION; default cpu). CMake
 * registers every VAE test on cpu and on devsim. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/backend.h"
#include "infvsr/model_config.h"
#include "infvsr/vae.h"
#include "infvsr/weights.h"
#include "ops.h"
#include "test_backend.h"

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
    return vt_load_on(tb_backend(), name, w_out);
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
