/* Throughput of the job pipeline without HTTP (not a test): N concurrent jobs of one input
 * file through an engine, then the same decode -> nearest x scale -> encode with the
 * ffmpeg CLI, for comparison.
 *
 *   bench_pipeline IN [--jobs N] [--scale S] [--codec h264|ffv1] [--model DIR|null]
 *                  [--slots K] [--spool DIR]
 * Prints one JSON line: frames, seconds, fps of the pipeline and of ffmpeg. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "pipeline.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_pipeline IN [--jobs N] [--scale S] [--codec h264|ffv1] [--model DIR|null] "
                        "[--slots K] [--spool DIR]\n");
        return 2;
    }
    const char * in = argv[1], * model = "null", * spool = "/tmp/bench_pipeline_spool", * codec = "h264";
    int jobs = 1, scale = 2, slots = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--jobs")) jobs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--scale")) scale = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--codec")) codec = argv[i + 1];
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--slots")) slots = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--spool")) spool = argv[i + 1];
        else {
            fprintf(stderr, "bench_pipeline: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (jobs < 1 || jobs > 64) return 2;
    av_log_set_level(AV_LOG_FATAL);
    mkdir(spool, 0755);
    FILE * f = fopen(in, "rb");
    if (!f) {
        perror(in);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char * data = malloc((size_t)n);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) return 1;
    fclose(f);

    struct pl_engine_opts o = pl_engine_opts_default();
    o.model = model;
    o.spool_dir = spool;
    o.max_active_per_worker = slots;
    o.max_queued_jobs = 64;
    o.max_frame_pixels = 4096LL * 4096;
    struct pl_engine * e;
    struct infvsr_err err = { 0 };
    if (pl_engine_start(&o, &e, &err) != INFVSR_OK) {
        fprintf(stderr, "engine: %s\n", err.msg);
        return 1;
    }
    struct pl_engine_health h;
    do {
        usleep(2000);
        pl_engine_health(e, &h);
    } while (h.state == PL_ENGINE_LOADING);
    if (h.state != PL_ENGINE_READY) {
        fprintf(stderr, "engine: %s\n", h.error);
        return 1;
    }
    struct pl_job ** j = calloc((size_t)jobs, sizeof(*j));
    double t0 = now_s();
    for (int i = 0; i < jobs; i++) {
        struct pl_job_spec s = pl_job_spec_default();
        snprintf(s.id, sizeof(s.id), "bench%d-%ld", i, (long)getpid());
        s.scale = scale;
        s.codec = strcmp(codec, "ffv1") == 0 ? PL_CODEC_FFV1 : PL_CODEC_H264;
        if (pl_job_create(e, &s, &j[i], &err) != INFVSR_OK) {
            fprintf(stderr, "create: %s\n", err.msg);
            return 1;
        }
    }
    /* upload all jobs in 64 KiB pieces, round robin, as fast as they are accepted */
    long * off = calloc((size_t)jobs, sizeof(long));
    for (int left = jobs; left > 0;) {
        left = 0;
        for (int i = 0; i < jobs; i++) {
            if (off[i] >= n) continue;
            long len = n - off[i] < 65536 ? n - off[i] : 65536;
            int64_t r = pl_job_input_write(j[i], data + off[i], (size_t)len, &err);
            if (r < 0) {
                fprintf(stderr, "write: %s\n", err.msg);
                return 1;
            }
            off[i] += r;
            if (off[i] >= n) pl_job_input_end(j[i], &err);
            else left++;
        }
        if (left) usleep(200);
    }
    int64_t frames = 0;
    double ttff = 0;
    for (int i = 0; i < jobs; i++) {
        struct pl_job_status st;
        for (;;) {
            pl_job_get_status(j[i], &st);
            if (pl_job_state_terminal(st.state)) break;
            usleep(2000);
        }
        if (st.state != PL_JOB_SUCCEEDED) {
            fprintf(stderr, "job %d: %s\n", i, st.error);
            return 1;
        }
        frames += st.frames_out;
        ttff += st.first_output_at - st.created_at;
    }
    double t_pl = now_s() - t0;
    for (int i = 0; i < jobs; i++) {
        pl_job_delete(j[i]);
        pl_job_unref(j[i]);
    }
    pl_engine_stop(e);

    /* the same work with the ffmpeg CLI: one process per job, all at once */
    char cmd[2048];
    const char * venc = strcmp(codec, "ffv1") == 0 ? "-c:v ffv1" : "-c:v libx264 -crf 15 -pix_fmt yuv420p";
    snprintf(cmd, sizeof(cmd),
             "for i in $(seq %d); do ffmpeg -nostdin -v error -i '%s' -vf scale=iw*%d:ih*%d:flags=neighbor %s "
             "-c:a copy -f matroska -y /dev/null & done; wait", jobs, in, scale, scale, venc);
    double t1 = now_s();
    int rc = system(cmd);
    double t_ff = now_s() - t1;
    printf("{\"jobs\":%d,\"frames\":%lld,\"pipeline_s\":%.3f,\"pipeline_fps\":%.1f,\"mean_ttff_s\":%.3f,"
           "\"ffmpeg_s\":%.3f,\"ffmpeg_fps\":%.1f,\"ratio\":%.2f,\"ffmpeg_rc\":%d}\n",
           jobs, (long long)frames, t_pl, frames / t_pl, ttff / jobs, t_ff, frames / t_ff, t_ff / t_pl, rc);
    free(data);
    free(off);
    free(j);
    return 0;
}
