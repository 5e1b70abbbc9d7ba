/* The job pipeline (server/pipeline/pipeline.h) driven directly, no HTTP. Clips and the
 * tiny model come from gen_clips.sh (PL_CLIP_DIR). Outputs are checked with ffprobe
 * (frames, size, audio packets) and, for the null model, frame by frame against a
 * nearest-neighbour upscale of the decoded input (FFV1 keeps the RGB frames exactly).
 *
 *   test_daemon_pipeline [name-substring] */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "check.h"
#include "media.h"
#include "pipeline.h"

#define CLIP(name) PL_CLIP_DIR "/" name

/* ---- helpers ------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Every deadline below is an upper bound for a state to be reached, never a duration the
 * test relies on: scaled so that a loaded machine under ASan only makes failures slower. */
#define WAIT_SCALE 6.0

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

struct counters {
    atomic_int input_space, progress, output, finished, engine;
};

static void on_notify(void * user, struct pl_job * j, unsigned ev) {
    struct counters * c = user;
    if (ev & PL_EV_INPUT_SPACE) atomic_fetch_add(&c->input_space, 1);
    if (ev & PL_EV_PROGRESS) atomic_fetch_add(&c->progress, 1);
    if (ev & PL_EV_OUTPUT) atomic_fetch_add(&c->output, 1);
    if (ev & PL_EV_FINISHED) atomic_fetch_add(&c->finished, 1);
    if (ev & PL_EV_ENGINE) atomic_fetch_add(&c->engine, 1);
    if (j) { /* the job is alive during the call: reading it must be safe */
        struct pl_job_status st;
        pl_job_get_status(j, &st);
    }
}

/* A fresh spool directory per test. */
static void fresh_spool(const char * name, char * dir, size_t n) {
    snprintf(dir, n, "%s/spool-%s", PL_CLIP_DIR, name);
    mkdir(dir, 0755);
    DIR * d = opendir(dir);
    struct dirent * de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
}

static int count_files_now(const char * dir) {
    int n = 0;
    DIR * d = opendir(dir);
    struct dirent * de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

/* Files left in the spool once the last references are gone (the notifier thread may hold
 * one for a moment after the test's unref). */
static int count_files(const char * dir) {
    double t0 = now_s();
    int n;
    while ((n = count_files_now(dir)) != 0 && now_s() - t0 < 2 * WAIT_SCALE) sleep_ms(2);
    return n;
}

static bool exists(const char * path) {
    struct stat st;
    return stat(path, &st) == 0;
}

struct eng_cfg {
    const char * model;
    int     max_active, max_queued, workers;
    int64_t lead, max_input, max_px;
    int     frame_queue, output_queue;
};

static struct pl_engine * start_engine(const char * spool, const struct eng_cfg * c, struct counters * cnt) {
    struct pl_engine_opts o = pl_engine_opts_default();
    o.model = c->model ? c->model : "null";
    o.spool_dir = spool;
    o.workers = c->workers ? c->workers : 1;
    o.threads = 2;
    o.max_active_per_worker = c->max_active ? c->max_active : 2;
    o.max_queued_jobs = c->max_queued ? c->max_queued : 4;
    if (c->lead) o.input_lead_bytes = c->lead;
    if (c->max_input) o.max_input_bytes = c->max_input;
    o.max_frame_pixels = c->max_px ? c->max_px : 64 * 48 * 2;
    if (c->frame_queue) o.frame_queue = c->frame_queue;
    if (c->output_queue) o.output_queue = c->output_queue;
    o.notify = on_notify;
    o.notify_user = cnt;
    struct pl_engine * e = NULL;
    struct infvsr_err err = { 0 };
    enum infvsr_status st = pl_engine_start(&o, &e, &err);
    CHECK_MSG(st == INFVSR_OK, "engine start: %s", err.msg);
    return e;
}

static enum pl_engine_state wait_engine(struct pl_engine * e, double timeout_s) {
    timeout_s *= WAIT_SCALE;
    double t0 = now_s();
    struct pl_engine_health h;
    for (;;) {
        pl_engine_health(e, &h);
        if (h.state != PL_ENGINE_LOADING || now_s() - t0 > timeout_s) return h.state;
        sleep_ms(5);
    }
}

/* Notifications are delivered on their own thread after the state they report has
 * changed: wait for the count instead of reading it once. */
static bool wait_count(atomic_int * n, int at_least, double timeout_s) {
    timeout_s *= WAIT_SCALE;
    double t0 = now_s();
    while (atomic_load(n) < at_least) {
        if (now_s() - t0 > timeout_s) return false;
        sleep_ms(5);
    }
    return true;
}

static struct pl_job * create_job(struct pl_engine * e, const char * id, struct pl_job_spec * spec) {
    struct pl_job_spec s = spec ? *spec : pl_job_spec_default();
    snprintf(s.id, sizeof(s.id), "%s", id);
    struct pl_job * j = NULL;
    struct infvsr_err err = { 0 };
    enum infvsr_status st = pl_job_create(e, &s, &j, &err);
    CHECK_MSG(st == INFVSR_OK, "create %s: %s", id, err.msg);
    return j;
}

struct blob {
    uint8_t * data;
    size_t    n;
};

static struct blob read_blob(const char * path) {
    struct blob b = { 0 };
    FILE * f = fopen(path, "rb");
    if (!f) return b;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc((size_t)n + 1);
    b.n = fread(b.data, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* Writes data in pieces, retrying while the pipeline asks to wait (0 accepted). */
static bool feed_bytes(struct pl_job * j, const uint8_t * data, size_t n, size_t piece, double timeout_s) {
    timeout_s *= WAIT_SCALE;
    size_t off = 0;
    double t0 = now_s();
    while (off < n) {
        size_t len = n - off < piece ? n - off : piece;
        struct infvsr_err err = { 0 };
        int64_t r = pl_job_input_write(j, data + off, len, &err);
        if (r < 0) {
            fprintf(stderr, "  input_write: %lld %s\n", (long long)r, err.msg);
            return false;
        }
        off += (size_t)r;
        if (r == 0) {
            if (now_s() - t0 > timeout_s) return false;
            sleep_ms(1);
        }
    }
    return true;
}

static bool feed_file(struct pl_job * j, const char * path, size_t piece) {
    struct blob b = read_blob(path);
    CHECK_MSG(b.data != NULL, "cannot read %s", path);
    bool ok = b.data && feed_bytes(j, b.data, b.n, piece, 60);
    free(b.data);
    struct infvsr_err err = { 0 };
    /* (a job that already failed answers CANCELLED: callers check the final state) */
    enum infvsr_status st = pl_job_input_end(j, &err);
    return ok && st == INFVSR_OK;
}

static struct pl_job_status wait_done(struct pl_job * j, double timeout_s) {
    timeout_s *= WAIT_SCALE;
    double t0 = now_s();
    struct pl_job_status st;
    for (;;) {
        pl_job_get_status(j, &st);
        if (pl_job_state_terminal(st.state) || now_s() - t0 > timeout_s) return st;
        sleep_ms(5);
    }
}

static struct pl_job_status wait_state(struct pl_job * j, enum pl_job_state want, double timeout_s) {
    timeout_s *= WAIT_SCALE;
    double t0 = now_s();
    struct pl_job_status st;
    for (;;) {
        pl_job_get_status(j, &st);
        if (st.state == want || pl_job_state_terminal(st.state) || now_s() - t0 > timeout_s) return st;
        sleep_ms(2);
    }
}

struct probe {
    int  w, h;
    long frames, audio_packets;
};

/* ffprobe: first video stream's size and decoded frame count, audio packet count. */
static struct probe ffprobe(const char * path) {
    struct probe p = { 0, 0, -1, -1 };
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=width,height,nb_read_frames "
             "-of default=nw=1 '%s' 2>&1", path);
    FILE * f = popen(cmd, "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        sscanf(line, "width=%d", &p.w);
        sscanf(line, "height=%d", &p.h);
        sscanf(line, "nb_read_frames=%ld", &p.frames);
    }
    if (f) pclose(f);
    /* MPEG-TS lists each stream twice (in its program and on its own): count each index once */
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -select_streams a -count_packets -show_entries stream=index,nb_read_packets "
             "-of default=nw=1 '%s' 2>&1", path);
    f = popen(cmd, "r");
    p.audio_packets = 0;
    bool seen[64] = { 0 };
    int index = -1;
    while (f && fgets(line, sizeof(line), f)) {
        long n;
        if (sscanf(line, "index=%d", &index) == 1) continue;
        if (sscanf(line, "nb_read_packets=%ld", &n) == 1 && index >= 0 && index < 64 && !seen[index]) {
            seen[index] = true;
            p.audio_packets += n;
        }
    }
    if (f) pclose(f);
    return p;
}

static void nearest(const uint8_t * src, int w, int h, int s, uint8_t * dst) {
    for (int y = 0; y < h * s; y++)
        for (int x = 0; x < w * s; x++)
            memcpy(dst + ((size_t)y * w * s + x) * 3, src + ((size_t)(y / s) * w + x / s) * 3, 3);
}

/* Every output frame equals the nearest-neighbour upscale of the input frame. */
static void check_nearest(const char * in_path, const char * out_path, int scale, int want_frames) {
    struct infvsr_media_reader * ri = NULL, * ro = NULL;
    struct infvsr_err err = { 0 };
    CHECK_MSG(infvsr_media_reader_open_file(in_path, NULL, &ri, &err) == INFVSR_OK, "%s", err.msg);
    CHECK_MSG(infvsr_media_reader_open_file(out_path, NULL, &ro, &err) == INFVSR_OK, "%s", err.msg);
    if (!ri || !ro) {
        infvsr_media_reader_close(ri);
        infvsr_media_reader_close(ro);
        return;
    }
    const struct infvsr_media_info * a = infvsr_media_reader_info(ri), * b = infvsr_media_reader_info(ro);
    CHECK_EQ_INT(b->width, a->width * scale);
    CHECK_EQ_INT(b->height, a->height * scale);
    if (b->width != a->width * scale || b->height != a->height * scale) goto out;
    uint8_t * lr = malloc((size_t)a->width * a->height * 3);
    uint8_t * up = malloc((size_t)b->width * b->height * 3);
    uint8_t * sr = malloc((size_t)b->width * b->height * 3);
    int n = 0, mismatched = 0;
    for (;;) {
        int r1 = infvsr_media_reader_next(ri, lr, NULL, &err);
        int r2 = infvsr_media_reader_next(ro, sr, NULL, &err);
        CHECK_MSG(r1 == r2, "frame %d: input %d, output %d (%s)", n, r1, r2, err.msg);
        if (r1 != INFVSR_OK || r2 != INFVSR_OK) break;
        nearest(lr, a->width, a->height, scale, up);
        if (memcmp(up, sr, (size_t)b->width * b->height * 3) != 0) mismatched++;
        n++;
    }
    CHECK_EQ_INT(n, want_frames);
    CHECK_EQ_INT(mismatched, 0);
    free(lr);
    free(up);
    free(sr);
out:
    infvsr_media_reader_close(ri);
    infvsr_media_reader_close(ro);
}

static void out_path(const char * spool, const char * id, const char * ext, char * p, size_t n) {
    snprintf(p, n, "%s/%s%s", spool, id, ext);
}

/* ---- tests ----------------------------------------------------------------------------- */

/* Null model, Matroska/FFV1 x2: exact nearest-neighbour frames, audio copied, files. */
static void test_null_exact_ffv1(void) {
    char spool[512], p[600];
    fresh_spool("null_exact", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ 0 }, &c);
    if (!e) return;
    CHECK_EQ_INT(wait_engine(e, 10), PL_ENGINE_READY);
    struct pl_engine_health h;
    pl_engine_health(e, &h);
    CHECK_STR_CONTAINS(h.model_name, "null");
    CHECK_STR_CONTAINS(h.workers[0].backend, "null");
    struct pl_job_spec s = pl_job_spec_default();
    s.scale = 2;
    s.codec = PL_CODEC_FFV1;
    struct pl_job * j = create_job(e, "exact", &s);
    if (!j) goto done;
    feed_file(j, CLIP("a.mkv"), 4096);
    struct pl_job_status st = wait_done(j, 30);
    CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "state %s: %s", pl_job_state_name(st.state), st.error);
    CHECK_EQ_INT(st.frames_in, 36);
    CHECK_EQ_INT(st.frames_out, 36);
    CHECK_EQ_INT(st.width, 64);
    CHECK_EQ_INT(st.out_width, 128);
    CHECK_EQ_INT(st.out_height, 96);
    CHECK(st.chunks >= 3);
    out_path(spool, "exact", ".out", p, sizeof(p));
    CHECK(exists(p));
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && sb.st_size == pl_job_output_bytes(j));
    int fd = pl_job_output_fd(j);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    struct probe in = ffprobe(CLIP("a.mkv")), out = ffprobe(p);
    CHECK_EQ_INT(out.frames, 36);
    CHECK_EQ_INT(out.w, 128);
    CHECK_EQ_INT(out.h, 96);
    CHECK(in.audio_packets > 30);
    CHECK_EQ_INT(out.audio_packets, in.audio_packets);
    check_nearest(CLIP("a.mkv"), p, 2, 36);
    CHECK(wait_count(&c.finished, 1, 10));
    CHECK(wait_count(&c.output, 1, 10));
    struct pl_metrics m;
    pl_engine_metrics(e, &m);
    CHECK_EQ_INT(m.frames_in, 36);
    CHECK_EQ_INT(m.frames_out, 36);
    CHECK_EQ_INT(m.jobs_succeeded, 1);
    CHECK_EQ_INT((int64_t)m.output_bytes, sb.st_size);
    CHECK_EQ_INT(m.time_to_first_frame.count, 1);
    CHECK_EQ_INT(m.queue_seconds.count, 1);
    CHECK_EQ_INT(m.chunk_seconds.count, (int64_t)m.chunks);
    /* delete + last unref removes the spool files */
    pl_job_delete(j);
    pl_job_unref(j);
    CHECK_EQ_INT(count_files(spool), 0);
done:
    pl_engine_stop(e);
}

/* y4m x3 (video only), MPEG-TS and fragmented MP4 with audio: frames, sizes, packets. */
static void test_null_containers(void) {
    char spool[512], p[600];
    fresh_spool("containers", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .max_active = 3 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct { const char * id, * in; enum pl_container ct; enum pl_codec codec; int scale; bool audio; } cases[] = {
        { "y4m", CLIP("a.ts"), PL_CONTAINER_Y4M, PL_CODEC_RAWVIDEO, 3, false },
        { "ts", CLIP("a.mkv"), PL_CONTAINER_MPEGTS, PL_CODEC_H264, 2, true },
        { "mp4", CLIP("a.ts"), PL_CONTAINER_MP4, PL_CODEC_H264, 2, true },
        { "mkv264", CLIP("frag.mp4"), PL_CONTAINER_MATROSKA, PL_CODEC_H264, 4, true },
    };
    struct pl_job * jobs[4];
    for (int i = 0; i < 4; i++) {
        struct pl_job_spec s = pl_job_spec_default();
        s.container = cases[i].ct;
        s.codec = cases[i].codec;
        s.scale = cases[i].scale;
        jobs[i] = create_job(e, cases[i].id, &s);
    }
    for (int i = 0; i < 4; i++)
        if (jobs[i]) feed_file(jobs[i], cases[i].in, 8192);
    for (int i = 0; i < 4; i++) {
        if (!jobs[i]) continue;
        struct pl_job_status st = wait_done(jobs[i], 60);
        CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "%s: %s: %s", cases[i].id, pl_job_state_name(st.state), st.error);
        out_path(spool, cases[i].id, ".out", p, sizeof(p));
        struct probe in = ffprobe(cases[i].in), out = ffprobe(p);
        CHECK_MSG(out.frames == 36, "%s: %ld frames", cases[i].id, out.frames);
        CHECK_MSG(out.w == 64 * cases[i].scale && out.h == 48 * cases[i].scale, "%s: %dx%d", cases[i].id, out.w,
                  out.h);
        long want_audio = cases[i].audio ? in.audio_packets : 0;
        CHECK_MSG(out.audio_packets == want_audio, "%s: %ld audio packets, want %ld", cases[i].id,
                  out.audio_packets, want_audio);
        pl_job_delete(jobs[i]);
        pl_job_unref(jobs[i]);
    }
    CHECK_EQ_INT(count_files(spool), 0);
    pl_engine_stop(e);
}

/* The tiny model (real pipeline): x4, frame count, audio. */
static void test_tiny_model(void) {
    char spool[512], p[600];
    fresh_spool("tiny", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .model = CLIP("tiny") }, &c);
    if (!e) return;
    CHECK_EQ_INT(wait_engine(e, 60), PL_ENGINE_READY);
    struct pl_engine_health h;
    pl_engine_health(e, &h);
    CHECK_STR_CONTAINS(h.workers[0].backend, "cpu");
    CHECK(h.model_name[0] != 0 && strcmp(h.model_name, "null") != 0);
    struct pl_job * j = create_job(e, "tiny", NULL);
    if (j) {
        feed_file(j, CLIP("a.ts"), 4096);
        struct pl_job_status st = wait_done(j, 120);
        CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "state %s: %s", pl_job_state_name(st.state), st.error);
        CHECK_EQ_INT(st.frames_out, 36);
        CHECK(st.chunks >= 3); /* 9 + 12 + 12 + 3 frames */
        out_path(spool, "tiny", ".out", p, sizeof(p));
        struct probe in = ffprobe(CLIP("a.ts")), out = ffprobe(p);
        CHECK_EQ_INT(out.frames, 36);
        CHECK_EQ_INT(out.w, 256);
        CHECK_EQ_INT(out.h, 192);
        CHECK_EQ_INT(out.audio_packets, in.audio_packets);
        pl_job_delete(j);
        pl_job_unref(j);
    }
    /* Two jobs on one worker: round robin per chunk, so the second job's first output
     * comes before the first job's last chunk (FFV1: no encoder delay). */
    struct pl_job_spec s = pl_job_spec_default();
    s.codec = PL_CODEC_FFV1;
    struct pl_job * a = create_job(e, "rr-a", &s), * b = create_job(e, "rr-b", &s);
    if (a && b) {
        struct blob in = read_blob(CLIP("a.y4m"));
        size_t half = in.n / 2;
        struct infvsr_err err = { 0 };
        CHECK(feed_bytes(a, in.data, half, 8192, 30));
        CHECK(feed_bytes(b, in.data, half, 8192, 30));
        CHECK(feed_bytes(a, in.data + half, in.n - half, 8192, 30));
        CHECK(feed_bytes(b, in.data + half, in.n - half, 8192, 30));
        CHECK(pl_job_input_end(a, &err) == INFVSR_OK && pl_job_input_end(b, &err) == INFVSR_OK);
        struct pl_job_status sa = wait_done(a, 120), sb = wait_done(b, 120);
        CHECK_MSG(sa.state == PL_JOB_SUCCEEDED && sb.state == PL_JOB_SUCCEEDED, "%s / %s", sa.error, sb.error);
        CHECK_EQ_INT(sa.chunks, 4);
        CHECK_EQ_INT(sb.chunks, 4);
        double first_done = sa.finished_at < sb.finished_at ? sa.finished_at : sb.finished_at;
        CHECK_MSG(sa.first_output_at < first_done && sb.first_output_at < first_done,
                  "first outputs %.3f %.3f, first finish %.3f", sa.first_output_at, sb.first_output_at, first_done);
        free(in.data);
    }
    if (a) pl_job_delete(a), pl_job_unref(a);
    if (b) pl_job_delete(b), pl_job_unref(b);
    CHECK_EQ_INT(count_files(spool), 0);
    pl_engine_stop(e);
}

/* Output bytes appear (frames encoded, file grows) while the input is still arriving. */
static void test_streaming_output(void) {
    char spool[512];
    fresh_spool("stream", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ 0 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job_spec s = pl_job_spec_default();
    s.scale = 2;
    s.codec = PL_CODEC_FFV1;
    struct pl_job * j = create_job(e, "stream", &s);
    struct blob b = read_blob(CLIP("long.mkv"));
    if (!j || !b.data) goto done;
    /* first half of the upload */
    size_t half = b.n / 2;
    CHECK(feed_bytes(j, b.data, half, 4096, 30));
    int64_t bytes_probe = 0, bytes_later = 0;
    struct pl_job_status st;
    double t0 = now_s();
    do {
        pl_job_get_status(j, &st);
        if (st.probed && !bytes_probe) bytes_probe = pl_job_output_bytes(j);
        sleep_ms(5);
    } while (st.frames_out < 20 && now_s() - t0 < 20 * WAIT_SCALE);
    bytes_later = pl_job_output_bytes(j);
    CHECK_MSG(st.frames_out >= 20, "only %lld frames out before the end of the input", (long long)st.frames_out);
    CHECK(st.first_output_at > 0);
    CHECK_MSG(bytes_later > bytes_probe + 20000, "output %lld bytes, %lld at probe", (long long)bytes_later,
              (long long)bytes_probe);
    CHECK(!pl_job_state_terminal(st.state));
    /* the bytes so far are readable through the descriptor */
    int fd = pl_job_output_fd(j);
    CHECK(fd >= 0);
    if (fd >= 0) {
        uint8_t hdr[4];
        CHECK(pread(fd, hdr, 4, 0) == 4 && hdr[0] == 0x1a && hdr[1] == 0x45 && hdr[2] == 0xdf && hdr[3] == 0xa3);
        close(fd);
    }
    CHECK(feed_bytes(j, b.data + half, b.n - half, 4096, 30));
    struct infvsr_err err = { 0 };
    CHECK(pl_job_input_end(j, &err) == INFVSR_OK);
    st = wait_done(j, 30);
    CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "%s", st.error);
    CHECK_EQ_INT(st.frames_out, 150);
    char p[600];
    out_path(spool, "stream", ".out", p, sizeof(p));
    check_nearest(CLIP("long.mkv"), p, 2, 150);
    /* writes after the end are refused */
    CHECK_EQ_INT(pl_job_input_write(j, "x", 1, &err), INFVSR_ERR_INVALID_ARG);
done:
    free(b.data);
    if (j) {
        pl_job_delete(j);
        pl_job_unref(j);
    }
    pl_engine_stop(e);
}

/* max_frames: the output stops there; the rest of the upload is accepted and dropped
 * (the input lead is smaller than the file, so this needs the decoder-done path). */
static void test_max_frames(void) {
    char spool[512], p[600];
    fresh_spool("maxframes", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .lead = 65536 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job_spec s = pl_job_spec_default();
    s.max_frames = 10;
    s.codec = PL_CODEC_FFV1;
    struct pl_job * j = create_job(e, "mf", &s);
    if (j) {
        CHECK(feed_file(j, CLIP("long.mkv"), 4096));
        struct pl_job_status st = wait_done(j, 30);
        CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "%s", st.error);
        CHECK_EQ_INT(st.frames_out, 10);
        struct blob b = read_blob(CLIP("long.mkv"));
        CHECK_EQ_INT(pl_job_input_offset(j), (int64_t)b.n);
        free(b.data);
        out_path(spool, "mf", ".out", p, sizeof(p));
        struct probe pr = ffprobe(p);
        CHECK_EQ_INT(pr.frames, 10);
        CHECK_EQ_INT(pr.w, 256);
        pl_job_delete(j);
        pl_job_unref(j);
    }
    CHECK_EQ_INT(count_files(spool), 0);
    pl_engine_stop(e);
}

/* One slot: job A holds it (input not finished), job B is queued; B's upload stops at
 * input_lead_bytes (write returns 0); cancelling A frees the slot, B becomes active, its
 * decoder consumes, PL_EV_INPUT_SPACE fires and B completes. */
static void test_backpressure_and_cancel_frees_slot(void) {
    char spool[512];
    fresh_spool("backpressure", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .max_active = 1, .lead = 65536 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job_spec s = pl_job_spec_default();
    s.codec = PL_CODEC_FFV1;
    s.scale = 1;
    struct pl_job * a = create_job(e, "a", &s);
    struct pl_job * b = create_job(e, "b", &s);
    struct blob lb = read_blob(CLIP("long.mkv"));
    if (!a || !b || !lb.data) goto done;
    CHECK(feed_bytes(a, lb.data, 30000, 4096, 10)); /* A: part of a video, no end */
    struct pl_job_status st = wait_state(a, PL_JOB_RUNNING, 10);
    CHECK_EQ_INT(st.state, PL_JOB_RUNNING);
    struct infvsr_err err = { 0 };
    int64_t total = 0, r;
    while ((r = pl_job_input_write(b, lb.data + total, 8192, &err)) > 0) total += r;
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(total, 65536);
    CHECK_EQ_INT(pl_job_input_offset(b), 65536);
    pl_job_get_status(b, &st);
    CHECK_EQ_INT(st.state, PL_JOB_QUEUED);
    struct pl_engine_health h;
    pl_engine_health(e, &h);
    CHECK_EQ_INT(h.jobs_active, 1);
    CHECK_EQ_INT(h.jobs_queued, 1);
    CHECK_EQ_INT(h.jobs_awaiting_input, 0);
    sleep_ms(50);
    CHECK_EQ_INT(pl_job_input_write(b, lb.data + total, 8192, &err), 0); /* still stalled */
    int space0 = atomic_load(&c.input_space);
    pl_job_cancel(a);
    st = wait_done(a, 10);
    CHECK_EQ_INT(st.state, PL_JOB_CANCELLED);
    CHECK_EQ_INT(st.error_code, PL_ERROR_CANCELLED);
    st = wait_state(b, PL_JOB_RUNNING, 10);
    CHECK_EQ_INT(st.state, PL_JOB_RUNNING);
    double t0 = now_s();
    while (atomic_load(&c.input_space) == space0 && now_s() - t0 < 10 * WAIT_SCALE) sleep_ms(2);
    CHECK_MSG(atomic_load(&c.input_space) > space0, "no PL_EV_INPUT_SPACE after the decoder started");
    CHECK(feed_bytes(b, lb.data + total, lb.n - (size_t)total, 8192, 30));
    CHECK(pl_job_input_end(b, &err) == INFVSR_OK);
    st = wait_done(b, 30);
    CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "%s", st.error);
    CHECK_EQ_INT(st.frames_out, 150);
    /* the cancelled job left no partial output behind; its input stays until delete */
    char p[600];
    out_path(spool, "a", ".out.part", p, sizeof(p));
    CHECK(!exists(p));
    out_path(spool, "a", ".out", p, sizeof(p));
    CHECK(!exists(p));
    /* writes to a cancelled job */
    CHECK_EQ_INT(pl_job_input_write(a, "x", 1, &err), INFVSR_ERR_CANCELLED);
done:
    free(lb.data);
    if (a) pl_job_delete(a), pl_job_unref(a);
    if (b) pl_job_delete(b), pl_job_unref(b);
    CHECK_EQ_INT(count_files(spool), 0);
    pl_engine_stop(e);
}

/* workers*max_active + max_queued jobs WITH input, then BUSY; jobs still waiting for their
 * first byte do not count (the daemon bounds them per tenant); a terminal job frees room. */
static void test_admission_busy(void) {
    char spool[512];
    fresh_spool("admission", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .max_active = 1, .max_queued = 2 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job * j[4];
    for (int i = 0; i < 4; i++) { /* four empty jobs: one more than the limit, all admitted */
        char id[16];
        snprintf(id, sizeof(id), "j%d", i);
        j[i] = create_job(e, id, NULL);
    }
    struct pl_engine_health h;
    pl_engine_health(e, &h);
    CHECK_EQ_INT(h.jobs_awaiting_input, 4);
    CHECK_EQ_INT(h.jobs_queued, 0);
    struct infvsr_err err = { 0 };
    for (int i = 0; i < 3; i++) /* input without an end: the decoder waits for more */
        if (j[i]) CHECK_EQ_INT(pl_job_input_write(j[i], "0123456789abcdef", 16, &err), 16);
    struct pl_job_spec s = pl_job_spec_default();
    snprintf(s.id, sizeof(s.id), "j4");
    struct pl_job * x = NULL;
    CHECK_EQ_INT(pl_job_create(e, &s, &x, &err), INFVSR_ERR_BUSY);
    CHECK(x == NULL);
    CHECK_STR_CONTAINS(err.msg, "limit 3");
    pl_engine_health(e, &h);
    CHECK_EQ_INT(h.jobs_active + h.jobs_queued, 3);
    CHECK_EQ_INT(h.jobs_awaiting_input, 1);
    /* the empty job still gets in when its input starts: it was admitted at creation */
    if (j[3]) CHECK_EQ_INT(pl_job_input_write(j[3], "0123456789abcdef", 16, &err), 16);
    pl_engine_health(e, &h);
    CHECK_EQ_INT(h.jobs_active + h.jobs_queued, 4);
    CHECK_EQ_INT(h.jobs_awaiting_input, 0);
    pl_job_cancel(j[3]);
    pl_job_cancel(j[2]);
    /* the same id twice: the spool file exists */
    snprintf(s.id, sizeof(s.id), "j0");
    pl_job_cancel(j[2]);
    CHECK_EQ_INT(pl_job_create(e, &s, &x, &err), INFVSR_ERR_INVALID_ARG);
    snprintf(s.id, sizeof(s.id), "j4");
    CHECK_EQ_INT(pl_job_create(e, &s, &x, &err), INFVSR_OK);
    /* bad specs */
    struct pl_job_spec bad = pl_job_spec_default();
    snprintf(bad.id, sizeof(bad.id), "bad");
    bad.codec = PL_CODEC_FFV1;
    bad.container = PL_CONTAINER_MP4;
    CHECK_EQ_INT(pl_job_spec_check(&bad, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "ffv1");
    bad = pl_job_spec_default();
    snprintf(bad.id, sizeof(bad.id), "../etc");
    CHECK_EQ_INT(pl_job_spec_check(&bad, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "id");
    for (int i = 0; i < 4; i++)
        if (j[i]) pl_job_delete(j[i]), pl_job_unref(j[i]);
    if (x) pl_job_delete(x), pl_job_unref(x);
    CHECK_EQ_INT(count_files(spool), 0);
    pl_engine_stop(e);
}

static struct pl_job_status run_bad(struct pl_engine * e, const char * id, const char * path, const char * fmt) {
    struct pl_job_spec s = pl_job_spec_default();
    if (fmt) snprintf(s.input_format, sizeof(s.input_format), "%s", fmt);
    struct pl_job * j = create_job(e, id, &s);
    struct pl_job_status st = { 0 };
    if (!j) return st;
    feed_file(j, path, 4096);
    st = wait_done(j, 30);
    if (getenv("PL_TEST_VERBOSE")) fprintf(stderr, "  %s: %s: %s\n", id, pl_error_code_name(st.error_code), st.error);
    pl_job_delete(j);
    pl_job_unref(j);
    return st;
}

/* Bad inputs fail as unprocessable_video with FFmpeg's reason, and leave nothing behind. */
static void test_bad_inputs(void) {
    char spool[512];
    fresh_spool("bad", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .max_active = 2 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job_status st = run_bad(e, "garbage", CLIP("garbage.bin"), NULL);
    CHECK_EQ_INT(st.state, PL_JOB_FAILED);
    CHECK_EQ_INT(st.error_code, PL_ERROR_UNPROCESSABLE_VIDEO);
    CHECK_STR_CONTAINS(st.error, "not a recognised media format");
    st = run_bad(e, "big", CLIP("big.mkv"), NULL);
    CHECK_EQ_INT(st.state, PL_JOB_FAILED);
    CHECK_EQ_INT(st.error_code, PL_ERROR_UNPROCESSABLE_VIDEO);
    CHECK_STR_CONTAINS(st.error, "160x120");
    CHECK_STR_CONTAINS(st.error, "6144 pixels");
    st = run_bad(e, "moov", CLIP("moov_end.mp4"), NULL);
    CHECK_EQ_INT(st.state, PL_JOB_FAILED);
    CHECK_EQ_INT(st.error_code, PL_ERROR_UNPROCESSABLE_VIDEO);
    CHECK_STR_CONTAINS(st.error, "faststart");
    st = run_bad(e, "hls", CLIP("list.m3u8"), NULL);
    CHECK_EQ_INT(st.state, PL_JOB_FAILED);
    CHECK_EQ_INT(st.error_code, PL_ERROR_UNPROCESSABLE_VIDEO);
    /* a forced demuxer outside the list is refused at creation */
    struct pl_job_spec hs = pl_job_spec_default();
    snprintf(hs.id, sizeof(hs.id), "hlsforced");
    snprintf(hs.input_format, sizeof(hs.input_format), "hls");
    struct infvsr_err herr = { 0 };
    CHECK_EQ_INT(pl_job_spec_check(&hs, &herr), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(herr.msg, "input_format");
    snprintf(hs.input_format, sizeof(hs.input_format), "nosuchformat");
    CHECK_EQ_INT(pl_job_spec_check(&hs, &herr), INFVSR_ERR_INVALID_ARG);
    snprintf(hs.input_format, sizeof(hs.input_format), "mp4");
    CHECK_EQ_INT(pl_job_spec_check(&hs, &herr), INFVSR_OK);
    st = run_bad(e, "wrongfmt", CLIP("a.ts"), "matroska");
    CHECK_EQ_INT(st.state, PL_JOB_FAILED);
    CHECK_EQ_INT(st.error_code, PL_ERROR_UNPROCESSABLE_VIDEO);
    /* truncated: half of a Matroska file */
    struct blob b = read_blob(CLIP("a.y4m"));
    struct pl_job * j = create_job(e, "trunc", NULL);
    if (j && b.data) {
        struct infvsr_err err = { 0 };
        CHECK(feed_bytes(j, b.data, 100, 100, 5));
        CHECK(pl_job_input_end(j, &err) == INFVSR_OK);
        st = wait_done(j, 30);
        CHECK_EQ_INT(st.state, PL_JOB_FAILED);
        CHECK_EQ_INT(st.error_code, PL_ERROR_UNPROCESSABLE_VIDEO);
        pl_job_delete(j);
        pl_job_unref(j);
    }
    free(b.data);
    /* empty upload */
    j = create_job(e, "empty", NULL);
    if (j) {
        struct infvsr_err err = { 0 };
        CHECK(pl_job_input_end(j, &err) == INFVSR_OK);
        pl_job_get_status(j, &st);
        CHECK_EQ_INT(st.state, PL_JOB_FAILED);
        CHECK_STR_CONTAINS(st.error, "empty");
        pl_job_delete(j);
        pl_job_unref(j);
    }
    /* the forced format works for a matching input */
    struct pl_job_spec s = pl_job_spec_default();
    snprintf(s.input_format, sizeof(s.input_format), "mpegts");
    s.codec = PL_CODEC_FFV1;
    j = create_job(e, "forced", &s);
    if (j) {
        feed_file(j, CLIP("a.ts"), 4096);
        st = wait_done(j, 30);
        CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "%s", st.error);
        pl_job_delete(j);
        pl_job_unref(j);
    }
    CHECK_EQ_INT(count_files(spool), 0);
    pl_engine_stop(e);
}

/* max_input_bytes: a piece that would cross it is refused whole. */
static void test_max_input(void) {
    char spool[512];
    fresh_spool("maxin", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .max_input = 10000 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job * j = create_job(e, "m", NULL);
    if (j) {
        static uint8_t buf[6000];
        struct infvsr_err err = { 0 };
        CHECK_EQ_INT(pl_job_input_write(j, buf, 6000, &err), 6000);
        CHECK_EQ_INT(pl_job_input_write(j, buf, 6000, &err), INFVSR_ERR_BUSY);
        CHECK_STR_CONTAINS(err.msg, "max_upload_bytes");
        CHECK_EQ_INT(pl_job_input_offset(j), 6000);
        pl_job_delete(j);
        pl_job_unref(j);
    }
    pl_engine_stop(e);
}

/* 4 jobs at once on the null model (2 slots): all complete, in any order. */
static void test_four_concurrent(void) {
    char spool[512], p[600];
    fresh_spool("four", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .max_active = 2, .max_queued = 2 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job * j[4];
    struct blob b = read_blob(CLIP("a.ts"));
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof(id), "c%d", i);
        j[i] = create_job(e, id, NULL);
    }
    /* interleave the uploads */
    size_t off = 0;
    while (off < b.n) {
        size_t len = b.n - off < 2048 ? b.n - off : 2048;
        for (int i = 0; i < 4; i++)
            if (j[i]) CHECK(feed_bytes(j[i], b.data + off, len, len, 30));
        off += len;
    }
    struct infvsr_err err = { 0 };
    for (int i = 0; i < 4; i++)
        if (j[i]) CHECK(pl_job_input_end(j[i], &err) == INFVSR_OK);
    for (int i = 0; i < 4; i++) {
        if (!j[i]) continue;
        struct pl_job_status st = wait_done(j[i], 60);
        CHECK_MSG(st.state == PL_JOB_SUCCEEDED, "job %d: %s", i, st.error);
        CHECK_EQ_INT(st.frames_out, 36);
        char id[16];
        snprintf(id, sizeof(id), "c%d", i);
        out_path(spool, id, ".out", p, sizeof(p));
        CHECK_EQ_INT(ffprobe(p).frames, 36);
    }
    struct pl_metrics m;
    pl_engine_metrics(e, &m);
    CHECK_EQ_INT(m.jobs_succeeded, 4);
    CHECK_EQ_INT(m.frames_out, 4 * 36);
    for (int i = 0; i < 4; i++)
        if (j[i]) pl_job_delete(j[i]), pl_job_unref(j[i]);
    free(b.data);
    CHECK_EQ_INT(count_files(spool), 0);
    pl_engine_stop(e);
}

/* A model directory without the files: FAILED health, no admission. Stop with running
 * jobs: they end cancelled, and the loop's references stay usable after the stop. */
static void test_engine_failed_and_stop(void) {
    char spool[512];
    fresh_spool("failed", spool, sizeof(spool));
    struct counters c = { 0 };
    struct pl_engine * e = start_engine(spool, &(struct eng_cfg){ .model = spool }, &c);
    if (!e) return;
    CHECK_EQ_INT(wait_engine(e, 10), PL_ENGINE_FAILED);
    struct pl_engine_health h;
    pl_engine_health(e, &h);
    CHECK(!h.workers[0].healthy);
    CHECK(h.error[0] != 0);
    struct pl_job_spec s = pl_job_spec_default();
    snprintf(s.id, sizeof(s.id), "x");
    struct pl_job * x = NULL;
    struct infvsr_err err = { 0 };
    CHECK_EQ_INT(pl_job_create(e, &s, &x, &err), INFVSR_ERR_BUSY);
    CHECK(wait_count(&c.engine, 1, 60));
    pl_engine_stop(e);

    e = start_engine(spool, &(struct eng_cfg){ 0 }, &c);
    if (!e) return;
    wait_engine(e, 10);
    struct pl_job * r = create_job(e, "run", NULL);     /* running, input unfinished */
    struct pl_job * q = create_job(e, "idle", NULL);    /* created, no input */
    struct blob b = read_blob(CLIP("long.mkv"));
    if (r && b.data) CHECK(feed_bytes(r, b.data, 40000, 4096, 10));
    wait_state(r, PL_JOB_RUNNING, 10);
    pl_engine_stop(e);
    struct pl_job_status st;
    pl_job_get_status(r, &st);
    CHECK_EQ_INT(st.state, PL_JOB_CANCELLED);
    CHECK_EQ_INT(pl_job_input_write(r, "x", 1, &err), INFVSR_ERR_CANCELLED);
    pl_job_get_status(q, &st);
    CHECK_EQ_INT(st.state, PL_JOB_CANCELLED);
    CHECK_EQ_INT(pl_job_input_write(q, "x", 1, &err), INFVSR_ERR_CANCELLED);
    pl_job_cancel(q);
    pl_job_delete(r);
    pl_job_unref(r);
    pl_job_delete(q);
    pl_job_unref(q);
    free(b.data);
    CHECK_EQ_INT(count_files(spool), 0);
}

static const struct test_case tests[] = {
    TEST(test_null_exact_ffv1),
    TEST(test_null_containers),
    TEST(test_streaming_output),
    TEST(test_max_frames),
    TEST(test_backpressure_and_cancel_frees_slot),
    TEST(test_admission_busy),
    TEST(test_bad_inputs),
    TEST(test_max_input),
    TEST(test_four_concurrent),
    TEST(test_engine_failed_and_stop),
    TEST(test_tiny_model),
    { 0 },
};

int main(int argc, char ** argv) {
    /* x264 banners; failures are checked through the API (PL_TEST_AVLOG=1 shows them) */
    av_log_set_level(getenv("PL_TEST_AVLOG") ? AV_LOG_ERROR : AV_LOG_FATAL);
    return test_main(argc, argv, tests);
}
