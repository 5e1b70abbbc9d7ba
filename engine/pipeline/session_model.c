/* The model bundle of session.h: the four official checkpoint files of a model directory,
 * the model config, and the three loaded modules (DiT, VAE, visual encoder). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "infvsr/dit.h"
#include "infvsr/session.h"
#include "infvsr/vae.h"
#include "infvsr/visual.h"
#include "infvsr/weights.h"
#include "session_internal.h"

#define PATH_MAX_LEN 4096

static bool is_file(const char * path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* DIR/name, or DIR/<stem>.safetensors when only that exists. False when neither exists. */
static bool find_model_file(const char * dir, const char * name, char * out, size_t len) {
    snprintf(out, len, "%s/%s", dir, name);
    if (is_file(out)) return true;
    const char * dot = strrchr(name, '.');
    int stem = dot ? (int)(dot - name) : (int)strlen(name);
    snprintf(out, len, "%s/%.*s.safetensors", dir, stem, name);
    return is_file(out);
}

enum infvsr_status infvsr_model_open_dir(const char * dir, struct infvsr_backend * be,
                                         struct infvsr_model ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!dir || !be) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "model dir and backend are required");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return infvsr_err_set(err, INFVSR_ERR_IO, "model directory '%s' does not exist or is not a directory", dir);

    static const char * const names[4] = { INFVSR_MODEL_FILE_DIT, INFVSR_MODEL_FILE_VAE, INFVSR_MODEL_FILE_RAM,
                                           INFVSR_MODEL_FILE_DAPE };
    char paths[4][PATH_MAX_LEN];
    char missing[256] = "";
    for (int i = 0; i < 4; i++) {
        if (!find_model_file(dir, names[i], paths[i], sizeof paths[i])) {
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof missing - l, "%s%s", l ? ", " : "", names[i]);
        }
    }
    if (missing[0]) {
        return infvsr_err_set(err, INFVSR_ERR_IO,
                              "model directory '%s' lacks %s (each may also be <stem>.safetensors). "
                              "Get the official files from the InfVSR release (README, 'Model files'), "
                              "or run 'infvsr make-tiny-model DIR' for a random-weight demo model",
                              dir, missing);
    }

    struct infvsr_model_config cfg = infvsr_model_config_full();
    char cfg_path[PATH_MAX_LEN];
    snprintf(cfg_path, sizeof cfg_path, "%s/%s", dir, INFVSR_MODEL_FILE_CONFIG);
    if (is_file(cfg_path)) {
        enum infvsr_status rc = infvsr_model_config_load(cfg_path, &cfg, err);
        if (rc != INFVSR_OK) {
            infvsr_err_prefix(err, "%s", cfg_path);
            return rc;
        }
    }
    return infvsr_model_open_files(&cfg, paths[0], paths[1], paths[2], paths[3], be, out, err);
}

static enum infvsr_status open_weights(const char * path, struct infvsr_weights ** w, struct infvsr_err * err) {
    enum infvsr_status rc = infvsr_weights_open(path, w, err);
    if (rc != INFVSR_OK) infvsr_err_prefix(err, "%s", path);
    return rc;
}

enum infvsr_status infvsr_model_open_files(const struct infvsr_model_config * cfg, const char * dit_path,
                                           const char * vae_path, const char * ram_path,
                                           const char * dape_path, struct infvsr_backend * be,
                                           struct infvsr_model ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!dit_path || !vae_path || !ram_path || !be)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "model: DiT, VAE and RAM paths and a backend are required");
    struct infvsr_model * m = calloc(1, sizeof *m);
    if (!m) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "model: out of memory");
    m->cfg = cfg ? *cfg : infvsr_model_config_full();
    m->be  = be;
    if (m->cfg.dit.text_dim != m->cfg.visual.out_dim) {
        infvsr_err_set(err, INFVSR_ERR_MODEL, "model config: dit.text_dim %d != visual.out_dim %d",
                       m->cfg.dit.text_dim, m->cfg.visual.out_dim);
        infvsr_model_close(m);
        return INFVSR_ERR_MODEL;
    }
    enum infvsr_status rc;
    if ((rc = open_weights(dit_path, &m->w_dit, err)) != INFVSR_OK) goto fail;
    if ((rc = open_weights(vae_path, &m->w_vae, err)) != INFVSR_OK) goto fail;
    if ((rc = open_weights(ram_path, &m->w_ram, err)) != INFVSR_OK) goto fail;
    if (dape_path && (rc = open_weights(dape_path, &m->w_dape, err)) != INFVSR_OK) goto fail;

    if ((rc = infvsr_dit_load(&m->cfg.dit, m->w_dit, be, &m->dit, err)) != INFVSR_OK) {
        infvsr_err_prefix(err, "%s", dit_path);
        goto fail;
    }
    if ((rc = infvsr_vae_load(m->w_vae, &m->cfg.vae, be, &m->vae, err)) != INFVSR_OK) {
        infvsr_err_prefix(err, "%s", vae_path);
        goto fail;
    }
    if ((rc = infvsr_visual_load(m->w_ram, m->w_dape, &m->cfg.visual, be, &m->visual, err)) != INFVSR_OK) {
        infvsr_err_prefix(err, "%s / %s", ram_path, dape_path ? dape_path : "(no DAPE)");
        goto fail;
    }
    *out = m;
    return INFVSR_OK;
fail:
    infvsr_model_close(m);
    return rc;
}

void infvsr_model_close(struct infvsr_model * m) {
    if (!m) return;
    infvsr_visual_free(m->visual);
    infvsr_vae_free(m->vae);
    infvsr_dit_free(m->dit);
    infvsr_weights_close(m->w_dape);
    infvsr_weights_close(m->w_ram);
    infvsr_weights_close(m->w_vae);
    infvsr_weights_close(m->w_dit);
    free(m);
}

size_t infvsr_model_resident_bytes(const struct infvsr_model * m) {
    return (m->dit ? infvsr_dit_resident_bytes(m->dit) : 0) + (m->vae ? infvsr_vae_resident_bytes(m->vae) : 0) +
           (m->visual ? infvsr_visual_resident_bytes(m->visual) : 0);
}

const struct infvsr_model_config * infvsr_model_config_of(const struct infvsr_model * m) { return &m->cfg; }

const char * infvsr_model_metadata(const struct infvsr_model * m, const char * key) {
    return m->w_dit ? infvsr_weights_metadata(m->w_dit, key) : NULL;
}
