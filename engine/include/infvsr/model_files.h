/* What the four files of a model directory must hold, and how to check a file against it.
 *
 * infvsr_model_file_spec() lists every tensor a module's loader reads from its file (key
 * without any checkpoint wrapper prefix, and shape), for the model config `cfg`. It is the
 * single source of the key names: `infvsr make-tiny-model` writes exactly these tensors,
 * `infvsr verify-model` and the daemon's startup summary check files against them. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "infvsr/model_config.h"
#include "infvsr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_weights;
struct infvsr_model;

enum infvsr_model_file { INFVSR_FILE_DIT = 0, INFVSR_FILE_VAE, INFVSR_FILE_RAM, INFVSR_FILE_DAPE, INFVSR_FILE_COUNT };

/* "InfVSR.ckpt", "Wan2.1_VAE.pth", "ram_swin_large_14m.pth", "DAPE.pth" */
const char * infvsr_model_file_name(enum infvsr_model_file f);

/* How make-tiny-model initialises a tensor (random demo weights); ignored by checks. */
enum infvsr_init_hint { INFVSR_INIT_FAN_IN, INFVSR_INIT_BIAS, INFVSR_INIT_GAIN, INFVSR_INIT_MOD, INFVSR_INIT_TABLE };

struct infvsr_tensor_spec {
    const char *          key; /* valid during the callback only */
    int                   ndim;
    int64_t               shape[INFVSR_MAX_DIMS];
    enum infvsr_init_hint init;
    float                 scale;
};

typedef void (*infvsr_tensor_spec_fn)(void * ctx, const struct infvsr_tensor_spec * s);

/* Calls fn once per tensor file `f` must provide, in a fixed order. */
void infvsr_model_file_spec(const struct infvsr_model_config * cfg, enum infvsr_model_file f, infvsr_tensor_spec_fn fn,
                            void * ctx);

#define INFVSR_FILE_CHECK_PROBLEMS 2048

struct infvsr_model_file_check {
    size_t   n_tensors;            /* in the file */
    uint64_t bytes;                /* of all its tensors */
    char     dtypes[48];           /* dtypes of the needed tensors found: "bf16", "f32+bf16" */
    size_t   n_needed, n_found;    /* needed by the config / found (any shape) */
    size_t   n_bad_shape, n_bad_dtype;
    size_t   n_problems;
    char     wrapper[96];          /* wrapper prefix the keys were found under ("" none) */
    char     problems[INFVSR_FILE_CHECK_PROBLEMS]; /* one per line (the first ones), "" none */
};

/* Checks every tensor of the spec: present (under the file's wrapper prefix), same shape, a
 * dtype the loader takes (bf16/f16/f32; the DiT takes exactly those, the other modules any
 * float dtype). Problems name the key, the expectation and, for a missing key, the nearest
 * keys in the file. */
void infvsr_model_file_check(const struct infvsr_model_config * cfg, enum infvsr_model_file f,
                             const struct infvsr_weights * w, struct infvsr_model_file_check * out);

/* The one-line summary `infvsr verify-model` and infvsrd print per file:
 * "InfVSR.ckpt: torch zip, pickle protocol 2, 825 tensors, 2.84 GB bf16; needs 825: all found,
 *  shapes and dtypes ok" (or "... 3 missing, 1 wrong shape"), plus the wrapper when one. */
const char * infvsr_model_file_check_line(const struct infvsr_model_file_check * c, enum infvsr_model_file f,
                                          const struct infvsr_weights * w, char * buf, size_t len);

/* The same line for a loaded model's file (infvsr_model_open_*); "" when it has no such file. */
const char * infvsr_model_file_summary(const struct infvsr_model * m, enum infvsr_model_file f, char * buf, size_t len);

#ifdef __cplusplus
}
#endif
