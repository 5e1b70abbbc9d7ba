/* Media reader: demux + decode the best video stream, convert to RGB24 (see media.h).
 *
 * Colour conversion matches what `ffmpeg -i IN -pix_fmt rgb24` does in FFmpeg 5.1: its
 * auto-inserted scale filter uses swscale with SWS_BICUBIC and, because in_color_matrix
 * defaults to "auto", the YUV->RGB matrix from the frame's colorspace tag
 * (sws_getCoefficients: BT.709, FCC, BT.601, SMPTE-240M, BT.2020; untagged streams and
 * everything else get BT.601) and the range from its color_range tag (full only when
 * tagged JPEG/full). The test compares our RGB bytes with the ffmpeg CLI's. */
#include "media_internal.h"

#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define IO_BUFFER_SIZE (64 * 1024)

struct infvsr_media_reader {
    AVFormatContext * fmt;
    AVIOContext *     pb;          /* ours: opened from the path, or wrapping the callbacks */
    bool              pb_is_file;
    struct infvsr_media_io io;
    AVCodecContext *  dec;
    int               video_index;
    int *             copy_map;    /* stream index -> copy index or -1 */
    int               n_copy_map;  /* entries in copy_map: the stream count when the input was opened */
    int *             copy_streams;/* copy index -> stream index */
    struct SwsContext * sws;
    int               sws_fmt;
    enum AVColorSpace sws_colorspace;
    enum AVColorRange sws_range;
    /* swscale's SIMD paths write whole vectors, i.e. past the end of a row whose byte width
     * is not a multiple of the vector size (seen with a 24x16 frame). It converts into this
     * buffer, whose rows are padded to 64 bytes, and rows are then copied to the caller's
     * tightly packed frame, so a caller's exact-size buffer is never overrun. */
    uint8_t * rgb_padded;
    int       rgb_padded_stride;
    AVPacket *        pkt;
    AVFrame *         frame;
    bool              flushing;     /* NULL packet sent to the decoder */
    bool              eof;
    int64_t           frames_read;
    int64_t           last_pts;     /* of the last frame handed out, AV_NOPTS_VALUE if none */
    double            tagged_end_s; /* video end time from a Matroska DURATION tag, or -1 */
    struct infvsr_media_limits limits;
    struct infvsr_media_info   info;
    infvsr_media_packet_sink   sink;
    void *            sink_user;
    int               nested_opens; /* refused nested opens, for the error message */
    bool              read_failed;  /* the read callback failed: errors are ours, not the input's */
    const AVInputFormat * opened_as; /* the probed or forced demuxer, for open errors */
};

struct infvsr_media_limits infvsr_media_limits_default(void) {
    struct infvsr_media_limits l = {
        .max_pixels = 8192LL * 4320LL, .max_dimension = 8192, .probesize = 5LL << 20,
        .analyzeduration_us = 5LL * 1000 * 1000, .max_frames = 0, .format_whitelist = NULL,
        .threads = 1, .max_streams = 16, .interrupt = NULL, .interrupt_user = NULL,
    };
    return l;
}

enum infvsr_status infvsr_media_av_err(struct infvsr_err * err, enum infvsr_status st, int averr,
                                       const char * what) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = { 0 };
    av_strerror(averr, buf, sizeof(buf));
    return infvsr_err_set(err, st, "%s: %s", what, buf);
}

/* Demuxers such as hls, concat or dash open further URLs named inside the input; the
 * reader serves exactly one input, so every nested open is refused. */
static int refuse_nested_open(struct AVFormatContext * s, AVIOContext ** pb, const char * url, int flags,
                              AVDictionary ** options) {
    struct infvsr_media_reader * r = s->opaque;
    if (r) r->nested_opens++;
    return AVERROR(EPERM);
}

static bool interrupted(const struct infvsr_media_reader * r) {
    return r->limits.interrupt && r->limits.interrupt(r->limits.interrupt_user);
}

static int io_read(void * opaque, uint8_t * buf, int size) {
    struct infvsr_media_reader * r = opaque;
    if (interrupted(r)) return AVERROR_EXIT; /* FFmpeg polls the callback only for its own protocols */
    int n = r->io.read(r->io.opaque, buf, size);
    if (n == 0) return AVERROR_EOF;
    if (n < 0) r->read_failed = true;
    return n < 0 ? AVERROR(EIO) : n;
}

static int64_t io_seek(void * opaque, int64_t offset, int whence) {
    struct infvsr_media_reader * r = opaque;
    int64_t pos = r->io.seek(r->io.opaque, offset, whence);
    return pos < 0 ? AVERROR(EIO) : pos;
}

void infvsr_media_reader_close(struct infvsr_media_reader * r) {
    if (!r) return;
    avcodec_free_context(&r->dec);
    if (r->fmt) avformat_close_input(&r->fmt); /* does not close a custom pb */
    if (r->pb) {
        if (r->pb_is_file) {
            avio_closep(&r->pb);
        } else {
            av_freep(&r->pb->buffer);
            avio_context_free(&r->pb);
        }
    }
    sws_freeContext(r->sws);
    av_freep(&r->rgb_padded);
    av_packet_free(&r->pkt);
    av_frame_free(&r->frame);
    av_free(r->copy_map);
    av_free(r->copy_streams);
    av_free(r);
}

/* Matroska muxers (ffmpeg, mkvmerge) store each stream's end time as a "DURATION" tag,
 * "HH:MM:SS.nnnnnnnnn"; -1 when absent or malformed. */
static double tagged_end_time(const AVStream * st) {
    const AVDictionaryEntry * e = av_dict_get(st->metadata, "DURATION", NULL, 0);
    unsigned hh, mm;
    double ss;
    if (!e || sscanf(e->value, "%u:%u:%lf", &hh, &mm, &ss) != 3 || mm > 59 || !(ss >= 0 && ss < 60)) return -1;
    return hh * 3600.0 + mm * 60.0 + ss;
}

/* MODEL-SPEC §2.1 frame rate rules, see media.h. */
static void fill_rate(struct infvsr_media_reader * r, const AVStream * st) {
    AVRational q = st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0 ? st->r_frame_rate : st->avg_frame_rate;
    double fps = 0;
    if (q.num > 0 && q.den > 0) {
        fps = av_q2d(q);
        r->info.fps_num = q.num;
        r->info.fps_den = q.den;
    } else if (r->info.nframes > 0 && r->info.duration_s > 0) {
        fps = (double)r->info.nframes / r->info.duration_s;
    }
    if (!isfinite(fps) || fps <= 0) {
        fps = 15.0;
        r->info.fps_num = 15;
        r->info.fps_den = 1;
    }
    r->info.fps = fps;
}

/* Errors of the input's bytes are named by what FFmpeg's code means for an input
 * (media_errors.c); two causes FFmpeg reports misleadingly are recognised first: a refused
 * nested open (a playlist), and more streams than the limit (reported as ENOMEM). */
static enum infvsr_status read_error(const struct infvsr_media_reader * r, int averr, const char * what,
                                     struct infvsr_err * err) {
    if (r->nested_opens)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the input refers to other files or URLs (a playlist or a "
                              "list of files), which is not allowed", what);
    if (averr == AVERROR(ENOMEM) && r->fmt && r->fmt->nb_streams >= (unsigned)r->limits.max_streams)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the input has more than %d streams (limit)", what,
                              r->limits.max_streams);
    return infvsr_media_input_err(err, averr, r->read_failed, what);
}

/* The container format, probed as avformat_open_input would (same buffer, same probe size;
 * the bytes stay in the I/O buffer for the open), so that a format outside the allow-list
 * is named: FFmpeg itself only answers EINVAL for it. */
static enum infvsr_status probe_format(struct infvsr_media_reader * r, const AVInputFormat ** out, const char * what,
                                       struct infvsr_err * err) {
    int ret = av_probe_input_buffer2(r->pb, out, NULL, r->fmt, 0, r->fmt->format_probesize);
    if (ret < 0 && ret != AVERROR_INVALIDDATA && ret != AVERROR_EOF) {
        char m[300];
        snprintf(m, sizeof(m), "%s: cannot read the start of the input", what);
        return read_error(r, ret, m, err);
    }
    if (ret < 0 || !*out)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: not a recognised media format%s", what,
                              ret == AVERROR_EOF ? " (the input is empty or too short)" : "");
    const char * list = r->limits.format_whitelist;
    if (list && av_match_list((*out)->name, list, ',') <= 0)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the input is %s (%s), not one of the accepted video "
                              "containers (%s)", what, (*out)->long_name ? (*out)->long_name : (*out)->name,
                              (*out)->name, list);
    return INFVSR_OK;
}

/* avformat_open_input failed (the context is gone, so its stream count is unknown). */
static enum infvsr_status open_error(const struct infvsr_media_reader * r, int averr, const char * what,
                                     struct infvsr_err * err) {
    char m[300];
    snprintf(m, sizeof(m), "%s: cannot open the container", what);
    if (r->nested_opens || r->read_failed || averr == AVERROR_EXIT) return read_error(r, averr, m, err);
    /* Playlists and file lists fail in many ways once their first inner open is refused
     * (ENOMEM for hls, EINVAL for concat): the demuxer names the cause. */
    if (r->opened_as && av_match_list(r->opened_as->name, "hls,dash,concat", ',') > 0)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the input is a playlist or a list of other files (%s), "
                              "which is not allowed", m, r->opened_as->name);
    if (averr == AVERROR_INVALIDDATA && r->opened_as && strncmp(r->opened_as->name, "mov,", 4) == 0)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the MP4/MOV index (moov) is missing or corrupt: the file is "
                              "truncated, unfinished or damaged", m);
    if (averr == AVERROR(ENOMEM)) /* also FFmpeg's answer to a stream beyond max_streams */
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the input declares more than %d streams or a size too "
                              "large to accept (corrupt file?)", m, r->limits.max_streams);
    return infvsr_media_input_err(err, averr, false, m);
}

/* A streamed MP4/MOV whose index (moov) follows the media data: to find the index the
 * demuxer has read past the first sample, which is no longer in the I/O buffer, and a
 * stream cannot seek back. Checked right after the header, before any packet is read. */
static bool sample_data_behind(const struct infvsr_media_reader * r) {
    if ((r->pb->seekable & AVIO_SEEKABLE_NORMAL) || !r->fmt->iformat || strncmp(r->fmt->iformat->name, "mov,", 4) != 0)
        return false;
    int64_t lowest = avio_tell(r->pb) - (int64_t)(r->pb->buf_ptr - r->pb->buffer); /* first byte still buffered */
    for (unsigned i = 0; i < r->fmt->nb_streams; i++) {
        const AVIndexEntry * ie = avformat_index_get_entry(r->fmt->streams[i], 0);
        if (ie && ie->pos < lowest) return true;
    }
    return false;
}

/* No decoder for the best video stream: name its codec, or say it was not recognised. */
static enum infvsr_status no_decoder(const struct infvsr_media_reader * r, const char * what, struct infvsr_err * err) {
    int vi = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    const AVCodecParameters * par = vi >= 0 ? r->fmt->streams[vi]->codecpar : NULL;
    if (!par || par->codec_id == AV_CODEC_ID_NONE) {
        char tag[AV_FOURCC_MAX_STRING_SIZE + 16] = "";
        if (par && par->codec_tag) {
            char fourcc[AV_FOURCC_MAX_STRING_SIZE];
            snprintf(tag, sizeof(tag), " (codec tag %s)", av_fourcc_make_string(fourcc, par->codec_tag));
        }
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the video codec is not recognised%s: a corrupt header or a "
                              "codec FFmpeg does not know", what, tag);
    }
    return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "%s: no decoder for the video codec %s in this build", what,
                          avcodec_get_name(par->codec_id));
}

static enum infvsr_status open_common(struct infvsr_media_reader * r, const char * what,
                                      struct infvsr_err * err) {
    const struct infvsr_media_limits * L = &r->limits;
    r->fmt = avformat_alloc_context();
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->fmt || !r->pkt || !r->frame) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "%s: out of memory", what);
    r->fmt->pb = r->pb;
    r->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    r->fmt->opaque = r;
    r->fmt->io_open = refuse_nested_open;
    r->fmt->max_streams = L->max_streams;
    r->fmt->interrupt_callback.callback = L->interrupt;
    r->fmt->interrupt_callback.opaque = L->interrupt_user;
    if (L->probesize > 0) r->fmt->probesize = L->probesize;
    if (L->analyzeduration_us > 0) r->fmt->max_analyze_duration = L->analyzeduration_us;
    AVDictionary * opts = NULL;
    if (L->format_whitelist) av_dict_set(&opts, "format_whitelist", L->format_whitelist, 0);
    /* Demuxers that open inner inputs themselves (concat, ...) bypass io_open but inherit
     * the protocol whitelist: a list naming no protocol denies every such open. */
    av_dict_set(&opts, "protocol_whitelist", "none", 0);
    const AVInputFormat * forced = NULL;
    if (L->input_format && L->input_format[0]) {
        forced = av_find_input_format(L->input_format);
        if (!forced) {
            av_dict_free(&opts);
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: unknown input format '%.40s'", what,
                                  L->input_format);
        }
    }
    if (!forced) {
        enum infvsr_status st = probe_format(r, &forced, what, err);
        if (st != INFVSR_OK) {
            av_dict_free(&opts);
            return st;
        }
    }
    r->opened_as = forced;
    int ret = avformat_open_input(&r->fmt, NULL, forced, &opts);
    av_dict_free(&opts);
    if (ret < 0) return open_error(r, ret, what, err); /* avformat_open_input freed the context */
    if (sample_data_behind(r))
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the MP4/MOV index (moov) comes after the media data, and an "
                              "upload is read as a stream that cannot seek back to it: remux it with ffmpeg "
                              "-movflags +faststart, or upload a fragmented MP4 or Matroska", what);
    ret = avformat_find_stream_info(r->fmt, NULL);
    if (ret < 0) {
        char m[300];
        snprintf(m, sizeof(m), "%s: cannot read the stream parameters", what);
        return read_error(r, ret, m, err);
    }
    const AVCodec * codec = NULL;
    r->video_index = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r->video_index == AVERROR_STREAM_NOT_FOUND)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: not a video: no video stream among %u stream(s)", what,
                              r->fmt->nb_streams);
    if (r->video_index < 0 || !codec) return no_decoder(r, what, err);
    AVStream * vs = r->fmt->streams[r->video_index];
    int w = vs->codecpar->width, h = vs->codecpar->height;
    if (w <= 0 || h <= 0)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: the video's picture size is unknown: the input is too short "
                              "or corrupt before its first picture", what);
    if (w > L->max_dimension || h > L->max_dimension || (int64_t)w * h > L->max_pixels)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "%s: video size %dx%d is outside the limits (1..%d per side, %lld pixels)", what, w,
                              h, L->max_dimension, (long long)L->max_pixels);

    r->copy_map = av_malloc_array(r->fmt->nb_streams, sizeof(int));
    r->copy_streams = av_malloc_array(r->fmt->nb_streams, sizeof(int));
    if (!r->copy_map || !r->copy_streams) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "%s: out of memory", what);
    r->n_copy_map = (int)r->fmt->nb_streams;
    for (unsigned i = 0; i < r->fmt->nb_streams; i++) {
        enum AVMediaType t = r->fmt->streams[i]->codecpar->codec_type;
        r->copy_map[i] = -1;
        if ((int)i != r->video_index && (t == AVMEDIA_TYPE_AUDIO || t == AVMEDIA_TYPE_SUBTITLE)) {
            r->copy_map[i] = r->info.n_copy_streams;
            r->copy_streams[r->info.n_copy_streams++] = (int)i;
        } else if ((int)i != r->video_index) {
            r->fmt->streams[i]->discard = AVDISCARD_ALL; /* data, attachments, other video */
        }
    }

    r->dec = avcodec_alloc_context3(codec);
    if (!r->dec) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "%s: out of memory", what);
    ret = avcodec_parameters_to_context(r->dec, vs->codecpar);
    if (ret < 0) return infvsr_media_input_err(err, ret, false, what);
    r->dec->thread_count = L->threads > 0 ? L->threads : 1;
    r->dec->max_pixels = L->max_pixels; /* also bounds in-band size changes the decoder sees */
    r->dec->pkt_timebase = vs->time_base;
    ret = avcodec_open2(r->dec, codec, NULL);
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_UNSUPPORTED, ret, "cannot open the video decoder");

    r->info.width = w;
    r->info.height = h;
    r->info.tb_num = vs->time_base.num;
    r->info.tb_den = vs->time_base.den;
    r->info.nframes = vs->nb_frames > 0 ? vs->nb_frames : -1;
    if (vs->duration != AV_NOPTS_VALUE && vs->duration > 0)
        r->info.duration_s = (double)vs->duration * av_q2d(vs->time_base);
    else if (r->fmt->duration != AV_NOPTS_VALUE && r->fmt->duration > 0)
        r->info.duration_s = (double)r->fmt->duration / AV_TIME_BASE;
    else
        r->info.duration_s = -1;
    fill_rate(r, vs);
    r->tagged_end_s = tagged_end_time(vs);
    r->last_pts = AV_NOPTS_VALUE;
    r->info.format_name = r->fmt->iformat->name;
    r->info.codec_name = codec->name;
    r->sws_fmt = -1;
    return INFVSR_OK;
}

static struct infvsr_media_reader * reader_alloc(const struct infvsr_media_limits * limits) {
    struct infvsr_media_reader * r = av_mallocz(sizeof(*r));
    if (!r) return NULL;
    r->limits = limits ? *limits : infvsr_media_limits_default();
    struct infvsr_media_limits d = infvsr_media_limits_default();
    if (r->limits.max_pixels <= 0) r->limits.max_pixels = d.max_pixels;
    if (r->limits.max_dimension <= 0) r->limits.max_dimension = d.max_dimension;
    if (r->limits.max_streams <= 0) r->limits.max_streams = d.max_streams;
    r->video_index = -1;
    return r;
}

enum infvsr_status infvsr_media_reader_open_file(const char * path, const struct infvsr_media_limits * limits,
                                                 struct infvsr_media_reader ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!path) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media reader: NULL path");
    struct infvsr_media_reader * r = reader_alloc(limits);
    if (!r) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media reader: out of memory");
    /* "file:" so that a name with a colon is never taken for another protocol. */
    char * url = av_asprintf("file:%s", path);
    AVDictionary * o = NULL;
    av_dict_set(&o, "protocol_whitelist", "file", 0);
    AVIOInterruptCB icb = { .callback = r->limits.interrupt, .opaque = r->limits.interrupt_user };
    int ret = url ? avio_open2(&r->pb, url, AVIO_FLAG_READ, &icb, &o) : AVERROR(ENOMEM);
    av_dict_free(&o);
    av_free(url);
    if (ret < 0) {
        infvsr_media_reader_close(r);
        if (ret == AVERROR_EXIT)
            return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "%.250s: reading was interrupted", path);
        char m[300];
        snprintf(m, sizeof(m), "cannot open %.250s", path);
        return infvsr_media_av_err(err, INFVSR_ERR_IO, ret, m);
    }
    r->pb_is_file = true;
    enum infvsr_status st = open_common(r, path, err);
    if (st != INFVSR_OK) {
        infvsr_media_reader_close(r);
        return st;
    }
    *out = r;
    return INFVSR_OK;
}

enum infvsr_status infvsr_media_reader_open_io(const struct infvsr_media_io * io,
                                               const struct infvsr_media_limits * limits,
                                               struct infvsr_media_reader ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!io || !io->read) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media reader: no read callback");
    struct infvsr_media_reader * r = reader_alloc(limits);
    uint8_t * buf = av_malloc(IO_BUFFER_SIZE);
    if (!r || !buf) {
        av_free(buf);
        infvsr_media_reader_close(r);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media reader: out of memory");
    }
    r->io = *io;
    r->pb = avio_alloc_context(buf, IO_BUFFER_SIZE, 0, r, io_read, NULL, io->seek ? io_seek : NULL);
    if (!r->pb) {
        av_free(buf);
        infvsr_media_reader_close(r);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media reader: out of memory");
    }
    r->pb->seekable = io->seek ? AVIO_SEEKABLE_NORMAL : 0;
    enum infvsr_status st = open_common(r, "uploaded input", err);
    if (st != INFVSR_OK) {
        infvsr_media_reader_close(r);
        return st;
    }
    *out = r;
    return INFVSR_OK;
}

const struct infvsr_media_info * infvsr_media_reader_info(const struct infvsr_media_reader * r) { return &r->info; }

void infvsr_media_reader_set_packet_sink(struct infvsr_media_reader * r, infvsr_media_packet_sink sink, void * user) {
    r->sink = sink;
    r->sink_user = user;
}

int64_t infvsr_media_reader_frames_read(const struct infvsr_media_reader * r) { return r->frames_read; }

const AVCodecParameters * infvsr_media_reader_copy_stream(const struct infvsr_media_reader * r, int i,
                                                          AVRational * time_base) {
    if (i < 0 || i >= r->info.n_copy_streams) return NULL;
    const AVStream * st = r->fmt->streams[r->copy_streams[i]];
    if (time_base) *time_base = st->time_base;
    return st->codecpar;
}

/* Same matrix rule as FFmpeg 5.1 vf_scale parse_yuv_type() with in_color_matrix=auto. */
static const int * yuv_coefficients(enum AVColorSpace cs) {
    if (cs < 1 || cs > 10 || cs == 8) cs = AVCOL_SPC_BT470BG;
    return sws_getCoefficients(cs);
}

static enum infvsr_status convert_frame(struct infvsr_media_reader * r, const AVFrame * f, uint8_t * rgb,
                                        struct infvsr_err * err) {
    if (f->width != r->info.width || f->height != r->info.height)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "video resolution changes at frame %lld: %dx%d -> %dx%d (must stay constant)",
                              (long long)r->frames_read, r->info.width, r->info.height, f->width, f->height);
    if (f->format != r->sws_fmt || f->colorspace != r->sws_colorspace || f->color_range != r->sws_range) {
        r->sws = sws_getCachedContext(r->sws, f->width, f->height, f->format, f->width, f->height,
                                      AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
        if (!r->sws)
            return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "cannot convert pixel format %s to rgb24",
                                  av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
        const int * coef = yuv_coefficients(f->colorspace);
        int in_full = f->color_range == AVCOL_RANGE_JPEG;
        sws_setColorspaceDetails(r->sws, coef, in_full, sws_getCoefficients(SWS_CS_DEFAULT), 0, 0, 1 << 16,
                                 1 << 16);
        r->sws_fmt = f->format;
        r->sws_colorspace = f->colorspace;
        r->sws_range = f->color_range;
    }
    size_t row = (size_t)3 * (size_t)f->width;
    if (!r->rgb_padded) {
        r->rgb_padded_stride = (int)FFALIGN(row, 64);
        /* one spare row: the last row's vector stores may also reach past its padding */
        r->rgb_padded = av_malloc((size_t)r->rgb_padded_stride * ((size_t)f->height + 1));
        if (!r->rgb_padded) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory for the RGB frame");
    }
    uint8_t * dst[4] = { r->rgb_padded, NULL, NULL, NULL };
    int dst_stride[4] = { r->rgb_padded_stride, 0, 0, 0 };
    int h = sws_scale(r->sws, (const uint8_t * const *)f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (h != f->height) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "colour conversion failed at frame %lld",
                                              (long long)r->frames_read);
    for (int y = 0; y < f->height; y++)
        memcpy(rgb + (size_t)y * row, r->rgb_padded + (size_t)y * (size_t)r->rgb_padded_stride, row);
    return INFVSR_OK;
}

static enum infvsr_status end_of_stream(struct infvsr_media_reader * r, struct infvsr_err * err) {
    if (r->frames_read == 0)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "the video stream has no decodable frame");
    if (r->info.nframes > 0 && r->frames_read < r->info.nframes)
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "truncated video: decoded %lld of the %lld frames the file declares",
                              (long long)r->frames_read, (long long)r->info.nframes);
    /* Containers without a frame count: compare with the tagged end time, allowing two
     * frames and 50 ms of slack for rounding. */
    if (r->info.nframes <= 0 && r->tagged_end_s > 0 && r->last_pts != AV_NOPTS_VALUE) {
        double end = (double)r->last_pts * r->info.tb_num / r->info.tb_den + 1.0 / r->info.fps;
        if (r->tagged_end_s - end > 2.0 / r->info.fps + 0.05)
            return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                                  "truncated video: frames end at %.3f s, the file declares %.3f s",
                                  end, r->tagged_end_s);
    }
    return INFVSR_OK;
}

int infvsr_media_reader_next(struct infvsr_media_reader * r, uint8_t * rgb, int64_t * pts, struct infvsr_err * err) {
    if (pts) *pts = INFVSR_MEDIA_NOPTS;
    if (r->eof) return INFVSR_MEDIA_EOF;
    for (;;) {
        if (interrupted(r))
            return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "reading was interrupted after %lld frames",
                                  (long long)r->frames_read);
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret >= 0) {
            if (r->limits.max_frames > 0 && r->frames_read >= r->limits.max_frames) {
                av_frame_unref(r->frame);
                return infvsr_err_set(err, INFVSR_ERR_FORMAT, "the video has more than %lld frames (limit)",
                                      (long long)r->limits.max_frames);
            }
            enum infvsr_status st = convert_frame(r, r->frame, rgb, err);
            int64_t ts = r->frame->best_effort_timestamp;
            av_frame_unref(r->frame);
            if (st != INFVSR_OK) return st;
            if (pts) *pts = ts == AV_NOPTS_VALUE ? INFVSR_MEDIA_NOPTS : ts;
            if (ts != AV_NOPTS_VALUE) r->last_pts = ts;
            r->frames_read++;
            return INFVSR_OK;
        }
        if (ret == AVERROR_EOF) {
            enum infvsr_status st = end_of_stream(r, err);
            if (st != INFVSR_OK) return st;
            r->eof = true;
            return INFVSR_MEDIA_EOF;
        }
        if (ret != AVERROR(EAGAIN)) {
            char m[120];
            snprintf(m, sizeof(m), "video decoding failed after frame %lld", (long long)r->frames_read);
            return read_error(r, ret, m, err);
        }
        if (r->flushing) /* cannot happen: a draining decoder returns frames or EOF */
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "video decoder stalled while draining");
        ret = av_read_frame(r->fmt, r->pkt);
        if (ret == AVERROR_EOF || (ret < 0 && avio_feof(r->fmt->pb) && r->fmt->pb->error == 0)) {
            r->flushing = true;
            ret = avcodec_send_packet(r->dec, NULL);
            if (ret < 0) return read_error(r, ret, "video decoder flush failed", err);
            continue;
        }
        if (ret == AVERROR_EXIT)
            return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "reading was interrupted after %lld frames",
                                  (long long)r->frames_read);
        if (ret < 0) {
            char m[120];
            snprintf(m, sizeof(m), "reading the input failed after %lld frames", (long long)r->frames_read);
            return read_error(r, ret, m, err);
        }
        int si = r->pkt->stream_index;
        enum infvsr_status st = INFVSR_OK;
        if (si == r->video_index) {
            ret = avcodec_send_packet(r->dec, r->pkt);
            if (ret < 0 && ret != AVERROR(EAGAIN)) {
                char m[160];
                snprintf(m, sizeof(m), "corrupt video packet after frame %lld", (long long)r->frames_read);
                st = read_error(r, ret, m, err);
            }
        } else if (si >= 0 && si < r->n_copy_map && r->copy_map[si] >= 0 && r->sink) {
            /* A corrupt stream (MPEG-TS) can add streams while it is demuxed, after the output's
             * header was written: their packets (si >= n_copy_map) are not copied, they are dropped. */
            struct infvsr_media_packet p = { .pkt = r->pkt, .copy_index = r->copy_map[si],
                                             .time_base = r->fmt->streams[si]->time_base };
            st = r->sink(r->sink_user, &p, err);
        }
        av_packet_unref(r->pkt);
        if (st != INFVSR_OK) return st;
    }
}

struct infvsr_media_packet * infvsr_media_packet_clone(const struct infvsr_media_packet * p) {
    struct infvsr_media_packet * c = av_mallocz(sizeof(*c));
    if (!c) return NULL;
    *c = *p;
    c->pkt = av_packet_clone(p->pkt);
    if (!c->pkt) {
        av_free(c);
        return NULL;
    }
    return c;
}

void infvsr_media_packet_free(struct infvsr_media_packet * p) {
    if (!p) return;
    AVPacket * pkt = (AVPacket *)p->pkt; /* a clone owns its packet */
    av_packet_free(&pkt);
    av_free(p);
}

double infvsr_media_packet_seconds(const struct infvsr_media_packet * p) {
    int64_t t = p->pkt->dts != AV_NOPTS_VALUE ? p->pkt->dts : p->pkt->pts;
    return t == AV_NOPTS_VALUE ? NAN : (double)t * av_q2d(p->time_base);
}

int infvsr_media_packet_size(const struct infvsr_media_packet * p) { return p->pkt->size; }
