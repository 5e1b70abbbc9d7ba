/* Model hyper-parameters, read from the JSON files in config/models (jansson).
 * The full InfVSR config and the tiny test config share one schema; see
 * config/models/infvsr-full.json for the values of MODEL-SPEC.md. */
#pragma once

#include "infvsr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_dit_config {
    int   dim, ffn_dim, num_heads, num_layers;
    int   in_dim, out_dim, freq_dim, text_dim;
    float eps;
};

struct infvsr_vae_config {
    int dim, z_dim;
    int dim_mult[4];
    int num_res_blocks;
};

struct infvsr_visual_config {
    int img_size, patch_size, embed_dim;
    int depths[4], num_heads[4];
    int window_size, mlp_ratio, lora_rank, out_dim;
};

struct infvsr_model_config {
    char                        name[64];
    struct infvsr_dit_config    dit;
    struct infvsr_vae_config    vae;
    struct infvsr_visual_config visual;
};

/* The built-in full InfVSR configuration (MODEL-SPEC.md numbers). */
struct infvsr_model_config infvsr_model_config_full(void);

/* Parses a JSON model config. Unknown keys are errors (typos must not be ignored). */
enum infvsr_status infvsr_model_config_load(const char * path, struct infvsr_model_config * out,
                                            struct infvsr_err * err);

#ifdef __cplusplus
}
#endif
