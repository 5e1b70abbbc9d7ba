/* `infvsr run vae-encode` / `infvsr run vae-decode`: streams a chunk sequence read from a
 * safetensors file through one VAE session and writes every chunk's output (tensor names
 * in docs/VERIFY.md).
 *
 *   infvsr run vae-encode --model Wan2.1_VAE.pth [--config cfg.json] --in IN --out OUT
 *                         [--device cpu|devsim|cuda[:N]|auto] [--precision auto|f32|bf16]
 *                         [--tile-threshold N] [--tile T --stride S] [--threads N]
 *                         [--repeat R] [--timing] [--ref]
 *
 * vae-encode reads frames_0, frames_1, ... ([3, L', H', W'], f32 or bf16; chunk 0 starts the
 * scene) and writes latents_i. vae-decode reads latents_0, ... ([16, T, H'/8, W'/8]) and
 * writes decoded_i. Inputs are uploaded to the chosen backend once, outputs (f32) allocated
 * there and downloaded at the end; nothing is written when anything fails.
 * --repeat/--timing give the median time per chunk (the benchmark's C side; each chunk's
 * time includes a synchronize, so it is the device time on an asynchronous backend). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/model_config.h"
#include "infvsr/vae.h"
#include "infvsr/weights.h"
#include "infvsr/backend.h"
#include "cli_util.h"
#include "run_modules.h"

#define MAX_CHUNKS 4096
#define MAX_REPEAT 64

struct vae_opts {
    const char * model, * config, * in, * out, * device, * precision;
    int          threads, repeat, tile_threshold, tile, stride;
    bool         timing, use_ref, decode;
};

static void usage(FILE * f, const char * cmd) {
    fprintf(f,
            "usage: infvsr run %s --model FILE [--config CFG.json] --in IN.safetensors --out OUT.safetensors\n"
            "                      [--device cpu|devsim|cuda[:N]|auto] [--precision auto|f32|bf16]\n"
            "                      [--tile-threshold N] [--tile T --stride S] [--threads N] [--repeat R]\n"
            "                      [--timing] [--ref]\n"
            "  vae-encode: IN holds frames_0, frames_1, ... [3, L', H', W'] (chunk 0 starts the scene,\n"
            "              L' = 1 mod 4, then 0 mod 4); OUT gets latents_i [16, T, H'/8, W'/8] f32.\n"
            "  vae-decode: IN holds latents_0, ... ; OUT gets decoded_i [3, T_px, H', W'] f32 in [-1, 1].\n"
            "  --config          model config JSON (default: the built-in full InfVSR config)\n"
            "  --device          backend to run on (default cpu; auto = a usable GPU, else cpu)\n"
            "  --precision       activation dtype (default auto: the backend's own, f32 on cpu)\n"
            "  --tile-threshold  tile when H' exceeds this many pixels (default 1024)\n"
            "  --tile/--stride   tile size and stride in latents (default 128/110)\n"
            "  --threads         CPU threads (default: all cores)\n"
            "  --repeat/--timing run the stream R times, print the median time per chunk\n"
            "  --ref             use the float64 reference CPU kernels (slow)\n"
            "exit codes: 0 ok, 1 bad input or model, 2 usage error\n", cmd);
}

static int parse_args(int argc, char ** argv, struct vae_opts * o) {
    const char * cmd = argv[0];
    memset(o, 0, sizeof *o);
    struct infvsr_vae_session_params d = infvsr_vae_session_default_params();
    o->repeat         = 1;
    o->device         = "cpu";
    o->precision      = "auto";
    o->tile_threshold = d.tile_threshold_px;
    o->tile           = d.tile_latent;
    o->stride         = d.stride_latent;
    o->decode         = strcmp(cmd, "vae-decode") == 0;
    const struct cli_opt opts[] = {
        { "--model",          CLI_STR,  &o->model,          0, 0 },
        { "--config",         CLI_STR,  &o->config,         0, 0 },
        { "--in",             CLI_STR,  &o->in,             0, 0 },
        { "--out",            CLI_STR,  &o->out,            0, 0 },
        { "--device",         CLI_STR,  &o->device,         0, 0 },
        { "--precision",      CLI_STR,  &o->precision,      0, 0 },
        { "--threads",        CLI_INT,  &o->threads,        0, 4096 },
        { "--repeat",         CLI_INT,  &o->repeat,         1, MAX_REPEAT },
        { "--tile-threshold", CLI_INT,  &o->tile_threshold, 16, 1 << 20 },
        { "--tile",           CLI_INT,  &o->tile,           2, 1 << 16 },
        { "--stride",         CLI_INT,  &o->stride,         1, 1 << 16 },
        { "--timing",         CLI_FLAG, &o->timing,         0, 0 },
        { "--ref",            CLI_FLAG, &o->use_ref,        0, 0 },
        { NULL, CLI_FLAG, NULL, 0, 0 },
    };
    char prog[64];
    snprintf(prog, sizeof prog, "infvsr run %s", cmd);
    int rc = cli_parse(prog, argc, argv, opts, NULL, 0, NULL);
    if (rc == -1) usage(stdout, cmd);
    if (rc != 0) return rc;
    if (!o->model || !o->in || !o->out) {
        fprintf(stderr, "%s: --model, --in and --out are required\n", prog);
        usage(stderr, cmd);
        return 2;
    }
    if (infvsr_precision_from_name(o->precision) < 0) {
        fprintf(stderr, "%s: unknown --precision '%s' (auto, f32, bf16)\n", prog, o->precision);
        return 2;
    }
    return 0;
}

struct stream {
    struct infvsr_tensor in[MAX_CHUNKS];    /* uploaded inputs (backend tensors)      */
    struct infvsr_tensor out[MAX_CHUNKS];   /* outputs on the backend, F32            */
    struct infvsr_tensor host[MAX_CHUNKS];  /* outputs downloaded for the file         */
    int                  n;
    double               times[MAX_CHUNKS][MAX_REPEAT];
};

/* Runs every chunk once through `s` (reset first); outputs are allocated on the backend on
 * the first round. */
static enum infvsr_status run_once(struct infvsr_backend * be, struct infvsr_vae_session * s, struct stream * st,
                                   bool decode, int rep, struct infvsr_err * err) {
    infvsr_vae_session_reset(s);
    for (int i = 0; i < st->n; i++) {
        const struct infvsr_tensor * x = &st->in[i];
        int64_t shape[4];
        if (decode) {
            shape[0] = 3;
            shape[1] = infvsr_vae_decode_n_frames(s, x->shape[1]);
            shape[2] = 8 * x->shape[2];
            shape[3] = 8 * x->shape[3];
        } else {
            shape[0] = INFVSR_VAE_Z_DIM;
            shape[1] = infvsr_vae_encode_n_latents(x->shape[1], i == 0);
            shape[2] = x->shape[2] / 8;
            shape[3] = x->shape[3] / 8;
            if (shape[1] < 0) {
                return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "frames_%d: %lld frames (chunk 0 needs 1 mod 4, "
                                      "later chunks 0 mod 4)", i, (long long)x->shape[1]);
            }
        }
        if (!st->out[i].data) {
            char name[32];
            snprintf(name, sizeof name, "%s_%d", decode ? "decoded" : "latents", i);
            if (shape[1] < 1) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: no output frames", name);
            infvsr_tensor_setup(&st->out[i], name, INFVSR_TYPE_F32, 4, shape);
            INFVSR_TRY(infvsr_backend_tensor_alloc(be, &st->out[i], err));
        }
        double t0 = cli_now_s();
        enum infvsr_status rc = decode ? infvsr_vae_decode_chunk(s, x, &st->out[i], err)
                                       : infvsr_vae_encode_chunk(s, x, i == 0, &st->out[i], err);
        if (rc == INFVSR_OK) rc = infvsr_backend_synchronize(be, err);
        if (rc != INFVSR_OK) {
            infvsr_err_prefix(err, "chunk %d", i);
            return rc;
        }
        st->times[i][rep] = cli_now_s() - t0;
    }
    return INFVSR_OK;
}

static int run_stream(const struct vae_opts * o, struct infvsr_err * err) {
    const char * cmd = o->decode ? "vae-decode" : "vae-encode";
    struct infvsr_model_config cfg = infvsr_model_config_full();
    if (o->config && infvsr_model_config_load(o->config, &cfg, err) != INFVSR_OK) return 1;
    struct infvsr_weights * w = NULL, * io = NULL;
    struct infvsr_backend * be = NULL;
    struct infvsr_vae * vae = NULL;
    struct infvsr_vae_session * s = NULL;
    struct stream * st = calloc(1, sizeof *st);
    int rc = 1;
    struct infvsr_backend_opts bo = infvsr_backend_default_opts();
    bo.n_threads     = o->threads;
    bo.cpu_reference = o->use_ref;
    bo.precision     = (enum infvsr_precision)infvsr_precision_from_name(o->precision);
    if (!st) goto done;
    if (infvsr_weights_open(o->model, &w, err) != INFVSR_OK || infvsr_weights_open(o->in, &io, err) != INFVSR_OK) goto done;
    if (infvsr_backend_init_by_name(o->device, &bo, &be, err) != INFVSR_OK) goto done;
    if (infvsr_vae_load(w, &cfg.vae, be, &vae, err) != INFVSR_OK) goto done;
    for (int n = 0; n < MAX_CHUNKS; n++) {
        char key[32];
        snprintf(key, sizeof key, "%s_%d", o->decode ? "latents" : "frames", n);
        const struct infvsr_tensor * x = infvsr_weights_find(io, key);
        if (!x) break;
        if (x->ndim != 4) {
            infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: %s must be 4-D", o->in, key);
            goto done;
        }
        if (infvsr_backend_upload(be, x, INFVSR_TYPE_COUNT, &st->in[n], err) != INFVSR_OK) goto done;
        st->n = n + 1;
    }
    if (st->n == 0) {
        infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: no %s_0 tensor", o->in, o->decode ? "latents" : "frames");
        goto done;
    }
    const struct infvsr_tensor * x0 = &st->in[0];
    struct infvsr_vae_session_params p = infvsr_vae_session_default_params();
    p.height            = (int)(o->decode ? 8 * x0->shape[2] : x0->shape[2]);
    p.width             = (int)(o->decode ? 8 * x0->shape[3] : x0->shape[3]);
    p.tile_threshold_px = o->tile_threshold;
    p.tile_latent       = o->tile;
    p.stride_latent     = o->stride;
    if (infvsr_vae_session_open(vae, &p, &s, err) != INFVSR_OK) goto done;
    for (int r = 0; r < o->repeat; r++) {
        if (run_once(be, s, st, o->decode, r, err) != INFVSR_OK) goto done;
    }
    for (int i = 0; i < st->n; i++) {
        if (infvsr_backend_download_f32(be, &st->out[i], &st->host[i], err) != INFVSR_OK) goto done;
        snprintf(st->host[i].name, sizeof st->host[i].name, "%s", st->out[i].name);
    }
    if (infvsr_safetensors_write(o->out, st->host, (size_t)st->n, err) != INFVSR_OK) goto done;
    if (o->timing) {
        printf("%s: %dx%d on %s, %d tile(s), %d chunk(s), %d repeat(s), weights resident %zu bytes, cache %zu bytes, "
               "scratch %zu bytes, peak RSS %ld MiB\n", cmd, p.height, p.width, infvsr_backend_name(be),
               infvsr_vae_session_n_tiles(s), st->n, o->repeat, infvsr_vae_resident_bytes(vae),
               infvsr_vae_session_cache_bytes(s), infvsr_vae_session_scratch_bytes(s), (long)(cli_peak_rss_kib() / 1024));
        for (int i = 0; i < st->n; i++) {
            printf("chunk %d: in %lld frames, median %.4f s\n", i, (long long)st->in[i].shape[1],
                   cli_sort_median(st->times[i], o->repeat));
        }
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "infvsr run %s: %s\n", cmd, err->msg);
    for (int i = 0; st && be && i < MAX_CHUNKS; i++) {
        infvsr_backend_tensor_free(be, &st->in[i]);
        infvsr_backend_tensor_free(be, &st->out[i]);
        infvsr_tensor_release(&st->host[i]);
    }
    free(st);
    infvsr_vae_session_close(s);
    infvsr_vae_free(vae);
    if (be) infvsr_backend_free(be);
    infvsr_weights_close(io);
    infvsr_weights_close(w);
    return rc;
}

int infvsr_run_vae(int argc, char ** argv) {
    struct vae_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    struct infvsr_err err = { 0 };
    return run_stream(&o, &err);
}
