/* `infvsr submit IN [-o OUT] --server URL [--token T] [job options]`: runs a job on an
 * infvsrd daemon through its public API (proto/openapi.yaml) and writes the result to OUT.
 *
 * Flow: POST /v1/jobs (with an Idempotency-Key saved beforehand, so a run killed between
 * the request and its answer finds the same job), tus creation, then at once: PATCH uploads
 * from the server's offset, the SSE progress stream and GET output written to OUT.part while
 * the job runs (submit_transfer.c). At the end the job's status must say succeeded with the
 * byte count of OUT.part; OUT.part is then renamed to OUT and the state file removed. Every
 * step resumes: a second run with the same arguments continues from the state file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_util.h"
#include "commands.h"
#include "submit.h"

static void usage(FILE * f) {
    fprintf(f,
            "usage: infvsr submit IN [-o OUT] --server URL [--token T] [options]\n"
            "  Runs IN on an infvsrd daemon: creates a job, uploads IN with tus (resumable), shows progress\n"
            "  and downloads the output while it is produced. A cut connection is retried and resumed; a\n"
            "  killed run is resumed by running the same command again (state in OUT.infvsr-submit.json,\n"
            "  partial output in OUT.part). OUT is written only when the whole output is there.\n"
            "  -o, --out OUT            output file (default: IN without its extension + .x4.mkv)\n"
            "  --server URL             the daemon, e.g. http://localhost:8080 (env INFVSR_SERVER)\n"
            "  --token T                bearer token (env INFVSR_TOKEN)\n"
            "job options (as `infvsr upscale`; mapped to the JobSpec of proto/openapi.yaml):\n"
            "  --scale N                upscale factor (server default 4)\n"
            "  --no-scene-detection     one scene\n"
            "  --scene-threshold X      ContentDetector threshold (default 27)\n"
            "  --reference-threshold X  visual reference refresh threshold (default 27)\n"
            "  --max-frames N           stop after N input frames\n"
            "  --codec h264|ffv1|y4m    (default: from OUT's extension; y4m means raw video in .y4m)\n"
            "  --container C            matroska, mpegts, mp4 or y4m (default: from OUT's extension:\n"
            "                           .mkv .ts .mp4 .y4m)\n"
            "  --yuv444p                lossless H.264 4:4:4 (CRF 0)\n"
            "  --crf N                  H.264 quality (server default 15)\n"
            "  --no-audio               do not copy the input's audio\n"
            "  --model NAME             model name from GET /v1/models\n"
            "  (--model-dir, --device, --precision, --threads and --vae-tile-threshold are the daemon's\n"
            "   settings, not a job's: they are refused here)\n"
            "client options:\n"
            "  --max-wait S             total seconds to wait on 429/503 answers (Retry-After) before\n"
            "                           giving up (default 600)\n"
            "  --retry-timeout S        give up when the server has been unreachable this long (default 300)\n"
            "  --chunk-size BYTES       bytes per tus PATCH (default 16777216)\n"
            "  --limit-rate BYTES/S     cap the upload rate (default: none)\n"
            "  --insecure               do not verify the server's TLS certificate\n"
            "  --json                   progress and result as JSON lines on stdout\n"
            "  --quiet                  no progress, only errors\n"
            "  --force                  overwrite OUT if it exists\n"
            "exit codes: 0 ok, 1 the job failed or the server refused the input/options (its message is\n"
            "printed), 2 usage error, 4 authentication (401/403), 5 server busy past --max-wait,\n"
            "6 server unreachable past --retry-timeout\n");
}

static bool ends_with(const char * s, const char * suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int parse_args(int argc, char ** argv, struct sb_opts * o, char * out_buf, size_t out_cap) {
    memset(o, 0, sizeof *o);
    o->server = getenv("INFVSR_SERVER");
    o->token = getenv("INFVSR_TOKEN");
    o->max_wait_s = 600, o->retry_timeout_s = 300;
    o->chunk_size = 16 << 20;
    o->scene_threshold = o->reference_threshold = -1;
    o->scale = 4;
    const char * server_only = NULL;
    double scale = -1, crf = -1, max_frames = -1, chunk = -1, scene = -1, refthr = -1;
    bool json = false, quiet = false;
    struct cli_opt opts[] = {
        { "-o", CLI_STR, &o->out, 0, 0 },
        { "--out", CLI_STR, &o->out, 0, 0 },
        { "--server", CLI_STR, &o->server, 0, 0 },
        { "--token", CLI_STR, &o->token, 0, 0 },
        { "--scale", CLI_DOUBLE, &scale, 1, 8 },
        { "--no-scene-detection", CLI_FLAG, &o->no_scene, 0, 0 },
        { "--scene-threshold", CLI_DOUBLE, &scene, 1e-9, 1e6 },
        { "--reference-threshold", CLI_DOUBLE, &refthr, 1e-9, 1e6 },
        { "--max-frames", CLI_DOUBLE, &max_frames, 1, 2147483647.0 },
        { "--codec", CLI_STR, &o->codec, 0, 0 },
        { "--container", CLI_STR, &o->container, 0, 0 },
        { "--yuv444p", CLI_FLAG, &o->yuv444p, 0, 0 },
        { "--crf", CLI_DOUBLE, &crf, 0, 51 },
        { "--no-audio", CLI_FLAG, &o->no_audio, 0, 0 },
        { "--model", CLI_STR, &o->model, 0, 0 },
        { "--model-dir", CLI_STR, &server_only, 0, 0 },
        { "--device", CLI_STR, &server_only, 0, 0 },
        { "--precision", CLI_STR, &server_only, 0, 0 },
        { "--threads", CLI_STR, &server_only, 0, 0 },
        { "--vae-tile-threshold", CLI_STR, &server_only, 0, 0 },
        { "--fps", CLI_STR, &server_only, 0, 0 },
        { "--max-wait", CLI_DOUBLE, &o->max_wait_s, 0, 86400 * 7 },
        { "--retry-timeout", CLI_DOUBLE, &o->retry_timeout_s, 0, 86400 * 7 },
        { "--chunk-size", CLI_DOUBLE, &chunk, 1024, 1099511627776.0 },
        { "--limit-rate", CLI_DOUBLE, &o->limit_rate, 1, 1e12 },
        { "--insecure", CLI_FLAG, &o->insecure, 0, 0 },
        { "--json", CLI_FLAG, &json, 0, 0 },
        { "--quiet", CLI_FLAG, &quiet, 0, 0 },
        { "-q", CLI_FLAG, &quiet, 0, 0 },
        { "--force", CLI_FLAG, &o->force, 0, 0 },
        { NULL, CLI_FLAG, NULL, 0, 0 },
    };
    const char * pos[1];
    int npos = 0;
    int rc = cli_parse("infvsr submit", argc, argv, opts, pos, 1, &npos);
    if (rc < 0) {
        usage(stdout);
        return -1;
    }
    if (rc) return rc;
    if (server_only) {
        fprintf(stderr, "infvsr submit: --model-dir, --device, --precision, --threads, --vae-tile-threshold and --fps "
                        "are settings of the daemon (or not offered by its API), not of a job\n");
        return 2;
    }
    if (npos != 1) {
        fprintf(stderr, "infvsr submit: IN is required (see --help)\n");
        return 2;
    }
    o->in = pos[0];
    if (!o->server || !o->server[0]) {
        fprintf(stderr, "infvsr submit: --server URL is required (or INFVSR_SERVER)\n");
        return 2;
    }
    if (strncmp(o->server, "http://", 7) != 0 && strncmp(o->server, "https://", 8) != 0) {
        fprintf(stderr, "infvsr submit: --server must start with http:// or https://, got '%s'\n", o->server);
        return 2;
    }
    /* whole numbers where the API wants integers (cli DOUBLE keeps the range check) */
    struct { double v; const char * name; } ints[] = { { scale, "--scale" }, { crf, "--crf" },
                                                       { max_frames, "--max-frames" }, { chunk, "--chunk-size" } };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (ints[i].v >= 0 && ints[i].v != (double)(int64_t)ints[i].v) {
            fprintf(stderr, "infvsr submit: %s expects an integer\n", ints[i].name);
            return 2;
        }
    }
    if (scale > 0) o->scale = (int)scale, o->scale_set = true;
    if (crf >= 0) o->crf = (int)crf, o->crf_set = true;
    if (max_frames > 0) o->max_frames = (int)max_frames;
    if (chunk > 0) o->chunk_size = (int64_t)chunk;
    o->scene_threshold = scene, o->reference_threshold = refthr;
    if (!o->out) {
        const char * slash = strrchr(o->in, '/');
        const char * dot = strrchr(o->in, '.');
        size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - o->in) : strlen(o->in);
        if (stem + 16 >= out_cap) {
            fprintf(stderr, "infvsr submit: IN path too long\n");
            return 2;
        }
        snprintf(out_buf, out_cap, "%.*s.x%d.mkv", (int)stem, o->in, o->scale);
        o->out = out_buf;
    }
    if (!o->container) {
        if (ends_with(o->out, ".ts") || ends_with(o->out, ".m2ts")) o->container = "mpegts";
        else if (ends_with(o->out, ".mp4") || ends_with(o->out, ".m4v") || ends_with(o->out, ".mov")) o->container = "mp4";
        else if (ends_with(o->out, ".y4m")) o->container = "y4m";
        else if (ends_with(o->out, ".mkv") || ends_with(o->out, ".webm")) o->container = "matroska";
        else if (o->codec && strcmp(o->codec, "y4m") == 0) o->container = "y4m";
        else {
            fprintf(stderr, "infvsr submit: cannot tell the container from '%s': name it .mkv, .ts, .mp4 or .y4m, "
                            "or pass --container\n", o->out);
            return 2;
        }
    }
    if (o->codec && strcmp(o->codec, "h264") != 0 && strcmp(o->codec, "ffv1") != 0 && strcmp(o->codec, "y4m") != 0) {
        fprintf(stderr, "infvsr submit: unknown --codec '%s' (h264, ffv1, y4m)\n", o->codec);
        return 2;
    }
    if (o->codec && strcmp(o->codec, "y4m") == 0) o->container = "y4m";
    o->progress = json ? SB_PROGRESS_JSON : quiet ? SB_PROGRESS_NONE : isatty(2) ? SB_PROGRESS_TTY : SB_PROGRESS_PLAIN;
    return 0;
}

/* The JobSpec (openapi.yaml) for the options: only what was set, so the server's defaults
 * apply to the rest. Values the server refuses come back as 400 with its message. */
static char * build_spec(const struct sb_opts * o, const struct sb_input * in) {
    json_t * spec = json_object();
    if (o->model) json_object_set_new(spec, "model", json_string(o->model));
    if (o->scale_set) json_object_set_new(spec, "scale", json_integer(o->scale));
    json_t * input = json_object();
    json_object_set_new(input, "expected_bytes", json_integer(in->size));
    if (o->max_frames > 0) json_object_set_new(input, "max_frames", json_integer(o->max_frames));
    json_object_set_new(spec, "input", input);
    json_t * out = json_object();
    json_object_set_new(out, "container", json_string(o->container));
    if (o->codec) json_object_set_new(out, "codec", json_string(strcmp(o->codec, "y4m") == 0 ? "rawvideo" : o->codec));
    else if (strcmp(o->container, "y4m") == 0) json_object_set_new(out, "codec", json_string("rawvideo"));
    if (o->yuv444p) {
        json_object_set_new(out, "pixel_format", json_string("yuv444p"));
        json_object_set_new(out, "crf", json_integer(0));
    } else if (o->crf_set) {
        json_object_set_new(out, "crf", json_integer(o->crf));
    }
    if (o->no_audio) json_object_set_new(out, "copy_audio", json_false());
    json_object_set_new(spec, "output", out);
    if (o->no_scene || o->scene_threshold > 0 || o->reference_threshold > 0) {
        json_t * sc = json_object();
        if (o->no_scene) json_object_set_new(sc, "detect", json_false());
        if (o->scene_threshold > 0) json_object_set_new(sc, "threshold", json_real(o->scene_threshold));
        if (o->reference_threshold > 0) json_object_set_new(sc, "reference_threshold", json_real(o->reference_threshold));
        json_object_set_new(spec, "scenes", sc);
    }
    char * txt = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(spec);
    return txt;
}

static void random_key(char * out, size_t cap) {
    unsigned char b[16] = { 0 };
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, b, sizeof b) != (ssize_t)sizeof b) memset(b, 0, sizeof b);
        close(fd);
    }
    uint64_t t = (uint64_t)(sb_now() * 1e9) ^ (uint64_t)getpid();
    for (int i = 0; i < 8; i++) b[i] ^= (unsigned char)(t >> (8 * i));
    size_t n = 0;
    n += (size_t)snprintf(out, cap, "submit-");
    for (int i = 0; i < 16 && n + 3 < cap; i++) n += (size_t)snprintf(out + n, cap - n, "%02x", b[i]);
}

static void base64(const char * in, char * out, size_t cap) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

/* Absolute URL for a path or URL the server returned (Location, urls.*). */
static void absolute(const struct sb * s, const char * loc, char * out, size_t cap) {
    if (strstr(loc, "://")) snprintf(out, cap, "%s", loc);
    else snprintf(out, cap, "%s%s%s", s->st.base, loc[0] == '/' ? "" : "/", loc);
}

static int fail(const char * what, const struct sb_resp * r) {
    char why[700];
    sb_describe(r, why, sizeof why);
    int code = sb_exit_for(r);
    fprintf(stderr, "infvsr submit: %s: %s%s\n", what, why,
            code == SB_EXIT_AUTH ? " (check --token / INFVSR_TOKEN)" : "");
    return code;
}

/* POST /v1/jobs, or the job of the saved Idempotency-Key (200) after a kill. */
static int create_job(struct sb * s) {
    char url[1200], key_hdr[96];
    snprintf(url, sizeof url, "%s/v1/jobs", s->st.base);
    snprintf(key_hdr, sizeof key_hdr, "Idempotency-Key: %s", s->st.idem_key);
    const char * hdrs[] = { "Content-Type: application/json", key_hdr, NULL };
    struct sb_resp r = { 0 };
    int rc = sb_call(s, "create job", "POST", url, hdrs, s->st.spec, strlen(s->st.spec), &r);
    if (rc == 0 && r.status != 201 && r.status != 200) rc = fail("create job", &r);
    if (rc == 0) {
        json_t * j = r.body ? json_loads(r.body, 0, NULL) : NULL;
        const char * id = json_string_value(json_object_get(j, "id"));
        if (!id || strlen(id) >= sizeof s->st.job_id) {
            fprintf(stderr, "infvsr submit: create job: HTTP %ld without a job id\n", r.status);
            rc = SB_EXIT_FAILED;
        } else {
            snprintf(s->st.job_id, sizeof s->st.job_id, "%s", id);
            sb_event(s, "{\"event\":\"job\",\"id\":\"%s\",\"created\":%s}", id, r.status == 201 ? "true" : "false");
            sb_note(s, "job %s %s", id, r.status == 201 ? "created" : "found again (Idempotency-Key)");
        }
        json_decref(j);
    }
    sb_resp_free(&r);
    return rc;
}

/* tus creation: POST /v1/uploads with the job id in Upload-Metadata. */
static int create_upload(struct sb * s) {
    char url[1200], len_hdr[64], meta_hdr[300], b64[200];
    snprintf(url, sizeof url, "%s/v1/uploads", s->st.base);
    snprintf(len_hdr, sizeof len_hdr, "Upload-Length: %" PRId64, s->st.in.size);
    base64(s->st.job_id, b64, sizeof b64);
    snprintf(meta_hdr, sizeof meta_hdr, "Upload-Metadata: job_id %s", b64);
    const char * hdrs[] = { "Tus-Resumable: 1.0.0", len_hdr, meta_hdr, NULL };
    struct sb_resp r = { 0 };
    int rc = sb_call(s, "create upload", "POST", url, hdrs, NULL, 0, &r);
    if (rc == 0 && r.status == 409 && r.body && strstr(r.body, "(tus upload)")) {
        /* created by a run killed before it saved the URL: the URL is /v1/uploads/{job id}
         * (openapi.yaml), on the instance that answered */
        char origin[1024];
        if (!sb_origin(r.effective_url, origin, sizeof origin)) snprintf(origin, sizeof origin, "%s", s->st.base);
        snprintf(s->st.upload_url, sizeof s->st.upload_url, "%s/v1/uploads/%s", origin, s->st.job_id);
        sb_resp_free(&r);
        return 0;
    }
    if (rc == 0 && r.status != 201) rc = fail("create upload", &r);
    if (rc == 0) {
        if (!r.location[0]) {
            fprintf(stderr, "infvsr submit: create upload: 201 without Location\n");
            rc = SB_EXIT_FAILED;
        } else {
            /* relative to where the answer came from (the owner after a 307) */
            char origin[1024];
            if (!strstr(r.location, "://") && sb_origin(r.effective_url, origin, sizeof origin))
                snprintf(s->st.upload_url, sizeof s->st.upload_url, "%s%s", origin, r.location);
            else absolute(s, r.location, s->st.upload_url, sizeof s->st.upload_url);
        }
    }
    sb_resp_free(&r);
    return rc;
}

/* The job's status after the transfers: succeeded, with the byte count of OUT.part. */
static int verify_job(struct sb * s) {
    char url[1400];
    snprintf(url, sizeof url, "%s/v1/jobs/%s", s->st.base, s->st.job_id);
    struct sb_resp r = { 0 };
    int rc = sb_call(s, "job status", "GET", url, NULL, NULL, 0, &r);
    if (rc == 0 && r.status != 200) rc = fail("job status", &r);
    if (rc == 0) {
        json_t * j = json_loads(r.body ? r.body : "", 0, NULL);
        const char * state = json_string_value(json_object_get(j, "state"));
        json_int_t bytes = json_integer_value(json_object_get(json_object_get(j, "output"), "bytes"));
        if (!state || strcmp(state, "succeeded") != 0) {
            json_t * e = json_object_get(j, "error");
            fprintf(stderr, "infvsr submit: job %s %s: %s: %s\n", s->st.job_id, state ? state : "?",
                    json_string_value(json_object_get(e, "code")) ?: "-",
                    json_string_value(json_object_get(e, "message")) ?: "-");
            rc = SB_EXIT_FAILED;
        } else if ((int64_t)bytes != s->out_bytes) {
            fprintf(stderr, "infvsr submit: job %s: the server's output has %lld bytes, %s has %" PRId64 "\n",
                    s->st.job_id, (long long)bytes, s->part_path, s->out_bytes);
            rc = SB_EXIT_FAILED;
        } else {
            json_int_t fo = json_integer_value(json_object_get(j, "frames_out"));
            if (fo > 0) s->frames_out = fo;
            double fps = json_number_value(json_object_get(j, "fps"));
            if (fps > 0) s->fps = fps;
        }
        json_decref(j);
    }
    sb_resp_free(&r);
    return rc;
}

static int run(struct sb * s) {
    const struct sb_opts * o = s->o;
    struct sb_input in;
    char err[600];
    if (sb_input_identify(o->in, &in, err, sizeof err) != 0) {
        fprintf(stderr, "infvsr submit: %s\n", err);
        return SB_EXIT_FAILED;
    }
    char * spec = build_spec(o, &in);
    if (!spec || strlen(spec) >= sizeof s->st.spec) {
        free(spec);
        fprintf(stderr, "infvsr submit: job spec too long\n");
        return SB_EXIT_USAGE;
    }
    char server[1024];
    snprintf(server, sizeof server, "%s", o->server);
    for (size_t n = strlen(server); n > 0 && server[n - 1] == '/';) server[--n] = 0;

    struct sb_state old;
    bool resume = sb_state_load(s->state_path, &old);
    if (resume && (strcmp(old.server, server) != 0 || strcmp(old.spec, spec) != 0 || old.in.size != in.size ||
                   old.in.mtime_ns != in.mtime_ns || strcmp(old.in.head_sha, in.head_sha) != 0 ||
                   strcmp(old.in.tail_sha, in.tail_sha) != 0)) {
        sb_note(s, "%s belongs to another input, server or options: starting a new job", s->state_path);
        resume = false;
        unlink(s->part_path);
    }
    if (!resume) {
        struct stat sto;
        if (!o->force && stat(o->out, &sto) == 0) {
            free(spec);
            fprintf(stderr, "infvsr submit: %s exists (use --force to overwrite)\n", o->out);
            return SB_EXIT_USAGE;
        }
        memset(&s->st, 0, sizeof s->st);
        snprintf(s->st.server, sizeof s->st.server, "%s", server);
        snprintf(s->st.base, sizeof s->st.base, "%s", server);
        snprintf(s->st.spec, sizeof s->st.spec, "%s", spec);
        random_key(s->st.idem_key, sizeof s->st.idem_key);
        unlink(s->part_path);
    } else {
        s->st = old;
        sb_note(s, "resuming job %s from %s", s->st.job_id[0] ? s->st.job_id : "(creation)", s->state_path);
        if (s->st.job_id[0]) sb_event(s, "{\"event\":\"job\",\"id\":\"%s\",\"created\":false,\"resumed\":true}", s->st.job_id);
    }
    free(spec);
    s->st.in = in; /* identical to a resumed state's, which was checked above */
    /* saved before the creation: the key then identifies the job even if this run dies
     * before the answer arrives */
    if (sb_state_save(s->state_path, &s->st) != 0) {
        fprintf(stderr, "infvsr submit: cannot write %s: %s\n", s->state_path, strerror(errno));
        return SB_EXIT_FAILED;
    }
    int rc;
    for (int attempt = 0;; attempt++) {
        if (!s->st.job_id[0]) {
            if ((rc = create_job(s)) != 0) return rc;
            sb_state_save(s->state_path, &s->st);
        }
        if (!s->st.upload_url[0]) {
            if ((rc = create_upload(s)) != 0) return rc;
            sb_state_save(s->state_path, &s->st);
        }
        sb_event(s, "{\"event\":\"upload\",\"url\":\"%s\",\"length\":%" PRId64 "}", s->st.upload_url, s->st.in.size);
        rc = sb_transfer(s);
        sb_state_save(s->state_path, &s->st); /* the job's base may have moved (307) */
        if (rc != SB_EXIT_OK) {
            /* the job vanished (expired, deleted, a restart without its spool): once, a new one */
            if (rc == -404 && attempt == 0) {
                sb_note(s, "job %s no longer exists on the server: starting a new job", s->st.job_id);
                s->st.job_id[0] = s->st.upload_url[0] = 0;
                snprintf(s->st.base, sizeof s->st.base, "%s", server);
                random_key(s->st.idem_key, sizeof s->st.idem_key);
                unlink(s->part_path);
                s->out_bytes = 0;
                continue;
            }
            if (rc == -404) {
                fprintf(stderr, "infvsr submit: job %s no longer exists on the server\n", s->st.job_id);
                return SB_EXIT_FAILED;
            }
            return rc;
        }
        break;
    }
    if ((rc = verify_job(s)) != 0) return rc;
    int fd = open(s->part_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    if (rename(s->part_path, o->out) != 0) {
        fprintf(stderr, "infvsr submit: rename %s -> %s: %s\n", s->part_path, o->out, strerror(errno));
        return SB_EXIT_FAILED;
    }
    unlink(s->state_path);
    double el = sb_now() - s->t_start;
    sb_progress(s, true);
    if (o->progress == SB_PROGRESS_TTY) fputc('\n', stderr);
    sb_event(s, "{\"event\":\"done\",\"job\":\"%s\",\"output\":\"%s\",\"bytes\":%" PRId64 ",\"frames\":%" PRId64
                ",\"elapsed_s\":%.3f}", s->st.job_id, o->out, s->out_bytes, s->frames_out, el);
    sb_note(s, "%s: %" PRId64 " bytes, %" PRId64 " frames, %.1f s (job %s)", o->out, s->out_bytes, s->frames_out, el,
            s->st.job_id);
    return SB_EXIT_OK;
}

int infvsr_cmd_submit(int argc, char ** argv) {
    struct sb_opts o;
    char out_buf[4096];
    int prc = parse_args(argc, argv, &o, out_buf, sizeof out_buf);
    if (prc) return prc < 0 ? 0 : prc;
    struct sb s = { .o = &o, .t_start = sb_now() };
    if (strlen(o.out) + 32 > sizeof s.state_path) {
        fprintf(stderr, "infvsr submit: OUT path too long\n");
        return SB_EXIT_USAGE;
    }
    snprintf(s.state_path, sizeof s.state_path, "%s.infvsr-submit.json", o.out);
    snprintf(s.part_path, sizeof s.part_path, "%s.part", o.out);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "infvsr submit: libcurl failed to initialise\n");
        return SB_EXIT_FAILED;
    }
    if (o.token && o.token[0]) {
        char h[1100];
        if (strlen(o.token) > 1024 || strpbrk(o.token, "\r\n")) {
            fprintf(stderr, "infvsr submit: --token must be one line of at most 1024 characters\n");
            curl_global_cleanup();
            return SB_EXIT_USAGE;
        }
        snprintf(h, sizeof h, "Authorization: Bearer %s", o.token);
        s.auth = curl_slist_append(NULL, h);
    }
    int rc = run(&s);
    if (rc != SB_EXIT_OK) {
        if (o.progress == SB_PROGRESS_TTY) fputc('\n', stderr);
        sb_event(&s, "{\"event\":\"error\",\"exit_code\":%d,\"job\":\"%s\"}", rc, s.st.job_id);
        if (!s.st.job_id[0] && rc != SB_EXIT_USAGE && rc != SB_EXIT_NETWORK) {
            unlink(s.state_path); /* no job was created: nothing to resume */
        } else if (s.job_failed) { /* a failed job is not resumed: the next run starts a new one */
            unlink(s.state_path);
            unlink(s.part_path);
        } else if (s.st.job_id[0] && rc != SB_EXIT_USAGE)
            fprintf(stderr, "infvsr submit: job %s; state kept in %s (run the same command again to resume)\n",
                    s.st.job_id, s.state_path);
    }
    curl_slist_free_all(s.auth);
    curl_global_cleanup();
    return rc;
}
