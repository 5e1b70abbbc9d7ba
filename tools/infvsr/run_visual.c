/* `infvsr run visual`: the visual encoder (RAM Swin-L + DAPE + image_proj) on one reference
 * image read from a safetensors file (tensor names in docs/VERIFY.md).
 *
 *   infvsr run visual --ram ram_swin_large_14m.pth --dape DAPE.pth [--config cfg.json]
 *                     --in IN.safetensors --out OUT.safetensors [--threads N] [--ref]
 *                     [--device cpu|devsim|cuda[:N]|auto] [--precision auto|f32|bf16]
 *
 * IN holds either `frame` (U8 [H, W, 3] RGB, prepared as the pipeline does) or `image`
 * ([3, 384, 384], already ImageNet-normalised, any float dtype). The input is uploaded to the
 * backend, the encoder runs there, and the outputs are downloaded: OUT gets `context`
 * [145, out_dim], `tokens` [145, 8 * embed_dim] (before image_proj) and `image` (the f32
 * image that was encoded), all f32 (in bf16 mode: the bf16 results, widened). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/model_config.h"
#include "infvsr/visual.h"
#include "infvsr/weights.h"
#include "infvsr/backend.h"
#include "cli_util.h"
#include "run_modules.h"

struct visual_opts {
    const char * ram, * dape, * config, * in, * out, * device, * precision;
    int          threads;
    bool         use_ref;
};

static void usage(FILE * f) {
    fprintf(f,
            "usage: infvsr run visual --ram RAM.pth --dape DAPE.pth [--config CFG.json]\n"
            "                         --in IN.safetensors --out OUT.safetensors [--threads N] [--ref]\n"
            "                         [--device cpu|devsim|cuda[:N]|auto] [--precision auto|f32|bf16]\n"
            "  IN holds `frame` (u8 [H, W, 3] RGB) or `image` ([3, 384, 384], already normalised).\n"
            "  OUT gets `context` [145, out_dim], `tokens` [145, C] and `image` [3, 384, 384], f32.\n"
            "  --config   model config JSON (default: the built-in full InfVSR config)\n"
            "  --threads  CPU threads (default: all cores)\n"
            "  --ref      use the float64 reference CPU kernels (slow)\n"
            "  --device   backend to run on (default: cpu); auto = a usable GPU, else the CPU\n"
            "  --precision activation dtype (default: auto = the backend's own: f32 on cpu/devsim,\n"
            "             bf16 on cuda)\n"
            "exit codes: 0 ok, 1 bad input or model or device unavailable, 2 usage error\n");
}

static int parse_args(int argc, char ** argv, struct visual_opts * o) {
    memset(o, 0, sizeof *o);
    const struct cli_opt opts[] = {
        { "--ram",     CLI_STR,  &o->ram,     0, 0 },
        { "--dape",    CLI_STR,  &o->dape,    0, 0 },
        { "--config",  CLI_STR,  &o->config,  0, 0 },
        { "--in",      CLI_STR,  &o->in,      0, 0 },
        { "--out",     CLI_STR,  &o->out,     0, 0 },
        { "--threads", CLI_INT,  &o->threads, 0, 4096 },
        { "--ref",     CLI_FLAG, &o->use_ref, 0, 0 },
        { "--device",  CLI_STR,  &o->device,  0, 0 },
        { "--precision", CLI_STR, &o->precision, 0, 0 },
        { NULL, CLI_FLAG, NULL, 0, 0 },
    };
    int rc = cli_parse("infvsr run visual", argc, argv, opts, NULL, 0, NULL);
    if (rc == -1) usage(stdout);
    if (rc != 0) return rc;
    if (!o->ram || !o->dape || !o->in || !o->out) {
        fprintf(stderr, "infvsr run visual: --ram, --dape, --in and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (!o->device) o->device = "cpu";
    if (o->precision && infvsr_precision_from_name(o->precision) < 0) {
        fprintf(stderr, "infvsr run visual: --precision must be auto, f32 or bf16 (got '%s')\n", o->precision);
        return 2;
    }
    return 0;
}

/* Allocates `image` on the backend (F32 [3, img, img]): the prepared `frame`, or `image` as
 * uploaded (shape checked by the encoder). */
static enum infvsr_status read_input(struct infvsr_visual * v, struct infvsr_backend * be,
                                     const struct infvsr_weights * io, const char * path, struct infvsr_tensor * image,
                                     struct infvsr_err * err) {
    const struct infvsr_tensor * frame = infvsr_weights_find(io, "frame");
    const struct infvsr_tensor * in    = infvsr_weights_find(io, "image");
    if (frame) {
        int64_t is[3] = { 3, infvsr_visual_img_size(v), infvsr_visual_img_size(v) };
        struct infvsr_tensor f = { 0 };
        infvsr_tensor_setup(image, "image", INFVSR_TYPE_F32, 3, is);
        INFVSR_TRY(infvsr_backend_tensor_alloc(be, image, err));
        enum infvsr_status st = infvsr_backend_upload(be, frame, INFVSR_TYPE_COUNT, &f, err);
        if (st == INFVSR_OK) st = infvsr_visual_prepare_reference(v, &f, image, err);
        infvsr_backend_tensor_free(be, &f);
        return st;
    }
    if (!in) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: no 'frame' or 'image' tensor", path);
    if (!infvsr_dtype_is_float(in->dtype) || in->ndim != 3) {
        char got[96];
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: 'image' must be a float [3, %d, %d] tensor, got %s %s", path,
                              infvsr_visual_img_size(v), infvsr_visual_img_size(v), infvsr_dtype_name(in->dtype),
                              infvsr_shape_str(in->ndim, in->shape, got, sizeof got));
    }
    return infvsr_backend_upload(be, in, INFVSR_TYPE_F32, image, err);
}

static enum infvsr_status open_backend(const struct visual_opts * o, struct infvsr_backend ** be,
                                       struct infvsr_err * err) {
    struct infvsr_backend_opts bo = infvsr_backend_default_opts();
    bo.n_threads     = o->threads;
    bo.cpu_reference = o->use_ref;
    if (o->precision) bo.precision = (enum infvsr_precision)infvsr_precision_from_name(o->precision);
    return infvsr_backend_init_by_name(o->device, &bo, be, err);
}

/* 0 ok, 1 failed, 2 a device name or precision the backend layer refused as invalid. */
static int run(const struct visual_opts * o, struct infvsr_err * err) {
    struct infvsr_model_config cfg = infvsr_model_config_full();
    if (o->config && infvsr_model_config_load(o->config, &cfg, err) != INFVSR_OK) return 1;
    struct infvsr_weights * ram = NULL, * dape = NULL, * io = NULL;
    struct infvsr_backend * be = NULL;
    struct infvsr_visual * v = NULL;
    struct infvsr_tensor dev[3], out[3]; /* context, tokens, image: on the backend, downloaded */
    memset(dev, 0, sizeof dev);
    memset(out, 0, sizeof out);
    int rc = 1;
    enum infvsr_status st = open_backend(o, &be, err);
    if (st != INFVSR_OK) return st == INFVSR_ERR_INVALID_ARG ? 2 : 1;
    if (infvsr_weights_open(o->ram, &ram, err) || infvsr_weights_open(o->dape, &dape, err) ||
        infvsr_weights_open(o->in, &io, err)) {
        goto done;
    }
    if (infvsr_visual_load(ram, dape, &cfg.visual, be, &v, err) != INFVSR_OK) goto done;
    int64_t n = infvsr_visual_n_tokens(v);
    int64_t cs[2] = { n, infvsr_visual_out_dim(v) }, ts[2] = { n, infvsr_visual_token_dim(v) };
    infvsr_tensor_setup(&dev[0], "context", INFVSR_TYPE_F32, 2, cs);
    infvsr_tensor_setup(&dev[1], "tokens", INFVSR_TYPE_F32, 2, ts);
    if (infvsr_backend_tensor_alloc(be, &dev[0], err) || infvsr_backend_tensor_alloc(be, &dev[1], err) ||
        read_input(v, be, io, o->in, &dev[2], err) || infvsr_visual_encode(v, &dev[2], &dev[1], &dev[0], err)) {
        goto done;
    }
    for (int i = 0; i < 3; i++) {
        if (infvsr_backend_download_f32(be, &dev[i], &out[i], err) != INFVSR_OK) goto done;
    }
    if (infvsr_safetensors_write(o->out, out, 3, err) != INFVSR_OK) goto done;
    rc = 0;
done:
    for (int i = 0; i < 3; i++) {
        infvsr_tensor_release(&out[i]);
        infvsr_backend_tensor_free(be, &dev[i]);
    }
    infvsr_visual_free(v);
    infvsr_backend_free(be);
    infvsr_weights_close(io);
    infvsr_weights_close(dape);
    infvsr_weights_close(ram);
    return rc;
}

int infvsr_run_visual(int argc, char ** argv) {
    struct visual_opts o;
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) return pr < 0 ? 0 : pr;
    struct infvsr_err err = { 0 };
    int rc = run(&o, &err);
    if (rc != 0) fprintf(stderr, "infvsr run visual: %s\n", err.msg[0] ? err.msg : "failed");
    return rc;
}
