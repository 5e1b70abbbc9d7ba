/* `infvsr upscale IN OUT [options]`: the offline main job. FFmpeg demux/decode of any input
 * it can read (file, pipe "-", y4m), the engine session (scene detection, chunks, model),
 * FFmpeg encode/mux with the input's audio and subtitle streams copied untouched. The output
 * is written under a temporary name and renamed only on success: a failure leaves nothing
 * under OUT. Progress: a bar on a TTY, JSON lines with --json, nothing with --quiet. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "cli_util.h"
#include "commands.h"
#include "infvsr/backend.h"
#include "infvsr/session.h"
#include "media.h"

enum progress_mode { PROGRESS_AUTO, PROGRESS_BAR, PROGRESS_JSON, PROGRESS_NONE };

struct upscale_opts {
    const char * in, * out, * model_dir, * device, * precision;
    int          scale, threads, crf, vae_tile_threshold;
    bool         no_scene, yuv444p, force;
    double       scene_threshold, reference_threshold, fps;
    int64_t      max_frames;
    enum infvsr_media_codec codec;
    bool         codec_set;
    enum progress_mode progress;
};

static void usage(FILE * f) {
    fprintf(f,
            "usage: infvsr upscale IN OUT [options]\n"
            "  Super-resolves a video. IN: any file FFmpeg can demux and decode, or '-' for stdin (a\n"
            "  streamable container such as y4m, mkv, mpegts). OUT: .mp4/.mov (H.264), .mkv (H.264, or FFV1\n"
            "  with --codec ffv1), .y4m (raw). Audio and subtitle streams are copied from IN untouched.\n"
            "  --model-dir DIR          InfVSR.ckpt, Wan2.1_VAE.pth, ram_swin_large_14m.pth, DAPE.pth (or\n"
            "                           .safetensors of the same stem) and optional model.json (default: models)\n"
            "  --scale N                upscale factor (default 4)\n"
            "  --no-scene-detection     one scene, chunks of 9, 12, 12, ...\n"
            "  --scene-threshold X      ContentDetector threshold (default 27)\n"
            "  --reference-threshold X  visual reference refresh threshold (default 27)\n"
            "  --max-frames N           stop after N input frames\n"
            "  --fps X                  output frame rate (default: the input's; timestamps kept)\n"
            "  --codec h264|ffv1|y4m    (default: from OUT's extension)\n"
            "  --yuv444p                lossless H.264 4:4:4 (CRF 0)\n"
            "  --crf N                  H.264 quality (default 15, as the reference)\n"
            CLI_DEVICE_HELP
            "                           (default: cpu, until the CUDA backend has run on a GPU)\n"
            "  --threads N              CPU threads for the model (default: all cores)\n"
            "  --vae-tile-threshold N   VAE tiled when the padded output height exceeds N (default 1024)\n"
            "  --json                   progress and result as JSON lines on stdout\n"
            "  --quiet                  no progress, only errors\n"
            "  --force                  overwrite OUT if it exists\n"
            "exit codes: 0 ok, 1 bad input/model/runtime failure, 2 usage error, 3 device not available\n"
            "(on every failure nothing is left under OUT)\n");
}

static bool parse_double(const char * s, double * v) {
    char * end;
    errno = 0;
    *v = strtod(s, &end);
    return errno == 0 && end != s && *end == 0;
}

static bool parse_int64(const char * s, int64_t * v) {
    char * end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    *v = x;
    return errno == 0 && end != s && *end == 0;
}

static int parse_args(int argc, char ** argv, struct upscale_opts * o) {
    memset(o, 0, sizeof *o);
    o->model_dir = "models";
    /* cpu until tests/cuda/run_gpu_checks.sh has passed on a GPU: `auto` would otherwise put
     * every GPU user on a backend that has never executed (README, docs/CUDA.md). */
    o->device = "cpu";
    o->scale = 4, o->crf = 15, o->vae_tile_threshold = 1024;
    o->scene_threshold = o->reference_threshold = 27.0;
    o->progress = PROGRESS_AUTO;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char * a = argv[i], * v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t iv;
        double  dv;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--no-scene-detection") == 0) {
            o->no_scene = true;
        } else if (strcmp(a, "--yuv444p") == 0) {
            o->yuv444p = true;
        } else if (strcmp(a, "--force") == 0) {
            o->force = true;
        } else if (strcmp(a, "--json") == 0) {
            o->progress = PROGRESS_JSON;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->progress = PROGRESS_NONE;
        } else if (v && strcmp(a, "--model-dir") == 0) {
            o->model_dir = v, i++;
        } else if (v && strcmp(a, "--device") == 0) {
            o->device = v, i++;
        } else if (v && strcmp(a, "--precision") == 0) {
            o->precision = v, i++;
        } else if (v && strcmp(a, "--codec") == 0) {
            o->codec_set = true, i++;
            if (strcmp(v, "h264") == 0) o->codec = INFVSR_CODEC_H264;
            else if (strcmp(v, "ffv1") == 0) o->codec = INFVSR_CODEC_FFV1;
            else if (strcmp(v, "y4m") == 0) o->codec = INFVSR_CODEC_Y4M;
            else { fprintf(stderr, "infvsr upscale: unknown --codec '%s' (h264, ffv1, y4m)\n", v); return 2; }
        } else if (v && (strcmp(a, "--scale") == 0 || strcmp(a, "--threads") == 0 || strcmp(a, "--crf") == 0 ||
                         strcmp(a, "--max-frames") == 0 || strcmp(a, "--vae-tile-threshold") == 0)) {
            i++;
            if (!parse_int64(v, &iv) || iv < 0 || iv > INT32_MAX) {
                fprintf(stderr, "infvsr upscale: %s needs a non-negative integer, got '%s'\n", a, v);
                return 2;
            }
            if (strcmp(a, "--scale") == 0) o->scale = (int)iv;
            else if (strcmp(a, "--threads") == 0) o->threads = (int)iv;
            else if (strcmp(a, "--crf") == 0) o->crf = (int)iv;
            else if (strcmp(a, "--max-frames") == 0) o->max_frames = iv;
            else o->vae_tile_threshold = (int)iv;
            if (strcmp(a, "--max-frames") == 0 && iv < 1) {
                fprintf(stderr, "infvsr upscale: --max-frames must be >= 1\n");
                return 2;
            }
        } else if (v && (strcmp(a, "--scene-threshold") == 0 || strcmp(a, "--reference-threshold") == 0 ||
                         strcmp(a, "--fps") == 0)) {
            i++;
            if (!parse_double(v, &dv) || !(dv >= 0) || dv > 1e6) {
                fprintf(stderr, "infvsr upscale: %s needs a number, got '%s'\n", a, v);
                return 2;
            }
            if (strcmp(a, "--fps") == 0) o->fps = dv;
            else if (!(dv > 0)) { fprintf(stderr, "infvsr upscale: %s must be > 0\n", a); return 2; }
            else if (strcmp(a, "--scene-threshold") == 0) o->scene_threshold = dv;
            else o->reference_threshold = dv;
        } else if ((a[0] != '-' || strcmp(a, "-") == 0) && n_pos < 2) {
            if (n_pos++ == 0) o->in = a;
            else o->out = a;
        } else {
            fprintf(stderr, "infvsr upscale: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o->in || !o->out) {
        fprintf(stderr, "infvsr upscale: IN and OUT are required\n");
        usage(stderr);
        return 2;
    }
    if (o->scale < 1 || o->scale > 8) {
        fprintf(stderr, "infvsr upscale: --scale must be 1..8\n");
        return 2;
    }
    if (o->crf > 51) {
        fprintf(stderr, "infvsr upscale: --crf must be 0..51\n");
        return 2;
    }
    if (!o->codec_set) {
        const char * dot = strrchr(o->out, '.');
        o->codec = dot && strcasecmp(dot, ".y4m") == 0 ? INFVSR_CODEC_Y4M : INFVSR_CODEC_H264;
    }
    if (o->progress == PROGRESS_AUTO) o->progress = isatty(2) ? PROGRESS_BAR : PROGRESS_NONE;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int stdin_read(void * opaque, uint8_t * buf, int size) {
    (void)opaque;
    ssize_t n = read(0, buf, (size_t)size);
    return n < 0 ? -1 : (int)n;
}

struct run {
    const struct upscale_opts * o;
    struct infvsr_media_reader * r;
    struct infvsr_media_writer * w;
    struct infvsr_session *      s;
    uint8_t *                    sr;
    int64_t                      total;    /* expected frames, -1 unknown */
    double                       t_start, t_last_progress;
    double                       t_decode, t_encode;
    bool                         keep_pts;
};

static void progress(struct run * R, bool final) {
    if (R->o->progress == PROGRESS_NONE) return;
    double t = now_s();
    if (!final && t - R->t_last_progress < 0.25) return;
    R->t_last_progress = t;
    struct infvsr_session_stats st;
    infvsr_session_get_stats(R->s, &st);
    double el = t - R->t_start, fps = el > 0 ? st.frames_out / el : 0;
    double eta = R->total > 0 && fps > 0 ? (R->total - st.frames_out) / fps : -1;
    if (R->o->progress == PROGRESS_JSON) {
        printf("{\"event\":\"progress\",\"frames_in\":%lld,\"frames_out\":%lld,\"total\":%lld,\"fps\":%.3f,"
               "\"elapsed_s\":%.3f,\"eta_s\":%.1f}\n",
               (long long)st.frames_in, (long long)st.frames_out, (long long)R->total, fps, el, eta);
        fflush(stdout);
        return;
    }
    char bar[31] = { 0 };
    int  fill = R->total > 0 ? (int)(30.0 * st.frames_out / R->total) : 0;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    if (R->total > 0) {
        int e = eta >= 0 ? (int)eta : 0;
        fprintf(stderr, "\r[%s] %lld/%lld frames  %.2f fps  ETA %d:%02d:%02d ", bar, (long long)st.frames_out,
                (long long)R->total, fps, e / 3600, e / 60 % 60, e % 60);
    } else {
        fprintf(stderr, "\r%lld frames  %.2f fps ", (long long)st.frames_out, fps);
    }
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

/* Writes every SR frame the session has ready. */
static enum infvsr_status drain(struct run * R, struct infvsr_err * err) {
    for (;;) {
        int64_t pts;
        int got = infvsr_session_pull_frame(R->s, R->sr, &pts, err);
        if (got < 0) return (enum infvsr_status)got;
        if (got == 0) return INFVSR_OK;
        double t0 = now_s();
        enum infvsr_status rc = infvsr_media_writer_write(R->w, R->sr, R->keep_pts ? pts : INFVSR_MEDIA_NOPTS, err);
        R->t_encode += now_s() - t0;
        if (rc != INFVSR_OK) return rc;
        progress(R, false);
    }
}

static enum infvsr_status run_all(struct run * R, uint8_t * lr, struct infvsr_err * err) {
    enum infvsr_status rc;
    for (;;) {
        if (R->o->max_frames > 0 && infvsr_media_reader_frames_read(R->r) >= R->o->max_frames) break;
        int64_t pts;
        double t0 = now_s();
        int got = infvsr_media_reader_next(R->r, lr, &pts, err);
        R->t_decode += now_s() - t0;
        if (got == INFVSR_MEDIA_EOF) break;
        if (got != INFVSR_OK) return (enum infvsr_status)got;
        while ((rc = infvsr_session_push_frame(R->s, lr, pts, err)) == INFVSR_ERR_BUSY) {
            if ((rc = drain(R, err)) != INFVSR_OK) return rc;
        }
        if (rc != INFVSR_OK) return rc;
        if ((rc = drain(R, err)) != INFVSR_OK) return rc;
    }
    if ((rc = infvsr_session_finish(R->s, err)) != INFVSR_OK) return rc;
    return drain(R, err);
}

static void print_backend(struct infvsr_backend * be) {
    struct infvsr_backend_caps c;
    infvsr_backend_get_caps(be, &c);
    printf("{\"event\":\"backend\",\"name\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\","
           "\"host_visible\":%s,\"mem_total\":%zu}\n",
           c.name, c.device, infvsr_dtype_name(c.act_dtype), c.host_visible ? "true" : "false", c.mem_total);
    fflush(stdout);
}

static void print_summary(struct run * R, struct infvsr_backend * be, double elapsed) {
    struct infvsr_session_stats st;
    infvsr_session_get_stats(R->s, &st);
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    double fps = elapsed > 0 ? st.frames_out / elapsed : 0;
    double per_in = st.chunks > 0 ? (double)st.bytes_to_device / (double)st.chunks : 0;
    double per_out = st.chunks > 0 ? (double)st.bytes_from_device / (double)st.chunks : 0;
    if (R->o->progress == PROGRESS_JSON) {
        printf("{\"event\":\"done\",\"output\":\"%s\",\"frames\":%lld,\"chunks\":%lld,\"scenes\":%lld,"
               "\"references\":%lld,\"elapsed_s\":%.3f,\"fps\":%.3f,\"seconds\":{\"decode\":%.3f",
               R->o->out, (long long)st.frames_out, (long long)st.chunks, (long long)st.scenes,
               (long long)st.references, elapsed, fps, R->t_decode);
        for (int i = 0; i < INFVSR_STAGE_COUNT; i++)
            printf(",\"%s\":%.3f", infvsr_session_stage_name(i), st.seconds[i]);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf(",\"encode\":%.3f},\"backend\":{\"name\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\"},"
               "\"model_bytes\":%zu,\"session_bytes\":%zu,\"host_bytes\":%zu,"
               "\"vae_cache_bytes\":%zu,\"dit_bytes\":%zu,\"buffer_bytes\":%zu,"
               "\"bytes_to_device\":%llu,\"bytes_from_device\":%llu,"
               "\"bytes_per_chunk\":{\"to_device\":%.0f,\"from_device\":%.0f},"
               "\"peak_rss_kb\":%ld}\n",
               R->t_encode, caps.name, caps.device, infvsr_dtype_name(caps.act_dtype), st.model_bytes,
               st.session_bytes, st.host_bytes, st.vae_cache_bytes, st.dit_bytes, st.buffer_bytes,
               (unsigned long long)st.bytes_to_device, (unsigned long long)st.bytes_from_device, per_in, per_out,
               ru.ru_maxrss);
        fflush(stdout);
    } else if (R->o->progress == PROGRESS_BAR) {
        fprintf(stderr, "%s: %lld frames, %lld chunks, %lld scenes, %.1f s (%.2f fps) on %s (%s)\n  seconds: decode %.2f",
                R->o->out, (long long)st.frames_out, (long long)st.chunks, (long long)st.scenes, elapsed, fps,
                caps.name, infvsr_dtype_name(caps.act_dtype), R->t_decode);
        for (int i = 0; i < INFVSR_STAGE_COUNT; i++)
            fprintf(stderr, ", %s %.2f", infvsr_session_stage_name(i), st.seconds[i]);
        fprintf(stderr, ", encode %.2f\n  memory: model %.1f MiB, session %.1f MiB on %s; moved per chunk %.1f KiB in, "
                "%.1f KiB out\n", R->t_encode, st.model_bytes / 1048576.0, st.session_bytes / 1048576.0, caps.name,
                per_in / 1024.0, per_out / 1024.0);
    }
}

int infvsr_cmd_upscale(int argc, char ** argv) {
    struct upscale_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    struct stat sto;
    if (!o.force && stat(o.out, &sto) == 0) {
        fprintf(stderr, "infvsr upscale: %s exists (use --force to overwrite)\n", o.out);
        return 1;
    }

    struct infvsr_err err = { 0 };
    struct run R = { .o = &o, .total = -1, .keep_pts = !(o.fps > 0) };
    struct infvsr_backend * be = NULL;
    struct infvsr_model * m = NULL;
    uint8_t * lr = NULL;
    int exit_code = 1;
    enum infvsr_status rc;

    /* FFmpeg's own chatter (x264 statistics...) only when something goes wrong. */
    av_log_set_level(AV_LOG_ERROR);
    /* Device, then model: an unavailable device or a missing model directory should not
     * cost a decode, and nothing is written before both are there. */
    int brc = cli_open_backend("infvsr upscale", o.device, o.precision, o.threads, false, &be);
    if (brc != 0) return brc;
    if (o.progress == PROGRESS_JSON) print_backend(be);
    if ((rc = infvsr_model_open_dir(o.model_dir, be, &m, &err)) != INFVSR_OK) goto fail;
    const struct infvsr_model_config * mc = infvsr_model_config_of(m);
    if (strstr(mc->name, "random") && o.progress != PROGRESS_NONE)
        fprintf(stderr, "infvsr upscale: model '%s' has RANDOM WEIGHTS: the output is not meaningful\n", mc->name);

    struct infvsr_media_limits lim = infvsr_media_limits_default();
    if (strcmp(o.in, "-") == 0) {
        struct infvsr_media_io io = { .opaque = NULL, .read = stdin_read, .seek = NULL };
        rc = infvsr_media_reader_open_io(&io, &lim, &R.r, &err);
    } else {
        rc = infvsr_media_reader_open_file(o.in, &lim, &R.r, &err);
    }
    if (rc != INFVSR_OK) goto fail; /* the reader's message names the file */
    const struct infvsr_media_info * in = infvsr_media_reader_info(R.r);
    R.total = in->nframes;
    if (o.max_frames > 0 && (R.total < 0 || R.total > o.max_frames)) R.total = o.max_frames;

    struct infvsr_session_opts so = infvsr_session_opts_default(in->width, in->height);
    so.scale = o.scale;
    so.scene_detection = !o.no_scene;
    so.scene_threshold = o.scene_threshold;
    so.reference_threshold = o.reference_threshold;
    so.max_frames = o.max_frames;
    so.vae_tile_threshold = o.vae_tile_threshold;
    if ((rc = infvsr_session_open(m, &so, &R.s, &err)) != INFVSR_OK) goto fail;

    struct infvsr_media_writer_opts wo = infvsr_media_writer_opts_for(in, o.codec);
    wo.width = infvsr_session_out_width(R.s);
    wo.height = infvsr_session_out_height(R.s);
    wo.crf = o.crf;
    wo.lossless = o.yuv444p;
    wo.copy_from = o.codec == INFVSR_CODEC_Y4M ? NULL : R.r;
    if (o.fps > 0) {
        wo.fps = o.fps, wo.fps_num = 0, wo.fps_den = 0, wo.tb_num = 0, wo.tb_den = 0;
    }
    if ((rc = infvsr_media_writer_open(o.out, &wo, &R.w, &err)) != INFVSR_OK) {
        infvsr_err_prefix(&err, "%s", o.out);
        goto fail;
    }
    if (wo.copy_from) infvsr_media_reader_set_packet_sink(R.r, infvsr_media_writer_copy_packet_sink, R.w);

    /* Exact-size frames: the media reader and writer pad rows internally for swscale. */
    lr = malloc((size_t)in->width * in->height * 3);
    R.sr = malloc((size_t)wo.width * wo.height * 3);
    if (!lr || !R.sr) {
        rc = infvsr_err_set(&err, INFVSR_ERR_NOMEM, "out of memory for frame buffers");
        goto fail;
    }
    R.t_start = R.t_last_progress = now_s();
    if ((rc = run_all(&R, lr, &err)) != INFVSR_OK) goto fail;
    struct infvsr_session_stats st;
    infvsr_session_get_stats(R.s, &st);
    if (st.frames_out != st.frames_in) {
        rc = infvsr_err_set(&err, INFVSR_ERR_INVALID_ARG, "internal: %lld frames in, %lld out",
                            (long long)st.frames_in, (long long)st.frames_out);
        goto fail;
    }
    double t0 = now_s();
    rc = infvsr_media_writer_finish(R.w, &err);
    R.w = NULL;
    R.t_encode += now_s() - t0;
    if (rc != INFVSR_OK) goto fail;
    progress(&R, true);
    print_summary(&R, be, now_s() - R.t_start);
    exit_code = 0;
    goto done;
fail:
    if (o.progress == PROGRESS_BAR) fputc('\n', stderr);
    fprintf(stderr, "infvsr upscale: error: %s\n", err.msg[0] ? err.msg : infvsr_status_str(rc));
    if (o.progress == PROGRESS_JSON) printf("{\"event\":\"error\",\"status\":\"%s\"}\n", infvsr_status_str(rc));
done:
    if (R.w) infvsr_media_writer_abort(R.w);
    infvsr_session_close(R.s);
    infvsr_media_reader_close(R.r);
    infvsr_model_close(m);
    infvsr_backend_free(be);
    free(lr);
    free(R.sr);
    return exit_code;
}
