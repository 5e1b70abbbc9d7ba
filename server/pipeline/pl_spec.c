/* Job specs, names of states/errors/containers (pipeline.h). */
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <stdio.h>
#include <string.h>

#include "pl_internal.h"

struct pl_job_spec pl_job_spec_default(void) {
    struct pl_job_spec s;
    memset(&s, 0, sizeof(s));
    s.scale = 4;
    s.container = PL_CONTAINER_MATROSKA;
    s.codec = PL_CODEC_H264;
    s.crf = 15;
    s.pix_fmt = PL_PIX_AUTO;
    s.copy_audio = true;
    s.scene_detect = true;
    s.scene_threshold = 27;
    s.reference_threshold = 27;
    return s;
}

static bool id_ok(const char * id) {
    size_t n = strnlen(id, sizeof(((struct pl_job_spec *)0)->id));
    if (n == 0 || n >= sizeof(((struct pl_job_spec *)0)->id)) return false;
    if (id[0] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_' || c == '.';
        if (!ok) return false;
    }
    return true;
}

enum infvsr_status pl_job_spec_check(const struct pl_job_spec * s, struct infvsr_err * err) {
    if (!s) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "job spec: NULL");
    if (!id_ok(s->id))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "id: must be 1..95 characters of [A-Za-z0-9._-], not starting with '.'");
    if (s->scale < 1 || s->scale > 8)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "scale: must be 1..8 (got %d)", s->scale);
    if ((int)s->container < PL_CONTAINER_MATROSKA || (int)s->container > PL_CONTAINER_Y4M)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "container: unknown value %d", (int)s->container);
    if ((int)s->codec < PL_CODEC_H264 || (int)s->codec > PL_CODEC_RAWVIDEO)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "codec: unknown value %d", (int)s->codec);
    if ((int)s->pix_fmt < PL_PIX_AUTO || (int)s->pix_fmt > PL_PIX_YUV444P)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "pix_fmt: unknown value %d", (int)s->pix_fmt);
    if (s->codec == PL_CODEC_FFV1 && s->container != PL_CONTAINER_MATROSKA)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "codec ffv1 needs container matroska (got %s)",
                              s->container == PL_CONTAINER_MPEGTS ? "mpegts"
                              : s->container == PL_CONTAINER_MP4  ? "mp4"
                                                                  : "y4m");
    if (s->codec == PL_CODEC_RAWVIDEO && s->container != PL_CONTAINER_Y4M)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "codec rawvideo needs container y4m");
    if (s->container == PL_CONTAINER_Y4M && s->codec != PL_CODEC_RAWVIDEO)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "container y4m holds codec rawvideo only (got %s)",
                              s->codec == PL_CODEC_H264 ? "h264" : "ffv1");
    if (s->codec == PL_CODEC_H264 && (s->crf < 0 || s->crf > 51))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "crf: must be 0..51 (got %d)", s->crf);
    if (s->max_frames < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "max_frames: must be >= 0 (got %lld)",
                              (long long)s->max_frames);
    if (s->scene_threshold < 0 || s->reference_threshold < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "scene_threshold, reference_threshold: must be > 0 (0 = default)");
    size_t fl = strnlen(s->input_format, sizeof(s->input_format));
    if (fl >= sizeof(s->input_format))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "input_format: longer than %zu characters",
                              sizeof(s->input_format) - 1);
    if (fl > 0) {
        const AVInputFormat * f = av_find_input_format(s->input_format);
        if (!f || av_match_list(f->name, PL_DEMUXERS, ',') <= 0)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "input_format: '%s' is not an accepted demuxer (%s)",
                                  s->input_format, PL_DEMUXERS);
    }
    return INFVSR_OK;
}

const char * pl_container_mime(enum pl_container c) {
    switch (c) {
        case PL_CONTAINER_MATROSKA: return "video/x-matroska";
        case PL_CONTAINER_MPEGTS:   return "video/mp2t";
        case PL_CONTAINER_MP4:      return "video/mp4";
        case PL_CONTAINER_Y4M:      return "video/x-yuv4mpeg";
    }
    return "application/octet-stream";
}

const char * pl_job_state_name(enum pl_job_state s) {
    switch (s) {
        case PL_JOB_CREATED:   return "created";
        case PL_JOB_QUEUED:    return "queued";
        case PL_JOB_RUNNING:   return "running";
        case PL_JOB_SUCCEEDED: return "succeeded";
        case PL_JOB_FAILED:    return "failed";
        case PL_JOB_CANCELLED: return "cancelled";
    }
    return "unknown";
}

const char * pl_error_code_name(enum pl_error_code c) {
    switch (c) {
        case PL_ERROR_NONE:                return "";
        case PL_ERROR_UNPROCESSABLE_VIDEO: return "unprocessable_video";
        case PL_ERROR_WORKER_FAILED:       return "worker_failed";
        case PL_ERROR_INTERNAL:            return "internal";
        case PL_ERROR_CANCELLED:           return "cancelled";
        case PL_ERROR_INTERRUPTED:         return "interrupted";
        case PL_ERROR_INSUFFICIENT_STORAGE: return "insufficient_storage";
        case PL_ERROR_DEVICE_FAULT:        return "device_fault";
    }
    return "internal";
}
