/* Media writer: encode RGB24 frames, copy audio/subtitle packets, publish atomically
 * (see media.h).
 *
 * RGB -> YUV is BT.601 limited range, untagged: what the ffmpeg CLI does for
 * `-f rawvideo -pix_fmt rgb24 -i - -pix_fmt yuv420p` (swscale bicubic; imageio's writer,
 * MODEL-SPEC §2.6), and what our reader inverts for an untagged stream. It is done by
 * rgb_to_yuv.c (luma and 4:4:4 byte-identical to swscale, 4:2:0 chroma within one code
 * value, ~7x faster). FFV1 stores bgr0 (swscale): an FFV1 file holds the RGB frames exactly. */
#include "media_internal.h"
#include "rgb_to_yuv.h"

#include <libavutil/intreadwrite.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct infvsr_media_writer {
    struct infvsr_media_writer_opts opts;
    char *            path;
    char *            tmp_path;
    AVFormatContext * oc;
    AVCodecContext *  enc;
    AVStream *        vst;
    struct SwsContext * sws;       /* FFV1's bgr0 only; YUV goes through rgb_to_yuv.c */
    void *              yuv_scratch; /* rgb_to_yuv's 4:2:0 row ring */
    uint8_t *           rgb_padded;  /* see convert_with_swscale */
    int                 rgb_padded_stride;
    AVFrame *         frame;
    AVPacket *        pkt;
    AVPacket *        cpkt;        /* copied packets */
    AVRational        in_tb;       /* of the pts passed to write() */
    AVRational        frame_dur;   /* 1/fps as a rational, for frames without pts */
    int *             copy_out;    /* copy index -> output stream index or -1 */
    int               n_copy_in, n_copied;
    /* Copied packets of a corrupt input (shuffled or bit-flipped MPEG-TS) can carry missing or
     * non-monotonic timestamps, which the muxer refuses with EINVAL. As the ffmpeg CLI does,
     * they are fixed up (dts = last dts + 1, pts >= dts) or, without any timestamp, dropped,
     * and counted; the job goes on. last_dts: per output stream, in its time base. */
    int64_t *         last_dts;
    int64_t           copied_fixed, copied_dropped;
    int64_t           frames_in, packets_out, last_pts;
    bool              header_written;
    /* Streaming mode: oc->pb is ours, wrapping io (no file, no rename). */
    bool              custom_io;
    struct infvsr_media_output_io io;
};

struct infvsr_media_writer_opts infvsr_media_writer_opts_for(const struct infvsr_media_info * in,
                                                             enum infvsr_media_codec codec) {
    struct infvsr_media_writer_opts o = { 0 };
    o.codec = codec;
    o.crf = 15;
    o.threads = 1;
    if (in) {
        o.width = in->width;
        o.height = in->height;
        o.fps = in->fps;
        o.fps_num = in->fps_num;
        o.fps_den = in->fps_den;
        o.tb_num = in->tb_num;
        o.tb_den = in->tb_den;
    }
    return o;
}

static void writer_free(struct infvsr_media_writer * w) {
    avcodec_free_context(&w->enc);
    if (w->oc) {
        if (w->custom_io && w->oc->pb) {
            av_freep(&w->oc->pb->buffer);
            avio_context_free(&w->oc->pb);
        } else if (w->oc->pb) {
            avio_closep(&w->oc->pb);
        }
        avformat_free_context(w->oc);
    }
    sws_freeContext(w->sws);
    av_freep(&w->rgb_padded);
    av_freep(&w->yuv_scratch);
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
    av_packet_free(&w->cpkt);
    av_free(w->copy_out);
    av_free(w->last_dts);
    av_free(w->path);
    av_free(w->tmp_path);
    av_free(w);
}

void infvsr_media_writer_abort(struct infvsr_media_writer * w) {
    if (!w) return;
    if (w->tmp_path) unlink(w->tmp_path);
    writer_free(w);
}

static bool has_ext(const char * path, const char * ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n >= e && strcasecmp(path + n - e, ext) == 0;
}

static const char * muxer_for(const char * path, const struct infvsr_media_writer_opts * o) {
    switch (o->container) {
        case INFVSR_CONTAINER_MATROSKA: return "matroska";
        case INFVSR_CONTAINER_MP4:      return "mp4";
        case INFVSR_CONTAINER_MPEGTS:   return "mpegts";
        case INFVSR_CONTAINER_Y4M:      return "yuv4mpegpipe";
        case INFVSR_CONTAINER_AUTO:     break;
    }
    if (!path) return o->codec == INFVSR_CODEC_Y4M ? "yuv4mpegpipe" : "matroska";
    enum infvsr_media_codec codec = o->codec;
    switch (codec) {
        case INFVSR_CODEC_H264: return has_ext(path, ".mkv") ? "matroska" : has_ext(path, ".mov") ? "mov" : "mp4";
        case INFVSR_CODEC_FFV1: return "matroska";
        case INFVSR_CODEC_Y4M:  return "yuv4mpegpipe";
    }
    return NULL;
}

static enum infvsr_status open_encoder(struct infvsr_media_writer * w, struct infvsr_err * err) {
    const struct infvsr_media_writer_opts * o = &w->opts;
    const char * name = o->codec == INFVSR_CODEC_H264 ? "libx264" : o->codec == INFVSR_CODEC_FFV1 ? "ffv1"
                                                                                                : "wrapped_avframe";
    const AVCodec * codec = avcodec_find_encoder_by_name(name);
    if (!codec) return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "encoder %s is not available in this FFmpeg", name);
    w->enc = avcodec_alloc_context3(codec);
    if (!w->enc) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    bool odd = (o->width & 1) || (o->height & 1);
    if (o->codec == INFVSR_CODEC_FFV1) w->enc->pix_fmt = AV_PIX_FMT_BGR0;
    else w->enc->pix_fmt = (odd || o->lossless || o->yuv444p) ? AV_PIX_FMT_YUV444P : AV_PIX_FMT_YUV420P;
    w->enc->width = o->width;
    w->enc->height = o->height;
    w->enc->framerate = av_inv_q(w->frame_dur);
    /* y4m stores a frame rate, not timestamps: its time base must be 1/fps. */
    w->enc->time_base = o->codec == INFVSR_CODEC_Y4M ? w->frame_dur : w->in_tb;
    w->enc->thread_count = o->threads > 0 ? o->threads : 1;
    w->enc->sample_aspect_ratio = (AVRational){ 1, 1 };
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) w->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary * eo = NULL;
    if (o->codec == INFVSR_CODEC_H264) {
        char crf[16];
        snprintf(crf, sizeof(crf), "%d", o->lossless ? 0 : o->crf);
        av_dict_set(&eo, "crf", crf, 0);
        /* Streaming mode: x264 holds rc-lookahead (default 40) frames before its first
         * packet; 10 keeps most of the rate-control benefit and lets a live reader see
         * the first frames after ~15 frames instead of ~45. */
        if (w->custom_io) av_dict_set(&eo, "rc-lookahead", "10", 0);
    } else if (o->codec == INFVSR_CODEC_FFV1) {
        av_dict_set(&eo, "level", "3", 0);
        av_dict_set(&eo, "slicecrc", "1", 0);
    }
    int ret = avcodec_open2(w->enc, codec, &eo);
    av_dict_free(&eo);
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_UNSUPPORTED, ret, "cannot open the video encoder");
    w->vst = avformat_new_stream(w->oc, NULL);
    if (!w->vst) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    ret = avcodec_parameters_from_context(w->vst->codecpar, w->enc);
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_FORMAT, ret, "video stream parameters");
    w->vst->time_base = w->enc->time_base;
    w->vst->avg_frame_rate = w->enc->framerate;
    w->vst->r_frame_rate = w->enc->framerate;

    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    w->cpkt = av_packet_alloc();
    if (!w->frame || !w->pkt || !w->cpkt) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    w->frame->format = w->enc->pix_fmt;
    w->frame->width = o->width;
    w->frame->height = o->height;
    ret = av_frame_get_buffer(w->frame, 0);
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_NOMEM, ret, "frame buffer");
    if (w->enc->pix_fmt == AV_PIX_FMT_YUV420P) {
        w->yuv_scratch = av_malloc(infvsr_rgb_to_yuv420p_scratch_bytes(o->width));
        if (!w->yuv_scratch) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
        return INFVSR_OK;
    }
    if (w->enc->pix_fmt == AV_PIX_FMT_YUV444P) return INFVSR_OK;
    w->sws = sws_getContext(o->width, o->height, AV_PIX_FMT_RGB24, o->width, o->height, w->enc->pix_fmt,
                            SWS_BICUBIC, NULL, NULL, NULL);
    if (!w->sws) return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "cannot convert rgb24 to the encoder's format");
    const int * bt601 = sws_getCoefficients(SWS_CS_DEFAULT);
    sws_setColorspaceDetails(w->sws, bt601, 0, bt601, 0, 0, 1 << 16, 1 << 16);
    return INFVSR_OK;
}

/* AAC from MPEG-TS (ADTS) carries its configuration in every packet header, not as
 * extradata; Matroska and MP4 need it in the header, before the first packet, and a
 * streaming writer cannot patch it in later. Builds the 2-byte AudioSpecificConfig
 * (ISO 14496-3 1.6.2.1) from the stream parameters, as aac_adtstoasc would from the
 * first ADTS header; the muxer's automatic aac_adtstoasc then only strips the headers. */
static int aac_config_from_params(AVCodecParameters * par) {
    static const int rates[] = { 96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350 };
    int sr = -1;
    for (int i = 0; i < 13; i++)
        if (rates[i] == par->sample_rate) sr = i;
    int ch = par->ch_layout.nb_channels;
    int aot = par->profile >= 0 ? par->profile + 1 : 2; /* FF_PROFILE_AAC_LOW (1) is object type 2 */
    if (sr < 0 || ch < 1 || ch > 7 || aot < 1 || aot > 4) return AVERROR(EINVAL);
    par->extradata = av_mallocz(2 + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!par->extradata) return AVERROR(ENOMEM);
    par->extradata[0] = (uint8_t)((aot << 3) | (sr >> 1));
    par->extradata[1] = (uint8_t)(((sr & 1) << 7) | (ch << 3));
    par->extradata_size = 2;
    return 0;
}

/* MPEG-TS declares no codec list (avformat_query_codec knows only its default, MP2):
 * the audio and subtitle codecs its muxer maps to stream types. */
static bool container_holds(const AVOutputFormat * of, enum AVCodecID id) {
    if (strcmp(of->name, "mpegts") == 0) {
        static const enum AVCodecID ts[] = { AV_CODEC_ID_AAC, AV_CODEC_ID_MP2, AV_CODEC_ID_MP3, AV_CODEC_ID_AC3,
                                             AV_CODEC_ID_EAC3, AV_CODEC_ID_DTS, AV_CODEC_ID_OPUS, AV_CODEC_ID_TRUEHD,
                                             AV_CODEC_ID_DVB_SUBTITLE, AV_CODEC_ID_DVB_TELETEXT };
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
            if (ts[i] == id) return true;
        return false;
    }
    return avformat_query_codec(of, id, FF_COMPLIANCE_NORMAL) == 1;
}

/* Adds an output stream for every copy stream of the reader the muxer accepts. */
static enum infvsr_status add_copy_streams(struct infvsr_media_writer * w, struct infvsr_err * err) {
    const struct infvsr_media_reader * r = w->opts.copy_from;
    if (!r) return INFVSR_OK;
    w->n_copy_in = infvsr_media_reader_info(r)->n_copy_streams;
    if (w->n_copy_in == 0) return INFVSR_OK;
    w->copy_out = av_malloc_array((size_t)w->n_copy_in, sizeof(int));
    w->last_dts = av_malloc_array((size_t)w->n_copy_in, sizeof(int64_t));
    if (!w->copy_out || !w->last_dts) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    for (int i = 0; i < w->n_copy_in; i++) {
        AVRational tb;
        const AVCodecParameters * par = infvsr_media_reader_copy_stream(r, i, &tb);
        w->copy_out[i] = -1;
        w->last_dts[i] = AV_NOPTS_VALUE;
        if (w->opts.codec == INFVSR_CODEC_Y4M) continue;
        if (!container_holds(w->oc->oformat, par->codec_id)) continue;
        AVStream * st = avformat_new_stream(w->oc, NULL);
        if (!st) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
        int ret = avcodec_parameters_copy(st->codecpar, par);
        if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_FORMAT, ret, "copying stream parameters");
        st->codecpar->codec_tag = 0; /* let the output container choose its tag */
        if (st->codecpar->codec_id == AV_CODEC_ID_AAC && st->codecpar->extradata_size == 0 &&
            strcmp(w->oc->oformat->name, "mpegts") != 0) {
            ret = aac_config_from_params(st->codecpar);
            if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_FORMAT, ret, "AAC stream without a configuration");
        }
        st->time_base = tb;
        w->copy_out[i] = st->index;
        w->n_copied++;
    }
    return INFVSR_OK;
}

/* The process umask without changing it (umask(2) can only be read by setting it, which
 * would race with other threads creating files): Linux reports it in /proc/self/status. */
static mode_t process_umask(void) {
    mode_t m = 022;
    FILE * f = fopen("/proc/self/status", "r");
    char   line[128];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "Umask:", 6) == 0) {
            m = (mode_t)strtoul(line + 6, NULL, 8);
            break;
        }
    }
    if (f) fclose(f);
    return m;
}

static enum infvsr_status check_opts(const struct infvsr_media_writer_opts * opts, struct infvsr_err * err) {
    if (opts->width <= 0 || opts->height <= 0 || opts->width > 16384 || opts->height > 16384)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: bad frame size %dx%d", opts->width,
                              opts->height);
    if (!(opts->fps > 0) || !isfinite(opts->fps))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: fps must be > 0 (got %g)", opts->fps);
    if (opts->codec == INFVSR_CODEC_H264 && (opts->crf < 0 || opts->crf > 51))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: crf must be 0..51 (got %d)", opts->crf);
    bool y4m_box = opts->container == INFVSR_CONTAINER_Y4M;
    if (opts->container != INFVSR_CONTAINER_AUTO && y4m_box != (opts->codec == INFVSR_CODEC_Y4M))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "media writer: the y4m container holds raw video only, and raw video needs y4m");
    if (opts->codec == INFVSR_CODEC_FFV1 && opts->container != INFVSR_CONTAINER_AUTO &&
        opts->container != INFVSR_CONTAINER_MATROSKA)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: FFV1 is written in Matroska only");
    return INFVSR_OK;
}

static struct infvsr_media_writer * writer_alloc(const struct infvsr_media_writer_opts * opts) {
    struct infvsr_media_writer * w = av_mallocz(sizeof(*w));
    if (!w) return NULL;
    w->opts = *opts;
    w->last_pts = INT64_MIN;
    w->frame_dur = opts->fps_num > 0 && opts->fps_den > 0 ? (AVRational){ opts->fps_den, opts->fps_num }
                                                          : av_inv_q(av_d2q(opts->fps, 1 << 24));
    w->in_tb = opts->tb_num > 0 && opts->tb_den > 0 ? (AVRational){ opts->tb_num, opts->tb_den } : w->frame_dur;
    return w;
}

/* The header was refused. Our own video stream is always valid, so when the write itself did
 * not fail, a copied stream of the input is the cause (a corrupt input's audio without a
 * sample rate, say): an error of the input, not of the server. */
static enum infvsr_status header_error(const struct infvsr_media_writer * w, int averr, struct infvsr_err * err) {
    if (w->oc->pb && w->oc->pb->error < 0)
        return infvsr_media_av_err(err, INFVSR_ERR_IO, w->oc->pb->error, "cannot write the container header");
    if (w->n_copied > 0) {
        char ff[AV_ERROR_MAX_STRING_SIZE] = { 0 };
        av_strerror(averr, ff, sizeof(ff));
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "the output container refuses an audio/subtitle stream copied "
                              "from the input (invalid or unsupported parameters; set output.copy_audio to false to "
                              "drop them) (FFmpeg: %s)", ff);
    }
    return infvsr_media_av_err(err, INFVSR_ERR_UNSUPPORTED, averr, "cannot write the container header");
}

enum infvsr_status infvsr_media_writer_open(const char * path, const struct infvsr_media_writer_opts * opts,
                                            struct infvsr_media_writer ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!path || !opts) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: NULL argument");
    enum infvsr_status cst = check_opts(opts, err);
    if (cst != INFVSR_OK) return cst;
    struct infvsr_media_writer * w = writer_alloc(opts);
    if (!w) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    w->path = av_strdup(path);
    w->tmp_path = av_asprintf("%s.tmp-XXXXXX", path);
    if (!w->path || !w->tmp_path) {
        writer_free(w);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    }
    int fd = mkstemp(w->tmp_path);
    if (fd < 0) {
        av_freep(&w->tmp_path); /* nothing to unlink */
        writer_free(w);
        return infvsr_err_set(err, INFVSR_ERR_IO, "cannot create a temporary file next to %.300s", path);
    }
    /* mkstemp creates 0600; the finished file should get the usual 0666 & ~umask, like any
     * file the user creates. A failure is not fatal: the output stays correct, only its
     * permissions stay tighter. */
    (void)fchmod(fd, 0666 & ~process_umask());
    close(fd);
    const char * muxer = muxer_for(path, opts);
    int ret = avformat_alloc_output_context2(&w->oc, NULL, muxer, w->tmp_path);
    enum infvsr_status st = INFVSR_OK;
    if (ret < 0 || !w->oc) st = infvsr_media_av_err(err, INFVSR_ERR_UNSUPPORTED, ret, "output container");
    if (st == INFVSR_OK) st = open_encoder(w, err);
    if (st == INFVSR_OK) st = add_copy_streams(w, err);
    if (st == INFVSR_OK) {
        char * url = av_asprintf("file:%s", w->tmp_path);
        ret = url ? avio_open(&w->oc->pb, url, AVIO_FLAG_WRITE) : AVERROR(ENOMEM);
        av_free(url);
        if (ret < 0) st = infvsr_media_av_err(err, INFVSR_ERR_IO, ret, "cannot write the output file");
    }
    if (st == INFVSR_OK) {
        ret = avformat_write_header(w->oc, NULL);
        if (ret < 0) st = header_error(w, ret, err);
        w->header_written = ret >= 0;
    }
    if (st != INFVSR_OK) {
        infvsr_media_writer_abort(w);
        return st;
    }
    *out = w;
    return INFVSR_OK;
}

static int io_write(void * opaque, uint8_t * buf, int size) {
    struct infvsr_media_writer * w = opaque;
    int n = w->io.write(w->io.opaque, buf, size);
    return n == size ? size : n < 0 ? n : AVERROR(EIO); /* a negative errno names the cause */
}

#define OUT_IO_BUFFER_SIZE (64 * 1024)

enum infvsr_status infvsr_media_writer_open_io(const struct infvsr_media_output_io * io,
                                               const struct infvsr_media_writer_opts * opts,
                                               struct infvsr_media_writer ** out, struct infvsr_err * err) {
    *out = NULL;
    if (!io || !io->write || !opts) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: NULL argument");
    enum infvsr_status st = check_opts(opts, err);
    if (st != INFVSR_OK) return st;
    struct infvsr_media_writer * w = writer_alloc(opts);
    if (!w) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    w->custom_io = true;
    w->io = *io;
    const char * muxer = muxer_for(NULL, opts);
    int ret = avformat_alloc_output_context2(&w->oc, NULL, muxer, NULL);
    if (ret < 0 || !w->oc) st = infvsr_media_av_err(err, INFVSR_ERR_UNSUPPORTED, ret, "output container");
    if (st == INFVSR_OK) st = open_encoder(w, err);
    if (st == INFVSR_OK) st = add_copy_streams(w, err);
    if (st == INFVSR_OK) {
        uint8_t * buf = av_malloc(OUT_IO_BUFFER_SIZE);
        w->oc->pb = buf ? avio_alloc_context(buf, OUT_IO_BUFFER_SIZE, 1, w, NULL, io_write, NULL) : NULL;
        if (!w->oc->pb) {
            av_free(buf);
            st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
        } else {
            w->oc->pb->seekable = 0; /* muxers then write live-style: nothing is patched later */
            w->oc->flags |= AVFMT_FLAG_CUSTOM_IO;
        }
    }
    if (st == INFVSR_OK) {
        AVDictionary * mo = NULL;
        if (strcmp(muxer, "mp4") == 0) {
            /* Fragmented MP4: an empty moov up front, then a moof+mdat per keyframe or per
             * second, whichever comes first, so a reader can play it while it grows. */
            av_dict_set(&mo, "movflags", "frag_keyframe+empty_moov+default_base_moof", 0);
            av_dict_set(&mo, "frag_duration", "1000000", 0);
        }
        ret = avformat_write_header(w->oc, &mo);
        av_dict_free(&mo);
        if (ret < 0) st = header_error(w, ret, err);
        w->header_written = ret >= 0;
    }
    if (st == INFVSR_OK) st = infvsr_media_writer_flush(w, err);
    if (st != INFVSR_OK) {
        infvsr_media_writer_abort(w);
        return st;
    }
    *out = w;
    return INFVSR_OK;
}

enum infvsr_status infvsr_media_writer_flush(struct infvsr_media_writer * w, struct infvsr_err * err) {
    if (!w || !w->oc || !w->oc->pb) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: not open");
    avio_flush(w->oc->pb);
    if (w->oc->pb->error < 0) return infvsr_media_av_err(err, INFVSR_ERR_IO, w->oc->pb->error, "writing the output");
    return INFVSR_OK;
}

/* Moves every packet the encoder has ready into the muxer. */
static enum infvsr_status drain_encoder(struct infvsr_media_writer * w, struct infvsr_err * err) {
    for (;;) {
        int ret = avcodec_receive_packet(w->enc, w->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return INFVSR_OK;
        if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_FORMAT, ret, "video encoding failed");
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->vst->time_base);
        w->pkt->stream_index = w->vst->index;
        w->packets_out++;
        ret = av_interleaved_write_frame(w->oc, w->pkt); /* takes the packet's reference */
        if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_IO, ret, "writing a video packet failed");
    }
}

/* swscale (FFV1's bgr0) reads whole SIMD vectors past the end of a tightly packed row: the
 * frame is copied into 64-byte padded rows (plus a spare row) first, so the caller's buffer
 * is never over-read. */
static enum infvsr_status convert_with_swscale(struct infvsr_media_writer * w, const uint8_t * rgb, size_t row,
                                               struct infvsr_err * err) {
    if (!w->rgb_padded) {
        w->rgb_padded_stride = (int)FFALIGN(row, 64);
        w->rgb_padded = av_mallocz((size_t)w->rgb_padded_stride * ((size_t)w->opts.height + 1));
        if (!w->rgb_padded) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "media writer: out of memory");
    }
    for (int y = 0; y < w->opts.height; y++)
        memcpy(w->rgb_padded + (size_t)y * (size_t)w->rgb_padded_stride, rgb + (size_t)y * row, row);
    const uint8_t * src[4] = { w->rgb_padded, NULL, NULL, NULL };
    int src_stride[4] = { w->rgb_padded_stride, 0, 0, 0 };
    sws_scale(w->sws, src, src_stride, 0, w->opts.height, w->frame->data, w->frame->linesize);
    return INFVSR_OK;
}

enum infvsr_status infvsr_media_writer_write(struct infvsr_media_writer * w, const uint8_t * rgb, int64_t pts,
                                             struct infvsr_err * err) {
    if (!w || !rgb) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: NULL argument");
    int ret = av_frame_make_writable(w->frame); /* the encoder may still reference it */
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_NOMEM, ret, "frame buffer");
    size_t row = (size_t)3 * (size_t)w->opts.width;
    uint8_t * const * d = w->frame->data;
    const int * ls = w->frame->linesize;
    if (w->enc->pix_fmt == AV_PIX_FMT_YUV420P) {
        infvsr_rgb24_to_yuv420p(rgb, (ptrdiff_t)row, w->opts.width, w->opts.height, d[0], ls[0], d[1], ls[1], d[2], ls[2],
                                w->yuv_scratch);
    } else if (w->enc->pix_fmt == AV_PIX_FMT_YUV444P) {
        infvsr_rgb24_to_yuv444p(rgb, (ptrdiff_t)row, w->opts.width, w->opts.height, d[0], ls[0], d[1], ls[1], d[2], ls[2]);
    } else {
        enum infvsr_status st = convert_with_swscale(w, rgb, row, err);
        if (st != INFVSR_OK) return st;
    }
    int64_t p;
    if (w->opts.codec == INFVSR_CODEC_Y4M) p = w->frames_in;
    else if (pts == INFVSR_MEDIA_NOPTS) p = av_rescale_q(w->frames_in, w->frame_dur, w->in_tb);
    else p = pts;
    if (w->last_pts != INT64_MIN && p <= w->last_pts) p = w->last_pts + 1; /* encoders need increasing pts */
    w->last_pts = p;
    w->frame->pts = p;
    ret = avcodec_send_frame(w->enc, w->frame);
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_FORMAT, ret, "video encoder refused a frame");
    w->frames_in++;
    return drain_encoder(w, err);
}

static bool fix_copied_timestamps(struct infvsr_media_writer * w, int copy_index, AVPacket * pkt);

/* Checks the MPEG-TS muxer makes on AAC data, which a corrupt input (shuffled or bit-flipped
 * transport packets) can fail. The muxer reports them when the interleaver releases the packet,
 * i.e. often from a later video write, as AVERROR_INVALIDDATA that would fail the whole job;
 * such packets are dropped here instead. */
static bool muxer_takes_copied_data(const struct infvsr_media_writer * w, const AVStream * st, const AVPacket * pkt) {
    if (st->codecpar->codec_id != AV_CODEC_ID_AAC || strcmp(w->oc->oformat->name, "mpegts") != 0) return true;
    if (pkt->size < 2) return false; /* "AAC packet too short" */
    bool adts = (AV_RB16(pkt->data) & 0xfff0) == 0xfff0;
    return adts || st->codecpar->extradata_size > 0; /* "not in ADTS format and extradata missing" */
}

enum infvsr_status infvsr_media_writer_copy_packet_sink(void * writer, const struct infvsr_media_packet * p,
                                                        struct infvsr_err * err) {
    struct infvsr_media_writer * w = writer;
    if (!w || !p || p->copy_index < 0 || p->copy_index >= w->n_copy_in || w->copy_out[p->copy_index] < 0)
        return INFVSR_OK; /* a stream this container cannot hold: dropped at open */
    AVStream * st = w->oc->streams[w->copy_out[p->copy_index]];
    int ret = av_packet_ref(w->cpkt, p->pkt);
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_NOMEM, ret, "copying a packet");
    /* ADTS headers (AAC from MPEG-TS): Matroska and MP4 store raw AAC frames, the
     * configuration lives in the header (see aac_config_from_params). FFmpeg 5.1's MP4
     * muxer does not insert aac_adtstoasc by itself; strip the 7-byte header (9 with CRC)
     * here, for one raw data block per frame, as that filter does. */
    if (st->codecpar->codec_id == AV_CODEC_ID_AAC && strcmp(w->oc->oformat->name, "mpegts") != 0 &&
        w->cpkt->size > 9 && (AV_RB16(w->cpkt->data) & 0xfff6) == 0xfff0 && (w->cpkt->data[6] & 3) == 0) {
        int hl = (w->cpkt->data[1] & 1) ? 7 : 9; /* protection_absent */
        w->cpkt->data += hl;
        w->cpkt->size -= hl;
    }
    if (!muxer_takes_copied_data(w, st, w->cpkt)) {
        w->copied_dropped++;
        av_packet_unref(w->cpkt);
        return INFVSR_OK;
    }
    av_packet_rescale_ts(w->cpkt, p->time_base, st->time_base);
    w->cpkt->stream_index = st->index;
    w->cpkt->pos = -1;
    if (!fix_copied_timestamps(w, p->copy_index, w->cpkt)) {
        av_packet_unref(w->cpkt);
        return INFVSR_OK;
    }
    int64_t dts = w->cpkt->dts;
    ret = av_interleaved_write_frame(w->oc, w->cpkt);
    av_packet_unref(w->cpkt);
    /* EINVAL with a healthy output is the muxer refusing this packet (e.g. a timestamp it
     * cannot store): drop it like one without timestamps. Any output error still fails. */
    if (ret == AVERROR(EINVAL) && w->oc->pb && w->oc->pb->error == 0) {
        w->copied_dropped++;
        return INFVSR_OK;
    }
    if (ret < 0) return infvsr_media_av_err(err, INFVSR_ERR_IO, ret, "writing a copied packet failed");
    w->last_dts[p->copy_index] = dts;
    return INFVSR_OK;
}

/* What the ffmpeg CLI does to a stream-copied packet before muxing (fftools' mux_fixup_ts
 * for non-video streams): a missing dts takes the pts; a dts that does not increase becomes
 * last + 1 (last, for muxers that allow equal dts) and the pts is raised to it. Returns false when the packet is to be dropped
 * (no timestamp at all, or a fixed dts that would overflow). */
static bool fix_copied_timestamps(struct infvsr_media_writer * w, int copy_index, AVPacket * pkt) {
    if (pkt->dts == AV_NOPTS_VALUE) pkt->dts = pkt->pts;
    if (pkt->dts == AV_NOPTS_VALUE) {
        w->copied_dropped++;
        return false;
    }
    bool fixed = false;
    if (pkt->pts != AV_NOPTS_VALUE && pkt->pts < pkt->dts) {
        pkt->pts = pkt->dts; /* pts < dts is invalid; ffmpeg replaces both with a guess */
        fixed = true;
    }
    int64_t last = w->last_dts[copy_index];
    bool strict = !(w->oc->oformat->flags & AVFMT_TS_NONSTRICT); /* may dts repeat? as the muxer checks */
    if (last != AV_NOPTS_VALUE && (pkt->dts < last || (strict && pkt->dts == last))) {
        if (strict && last == INT64_MAX) {
            w->copied_dropped++;
            return false;
        }
        pkt->dts = strict ? last + 1 : last;
        if (pkt->pts != AV_NOPTS_VALUE && pkt->pts < pkt->dts) pkt->pts = pkt->dts;
        fixed = true;
    }
    if (fixed) w->copied_fixed++;
    return true;
}

enum infvsr_status infvsr_media_writer_finish(struct infvsr_media_writer * w, struct infvsr_err * err) {
    if (!w) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: NULL argument");
    enum infvsr_status st = INFVSR_OK;
    if (w->frames_in == 0) st = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "media writer: no frame was written");
    if (st == INFVSR_OK) {
        int ret = avcodec_send_frame(w->enc, NULL);
        if (ret < 0) st = infvsr_media_av_err(err, INFVSR_ERR_FORMAT, ret, "flushing the video encoder");
    }
    if (st == INFVSR_OK) st = drain_encoder(w, err);
    if (st == INFVSR_OK && w->packets_out != w->frames_in)
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "encoder produced %lld packets for %lld frames",
                            (long long)w->packets_out, (long long)w->frames_in);
    if (w->copied_fixed > 0 || w->copied_dropped > 0)
        av_log(w->oc, AV_LOG_WARNING,
               "copied streams had invalid timestamps: %lld packets fixed up, %lld dropped\n",
               (long long)w->copied_fixed, (long long)w->copied_dropped);
    if (st == INFVSR_OK) {
        int ret = av_write_trailer(w->oc);
        if (ret < 0) st = infvsr_media_av_err(err, INFVSR_ERR_IO, ret, "writing the container trailer");
    }
    if (st == INFVSR_OK && w->custom_io) st = infvsr_media_writer_flush(w, err);
    if (st == INFVSR_OK && !w->custom_io) {
        int ret = avio_closep(&w->oc->pb);
        if (ret < 0) st = infvsr_media_av_err(err, INFVSR_ERR_IO, ret, "closing the output file");
    }
    if (st == INFVSR_OK && !w->custom_io && rename(w->tmp_path, w->path) != 0)
        st = infvsr_err_set(err, INFVSR_ERR_IO, "cannot rename %.200s to %.200s", w->tmp_path, w->path);
    if (st != INFVSR_OK) {
        infvsr_media_writer_abort(w);
        return st;
    }
    writer_free(w);
    return INFVSR_OK;
}

int64_t infvsr_media_writer_frames_written(const struct infvsr_media_writer * w) { return w->frames_in; }
int infvsr_media_writer_copied_streams(const struct infvsr_media_writer * w) { return w->n_copied; }
int64_t infvsr_media_writer_copied_packets_fixed(const struct infvsr_media_writer * w, int64_t * dropped) {
    if (dropped) *dropped = w->copied_dropped;
    return w->copied_fixed;
}
