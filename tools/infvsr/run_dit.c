/* `infvsr run dit`: runs the causal DiT on a chunk sequence read from a safetensors file and
 * writes every chunk's prediction and restored latents (tensor names in docs/VERIFY.md).
 *
 *   infvsr run dit --model InfVSR.ckpt [--config cfg.json] --in IN.safetensors --out OUT.safetensors
 *                  [--device D] [--precision P] [--threads N] [--repeat R] [--timing] [--ref]
 *
 * The inputs are uploaded to the device once, every chunk runs there, and the outputs come
 * back (as f32) after the last repeat. --repeat R runs the whole sequence R times (from a
 * reset each time) and --timing prints the median time per chunk (device synchronised),
 * its GFLOP/s and the peak RSS: the benchmark's C side. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/dit.h"
#include "infvsr/model_config.h"
#include "infvsr/weights.h"
#include "infvsr/backend.h"
#include "cli_util.h"
#include "run_modules.h"

#define MAX_CHUNKS 4096

struct dit_opts {
    const char * model, * config, * in, * out, * device, * precision;
    int          threads, repeat;
    bool         timing, use_ref;
};

static void usage(FILE * f) {
    fprintf(f,
            "usage: infvsr run dit --model FILE [--config CFG.json] --in IN.safetensors --out OUT.safetensors\n"
            "                      [--device D] [--precision P] [--threads N] [--repeat R] [--timing] [--ref]\n"
            "  Runs the DiT on the chunk sequence of IN (context, latents_i, optional start_frame_i,\n"
            "  reset_i, context_i) and writes pred_i and restored_i (f32) to OUT. See docs/VERIFY.md.\n"
            "  --config   model config JSON (default: the built-in full InfVSR config)\n"
            CLI_DEVICE_HELP
            "             (default: cpu)\n"
            "  --threads  CPU threads (default: all cores)\n"
            "  --repeat   run the sequence R times (timing); outputs are from the last run\n"
            "  --timing   print per-chunk median time, GFLOP/s and peak RSS\n"
            "  --ref      use the float64 reference CPU kernels (slow)\n"
            "exit codes: 0 ok, 1 bad input or model, 2 usage error, 3 device not available\n");
}

static int parse_args(int argc, char ** argv, struct dit_opts * o) {
    memset(o, 0, sizeof *o);
    o->repeat = 1;
    o->device = "cpu";
    const struct cli_opt opts[] = {
        { "--device",    CLI_STR,  &o->device,    0, 0 },
        { "--precision", CLI_STR,  &o->precision, 0, 0 },
        { "--model",   CLI_STR,  &o->model,   0, 0 },
        { "--config",  CLI_STR,  &o->config,  0, 0 },
        { "--in",      CLI_STR,  &o->in,      0, 0 },
        { "--out",     CLI_STR,  &o->out,     0, 0 },
        { "--threads", CLI_INT,  &o->threads, 0, 4096 },
        { "--repeat",  CLI_INT,  &o->repeat,  1, 1000 },
        { "--timing",  CLI_FLAG, &o->timing,  0, 0 },
        { "--ref",     CLI_FLAG, &o->use_ref, 0, 0 },
        { NULL, CLI_FLAG, NULL, 0, 0 },
    };
    int rc = cli_parse("infvsr run dit", argc, argv, opts, NULL, 0, NULL);
    if (rc == -1) usage(stdout);
    if (rc != 0) return rc;
    if (!o->model || !o->in || !o->out) {
        fprintf(stderr, "infvsr run dit: --model, --in and --out are required\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* An optional integer flag/scalar tensor of one element ("start_frame_3", "reset_3"). */
static int read_scalar(const struct infvsr_weights * w, const char * name, int64_t * v, bool * present) {
    const struct infvsr_tensor * t = infvsr_weights_find(w, name);
    *present = t != NULL;
    if (!t) return 0;
    if (infvsr_tensor_numel(t) != 1 || t->dtype == INFVSR_TYPE_BOOL) {
        fprintf(stderr, "infvsr run dit: '%s' must hold one number (got %lld elements, %s)\n", name,
                (long long)infvsr_tensor_numel(t), infvsr_dtype_name(t->dtype));
        return 1;
    }
    float f;
    infvsr_convert_to_f32(&f, t->data, t->dtype, 1);
    *v = (int64_t)f;
    return 0;
}

struct chunk {
    const struct infvsr_tensor * latents;     /* host (the input file)                   */
    const struct infvsr_tensor * context;     /* non-NULL: new reference from this chunk on */
    struct infvsr_tensor         dlat, dctx;  /* their copies on the device                */
    struct infvsr_tensor         dpred, drestored;
    int64_t                      start_frame; /* -1: session position */
    bool                         reset;
    int64_t                      n_tokens;
    struct infvsr_tensor         pred, restored; /* host f32 outputs                    */
    double *                     ms;          /* [repeat] */
};

static int collect_chunks(const struct infvsr_weights * in, const struct infvsr_dit_config * cfg, struct chunk * ch,
                          int * n_out, int64_t * max_tokens) {
    int n = 0;
    *max_tokens = 0;
    *n_out = 0;
    for (; n < MAX_CHUNKS; n++) {
        char name[64];
        snprintf(name, sizeof name, "latents_%d", n);
        const struct infvsr_tensor * t = infvsr_weights_find(in, name);
        if (!t) break;
        struct chunk * c = &ch[n];
        c->latents = t;
        int lead = t->ndim == 5 ? 1 : 0;
        if (!(t->ndim == 4 || (t->ndim == 5 && t->shape[0] == 1)) || t->shape[lead] != cfg->in_dim) {
            char sb[64];
            fprintf(stderr, "infvsr run dit: '%s' has shape %s, expected [%d, T, h, w]\n", name,
                    infvsr_shape_str(t->ndim, t->shape, sb, sizeof sb), cfg->in_dim);
            return 1;
        }
        c->n_tokens = t->shape[lead + 1] * (t->shape[lead + 2] / 2) * (t->shape[lead + 3] / 2);
        if (c->n_tokens > *max_tokens) *max_tokens = c->n_tokens;
        snprintf(name, sizeof name, "context_%d", n);
        c->context = infvsr_weights_find(in, name);
        bool present;
        int64_t v = 0;
        snprintf(name, sizeof name, "reset_%d", n);
        if (read_scalar(in, name, &v, &present)) return 1;
        c->reset = present && v != 0;
        snprintf(name, sizeof name, "start_frame_%d", n);
        if (read_scalar(in, name, &v, &present)) return 1;
        c->start_frame = present ? v : -1;
        if (present && v < 0) {
            fprintf(stderr, "infvsr run dit: '%s' is negative\n", name);
            return 1;
        }
        *n_out = n + 1;
    }
    if (n == 0) {
        fprintf(stderr, "infvsr run dit: no 'latents_0' in the input file\n");
        return 1;
    }
    if (infvsr_weights_find(in, "latents_" "4096")) {
        fprintf(stderr, "infvsr run dit: more than %d chunks\n", MAX_CHUNKS);
        return 1;
    }
    return 0;
}

/* Device copies of every chunk's inputs and outputs (inputs as stored, outputs in the
 * activation dtype), made once before the timed runs. */
static int upload_chunks(struct infvsr_backend * be, enum infvsr_dtype act, const struct infvsr_dit_config * cfg,
                         struct chunk * ch, int n) {
    struct infvsr_err err;
    infvsr_err_clear(&err);
    for (int i = 0; i < n; i++) {
        struct chunk * c = &ch[i];
        const struct infvsr_tensor * t = c->latents;
        int lead = t->ndim == 5 ? 1 : 0;
        int64_t shp[4] = { cfg->out_dim, t->shape[lead + 1], t->shape[lead + 2], t->shape[lead + 3] };
        char name[64];
        enum infvsr_status st = infvsr_backend_upload(be, t, INFVSR_TYPE_COUNT, &c->dlat, &err);
        if (st == INFVSR_OK && c->context) st = infvsr_backend_upload(be, c->context, INFVSR_TYPE_COUNT, &c->dctx, &err);
        snprintf(name, sizeof name, "pred_%d", i);
        infvsr_tensor_setup(&c->dpred, name, act, 4, shp);
        if (st == INFVSR_OK) st = infvsr_backend_tensor_alloc(be, &c->dpred, &err);
        snprintf(name, sizeof name, "restored_%d", i);
        infvsr_tensor_setup(&c->drestored, name, act, 4, shp);
        if (st == INFVSR_OK) st = infvsr_backend_tensor_alloc(be, &c->drestored, &err);
        if (st != INFVSR_OK) {
            fprintf(stderr, "infvsr run dit: chunk %d: %s\n", i, err.msg);
            return 1;
        }
    }
    return 0;
}

static int download_chunks(struct infvsr_backend * be, struct chunk * ch, int n) {
    struct infvsr_err err;
    infvsr_err_clear(&err);
    for (int i = 0; i < n; i++) {
        if (infvsr_backend_download_f32(be, &ch[i].dpred, &ch[i].pred, &err) != INFVSR_OK ||
            infvsr_backend_download_f32(be, &ch[i].drestored, &ch[i].restored, &err) != INFVSR_OK) {
            fprintf(stderr, "infvsr run dit: chunk %d: %s\n", i, err.msg);
            return 1;
        }
    }
    return 0;
}

static void free_chunks(struct infvsr_backend * be, struct chunk * ch, int n) {
    for (int i = 0; i < n; i++) {
        if (be) {
            infvsr_backend_tensor_free(be, &ch[i].dlat);
            infvsr_backend_tensor_free(be, &ch[i].dctx);
            infvsr_backend_tensor_free(be, &ch[i].dpred);
            infvsr_backend_tensor_free(be, &ch[i].drestored);
        }
        infvsr_tensor_release(&ch[i].pred);
        infvsr_tensor_release(&ch[i].restored);
    }
}

/* Runs the sequence once; ms[rep] of each chunk filled (each chunk waited for). */
static int run_sequence(struct infvsr_backend * be, struct infvsr_dit_session * sess,
                        struct infvsr_dit_context * ctx, const struct infvsr_tensor * ctx0, struct chunk * ch, int n,
                        int rep) {
    struct infvsr_err err;
    infvsr_err_clear(&err);
    infvsr_dit_session_reset(sess);
    if (infvsr_dit_context_set(ctx, ctx0, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr run dit: context: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        struct chunk * c = &ch[i];
        if (c->reset) infvsr_dit_session_reset(sess);
        if (c->context && infvsr_dit_context_set(ctx, &c->dctx, &err) != INFVSR_OK) {
            fprintf(stderr, "infvsr run dit: context_%d: %s\n", i, err.msg);
            return 1;
        }
        double t0 = (cli_now_s() * 1e3);
        if (infvsr_dit_step(sess, ctx, &c->dlat, c->start_frame, &c->dpred, &err) != INFVSR_OK ||
            infvsr_dit_restore(be, &c->dlat, &c->dpred, &c->drestored, &err) != INFVSR_OK ||
            infvsr_backend_synchronize(be, &err) != INFVSR_OK) {
            fprintf(stderr, "infvsr run dit: chunk %d: %s\n", i, err.msg);
            return 1;
        }
        c->ms[rep] = (cli_now_s() * 1e3) - t0;
    }
    return 0;
}

static void print_timing(const struct infvsr_dit_config * cfg, struct chunk * ch, int n, int repeat,
                         int64_t n_ctx, double load_ms) {
    printf("dit load_ms %.1f\n", load_ms);
    int64_t prev = 0;
    for (int i = 0; i < n; i++) {
        double med = cli_sort_median(ch[i].ms, repeat);
        int64_t cached = ch[i].reset || i == 0 ? 0 : prev;
        double gf = infvsr_dit_chunk_flops(cfg, ch[i].n_tokens, cached, n_ctx) / (med * 1e6);
        printf("dit chunk %d tokens %lld cached %lld median_ms %.2f min_ms %.2f gflops %.2f\n", i,
               (long long)ch[i].n_tokens, (long long)cached, med, ch[i].ms[0], gf);
        prev = ch[i].n_tokens;
    }
    printf("dit peak_rss_mib %.1f\n", cli_peak_rss_kib() / 1024.0);
}

int infvsr_run_dit(int argc, char ** argv) {
    struct dit_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;

    struct infvsr_err err;
    infvsr_err_clear(&err);
    struct infvsr_model_config mc = infvsr_model_config_full();
    if (o.config && infvsr_model_config_load(o.config, &mc, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr run dit: %s\n", err.msg);
        return 1;
    }
    struct infvsr_weights * model = NULL, * in = NULL;
    struct infvsr_backend * be = NULL;
    struct infvsr_dit * dit = NULL;
    struct infvsr_dit_session * sess = NULL;
    struct infvsr_dit_context * ctx = NULL;
    struct infvsr_tensor dctx0 = { 0 };
    struct chunk * ch = calloc(MAX_CHUNKS, sizeof *ch);
    double * ms = NULL;
    int n = 0;
    rc = 1;
    if (!ch) goto done;

    /* The device first: an unavailable one is answered before any file is read. */
    if ((rc = cli_open_backend("infvsr run dit", o.device, o.precision, o.threads, o.use_ref, &be)) != 0) goto done;
    rc = 1;
    double t0 = (cli_now_s() * 1e3);
    if (infvsr_weights_open(o.in, &in, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr run dit: %s\n", err.msg);
        goto done;
    }
    const struct infvsr_tensor * ctx0 = infvsr_weights_find(in, "context");
    if (!ctx0) {
        fprintf(stderr, "infvsr run dit: %s: no 'context' tensor\n", o.in);
        goto done;
    }
    int64_t max_tokens = 0;
    if (collect_chunks(in, &mc.dit, ch, &n, &max_tokens)) goto done;
    ms = calloc((size_t)n * (size_t)o.repeat, sizeof(double));
    if (!ms) goto done;
    for (int i = 0; i < n; i++) ch[i].ms = ms + (size_t)i * (size_t)o.repeat;

    if (infvsr_weights_open(o.model, &model, &err) != INFVSR_OK ||
        infvsr_dit_load(&mc.dit, model, be, &dit, &err) != INFVSR_OK ||
        infvsr_dit_session_open(dit, max_tokens, &sess, &err) != INFVSR_OK ||
        infvsr_backend_upload(be, ctx0, INFVSR_TYPE_COUNT, &dctx0, &err) != INFVSR_OK ||
        infvsr_dit_context_alloc(dit, ctx0->shape[ctx0->ndim - 2], &ctx, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr run dit: %s\n", err.msg);
        goto done;
    }
    if (upload_chunks(be, infvsr_dit_act_dtype(dit), &mc.dit, ch, n)) goto done;
    double load_ms = (cli_now_s() * 1e3) - t0;

    for (int r = 0; r < o.repeat; r++)
        if (run_sequence(be, sess, ctx, &dctx0, ch, n, r)) goto done;
    if (download_chunks(be, ch, n)) goto done;
    if (o.timing) print_timing(&mc.dit, ch, n, o.repeat, ctx0->shape[ctx0->ndim - 2], load_ms);

    struct infvsr_tensor * outs = calloc((size_t)n * 2, sizeof *outs);
    if (!outs) goto done;
    for (int i = 0; i < n; i++) {
        outs[2 * i] = ch[i].pred;
        outs[2 * i + 1] = ch[i].restored;
        outs[2 * i].owns_data = outs[2 * i + 1].owns_data = false;
    }
    enum infvsr_status st = infvsr_safetensors_write(o.out, outs, (size_t)n * 2, &err);
    free(outs);
    if (st != INFVSR_OK) {
        fprintf(stderr, "infvsr run dit: %s\n", err.msg);
        goto done;
    }
    rc = 0;
done:
    if (ch) free_chunks(be, ch, n);
    free(ch);
    free(ms);
    if (be) infvsr_backend_tensor_free(be, &dctx0);
    infvsr_dit_context_free(ctx);
    infvsr_dit_session_close(sess);
    infvsr_dit_free(dit);
    if (be) infvsr_backend_free(be);
    infvsr_weights_close(model);
    infvsr_weights_close(in);
    return rc;
}
