/* Helpers shared by the VAE tests: the CPU backend, the tiny model config, loading a
 * fixture model. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include "infvsr/model_config.h"
#include "infvsr/vae.h"
#include "infvsr/weights.h"
#include "ops.h"

static struct infvsr_backend * vt_backend(void) {
    static struct infvsr_backend * be;
    if (!be) {
        struct infvsr_cpu_params p = infvsr_cpu_default_params();
        if (infvsr_cpu_backend_init(&p, &be) != INFVSR_OK) {
            fprintf(stderr, "cannot create the CPU backend\n");
            exit(1);
        }
    }
    return be;
}

static struct infvsr_vae_config vt_tiny_config(void) {
    struct infvsr_model_config cfg;
    struct infvsr_err err = { 0 };
    if (infvsr_model_config_load(INFVSR_SOURCE_DIR "/config/models/infvsr-tiny.json", &cfg, &err) != INFVSR_OK) {
        fprintf(stderr, "tiny config: %s\n", err.msg);
        exit(1);
    }
    return cfg.vae;
}

/* Opens DIR/name.pth and loads the tiny VAE from it; exits on failure (fixture missing). */
static struct infvsr_vae * vt_load(const char * name, struct infvsr_weights ** w_out) {
    char path[1024];
    struct infvsr_err err = { 0 };
    snprintf(path, sizeof path, "%s/%s.pth", VAE_FIXTURE_DIR, name);
    struct infvsr_weights * w = NULL;
    struct infvsr_vae * vae = NULL;
    struct infvsr_vae_config cfg = vt_tiny_config();
    if (infvsr_weights_open(path, &w, &err) != INFVSR_OK || infvsr_vae_load(w, &cfg, vt_backend(), &vae, &err) != INFVSR_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        exit(1);
    }
    *w_out = w;
    return vae;
}
