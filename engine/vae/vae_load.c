/* infvsr_vae_load/free: configuration checks, state-dict prefix detection, the activation
 * dtype of the backend and the latent normalisation constants of MODEL-SPEC.md section 5.5. */
#include <stdlib.h>
#include <string.h>

#include "infvsr/weights.h"
#include "vae/vae_internal.h"

static const float latent_mean[INFVSR_VAE_Z_DIM] = {
    -0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
    0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f,
};
static const float latent_std[INFVSR_VAE_Z_DIM] = {
    2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
    3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.916f,
};

enum infvsr_status infvsr_vae_load(const struct infvsr_weights * w, const struct infvsr_vae_config * cfg,
                                   struct infvsr_backend * be, struct infvsr_vae ** out,
                                   struct infvsr_err * err) {
    *out = NULL;
    if (!w || !cfg || !be) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: NULL weights, config or backend");
    if (cfg->z_dim != INFVSR_VAE_Z_DIM) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: z_dim %d unsupported (the Wan 2.1 VAE has %d)",
                              cfg->z_dim, INFVSR_VAE_Z_DIM);
    }
    if (cfg->dim <= 0 || cfg->num_res_blocks <= 0 || cfg->num_res_blocks > 4) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: bad dim %d / num_res_blocks %d", cfg->dim,
                              cfg->num_res_blocks);
    }
    for (int i = 0; i < 4; i++) {
        /* The decoder halves the channels of every upsample: widths must stay even. */
        if (cfg->dim_mult[i] <= 0 || (cfg->dim * cfg->dim_mult[i]) % 2) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: bad dim_mult[%d] = %d", i, cfg->dim_mult[i]);
        }
    }
    struct infvsr_vae * m = calloc(1, sizeof *m);
    if (!m) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    m->be  = be;
    m->cfg = *cfg;
    m->act = caps.act_dtype;
    /* Wan2.1_VAE.pth is either the flat state dict or {"model_state": state dict}. */
    const char * prefix = infvsr_weights_find(w, "model_state.encoder.conv1.weight") ? "model_state." : "";
    enum infvsr_status st = vae_build(m, w, prefix, err);
    if (st != INFVSR_OK) {
        infvsr_vae_free(m);
        return st;
    }
    for (int c = 0; c < INFVSR_VAE_Z_DIM; c++) {
        /* offset = bf16(mean), inv_std = bf16(fp32 1/std): part of the model's arithmetic. */
        m->offset[c]  = infvsr_bf16_to_f32(infvsr_f32_to_bf16(latent_mean[c]));
        m->inv_std[c] = infvsr_bf16_to_f32(infvsr_f32_to_bf16(1.0f / latent_std[c]));
    }
    *out = m;
    return INFVSR_OK;
}

void infvsr_vae_free(struct infvsr_vae * vae) {
    if (!vae) return;
    infvsr_weight_set_release(&vae->ws, vae->be);
    free(vae->raw);
    free(vae);
}

size_t infvsr_vae_resident_bytes(const struct infvsr_vae * vae) { return vae ? vae->ws.resident_bytes : 0; }

int infvsr_vae_n_slots(const struct infvsr_vae * vae) { return vae->n_slots; }

const char * infvsr_vae_slot_name(const struct infvsr_vae * vae, int slot) {
    return slot >= 0 && slot < vae->n_slots ? vae->slots[slot].name : NULL;
}
