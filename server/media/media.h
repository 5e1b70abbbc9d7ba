/* Video in and out with FFmpeg (libavformat/libavcodec/libswscale, FFmpeg 5.1).
 *
 * Reader: demux + decode the best video stream of a file or of bytes delivered by a read
 * callback (an upload), convert each frame to RGB24 and hand it out one at a time.
 * Audio and subtitle packets are passed, untouched, to an optional packet sink so that a
 * writer can copy them into the output.
 * Writer: encode RGB24 frames (H.264/libx264 in MP4 or MKV, FFV1 in MKV, or y4m), copy the
 * reader's audio/subtitle packets with rescaled timestamps, write to "<out>.tmp-XXXXXX"
 * and rename to <out> only when everything succeeded.
 *
 *   struct infvsr_media_reader * r;  struct infvsr_media_writer * w;
 *   infvsr_media_reader_open_file("in.mp4", NULL, &r, &err);
 *   const struct infvsr_media_info * in = infvsr_media_reader_info(r);
 *   struct infvsr_media_writer_opts wo = infvsr_media_writer_opts_for(in, INFVSR_CODEC_H264);
 *   wo.copy_from = r;
 *   infvsr_media_writer_open("out.mp4", &wo, &w, &err);
 *   infvsr_media_reader_set_packet_sink(r, infvsr_media_writer_copy_packet_sink, w);
 *   while (infvsr_media_reader_next(r, rgb, &pts, &err) == INFVSR_OK)  (INFVSR_MEDIA_EOF ends)
 *       infvsr_media_writer_write(w, rgb, pts, &err);
 *   infvsr_media_writer_finish(w, &err);      (or _abort: no file is left behind)
 *   infvsr_media_reader_close(r);
 *
 * Memory is bounded by the codecs' own buffers (a few frames); nothing grows with the
 * length of the video. Each reader or writer is used by one thread at a time. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "infvsr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returned by infvsr_media_reader_next at the end of the stream (not an error). */
#define INFVSR_MEDIA_EOF 1
#define INFVSR_MEDIA_NOPTS INT64_MIN

struct infvsr_media_limits {
    int64_t max_pixels;         /* width*height; default 8192*4320 (8K)                  */
    int     max_dimension;      /* either side; default 8192                              */
    int64_t probesize;          /* bytes the demuxer may read to probe; default 5 MB     */
    int64_t analyzeduration_us; /* default 5 s                                            */
    int64_t max_frames;         /* refuse longer videos; 0 = no limit                    */
    /* Comma-separated demuxer names allowed (e.g. "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm");
     * NULL allows every demuxer FFmpeg was built with. */
    const char * format_whitelist;
    int     threads;            /* decoder threads; default 1                              */
    int     max_streams;        /* streams a file may declare; default 16                  */
    /* Polled during blocking demux work and before each frame; return non-zero to stop (a
     * deadline or a cancelled job). The open or read then fails with INFVSR_ERR_CANCELLED.
     * NULL: never. */
    int     (*interrupt)(void * user);
    void *  interrupt_user;
    /* Demuxer name (e.g. "matroska", "mpegts"): skip probing and read the input as this
     * format; it must also pass format_whitelist. NULL or "": probe. */
    const char * input_format;
};

struct infvsr_media_limits infvsr_media_limits_default(void);

struct infvsr_media_info {
    int     width, height;
    /* Frame rate by MODEL-SPEC §2.1: the stream's rate (r_frame_rate, what ffmpeg prints
     * as "tbr" and imageio prefers, else avg_frame_rate); else nframes/duration when both
     * are positive; else 15. Non-finite or non-positive values become 15. */
    double  fps;
    int     fps_num, fps_den;   /* the same rate as a fraction (fps_den 0 when derived)  */
    int     tb_num, tb_den;     /* time base of the pts values the reader hands out      */
    int64_t nframes;            /* frame count from the container, -1 when unknown       */
    double  duration_s;         /* -1 when unknown */
    const char * format_name;   /* demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2"                */
    const char * codec_name;    /* decoder, e.g. "h264"                                   */
    int     n_copy_streams;     /* audio + subtitle streams offered to the packet sink   */
};

/* Bytes of an input delivered by the caller (an HTTP upload, a spool file). read: up to
 * `size` bytes into buf; returns the count, 0 at end of input, or < 0 on error. seek is
 * optional (NULL for a pure stream; then MP4 files with the index at the end cannot be
 * read): whence is SEEK_SET/SEEK_CUR/SEEK_END, or 0x10000 (AVSEEK_SIZE) to ask the total
 * size (return -1 when unknown). */
struct infvsr_media_io {
    void *  opaque;
    int     (*read)(void * opaque, uint8_t * buf, int size);
    int64_t (*seek)(void * opaque, int64_t offset, int whence);
};

struct infvsr_media_reader;
struct infvsr_media_packet; /* a demuxed audio/subtitle packet, borrowed by the sink */

/* Called from inside infvsr_media_reader_next for every audio/subtitle packet. The packet
 * is valid only during the call. A non-OK return stops the read with that status. */
typedef enum infvsr_status (*infvsr_media_packet_sink)(void * user, const struct infvsr_media_packet * pkt,
                                                      struct infvsr_err * err);

/* limits may be NULL (defaults). */
enum infvsr_status infvsr_media_reader_open_file(const char * path, const struct infvsr_media_limits * limits,
                                                 struct infvsr_media_reader ** out, struct infvsr_err * err);
enum infvsr_status infvsr_media_reader_open_io(const struct infvsr_media_io * io,
                                               const struct infvsr_media_limits * limits,
                                               struct infvsr_media_reader ** out, struct infvsr_err * err);
const struct infvsr_media_info * infvsr_media_reader_info(const struct infvsr_media_reader * r);
void infvsr_media_reader_set_packet_sink(struct infvsr_media_reader * r, infvsr_media_packet_sink sink, void * user);

/* Decodes the next frame into rgb (width*height*3 bytes, rows top to bottom) and its pts
 * in the info's time base (INFVSR_MEDIA_NOPTS when the stream has none). Returns
 * INFVSR_OK, INFVSR_MEDIA_EOF after the last frame, or an error: a frame of another size
 * than the first, a file that ends before its declared frame count, a stream without a
 * single frame, more than max_frames frames. */
int infvsr_media_reader_next(struct infvsr_media_reader * r, uint8_t * rgb, int64_t * pts,
                             struct infvsr_err * err);
int64_t infvsr_media_reader_frames_read(const struct infvsr_media_reader * r);
void infvsr_media_reader_close(struct infvsr_media_reader * r);

/* Output container. AUTO: from the path's extension (file mode, see INFVSR_CODEC_H264) or
 * Matroska (streaming mode); Y4M goes with INFVSR_CODEC_Y4M only, FFV1 needs Matroska. */
enum infvsr_media_container {
    INFVSR_CONTAINER_AUTO = 0,
    INFVSR_CONTAINER_MATROSKA,
    INFVSR_CONTAINER_MP4,      /* streaming mode: fragmented (empty moov, a fragment per
                                  keyframe or second, default-base-is-moof)             */
    INFVSR_CONTAINER_MPEGTS,
    INFVSR_CONTAINER_Y4M,
};

enum infvsr_media_codec {
    INFVSR_CODEC_H264, /* libx264, container from the extension: .mkv -> Matroska, else MP4 */
    INFVSR_CODEC_FFV1, /* FFV1 in Matroska, planar RGB: lossless                           */
    INFVSR_CODEC_Y4M,  /* raw YUV in yuv4mpegpipe; carries video only                       */
};

struct infvsr_media_writer_opts {
    int     width, height;
    enum infvsr_media_codec codec;
    double  fps;             /* > 0 */
    int     fps_num, fps_den; /* exact rate when known (fps_den > 0), else derived from fps */
    int     tb_num, tb_den;  /* time base of the pts passed to write(); 0 = 1/fps          */
    int     crf;             /* H.264 only; default 15 (MODEL-SPEC §2.6)                    */
    bool    lossless;        /* H.264: yuv444p, CRF 0 (--yuv444p); y4m: yuv444p             */
    int     threads;         /* encoder threads; default 1                                  */
    /* Copy every audio/subtitle stream of this reader that the output container can hold
     * (y4m holds none); NULL for video only. Feed the packets through
     * infvsr_media_writer_copy_packet_sink. */
    const struct infvsr_media_reader * copy_from;
    enum infvsr_media_container container; /* AUTO (default): as described above            */
    bool    yuv444p;         /* H.264/y4m: 4:4:4 chroma at the given crf (lossless implies it) */
};

struct infvsr_media_writer_opts infvsr_media_writer_opts_for(const struct infvsr_media_info * in,
                                                             enum infvsr_media_codec codec);

struct infvsr_media_writer;

enum infvsr_status infvsr_media_writer_open(const char * path, const struct infvsr_media_writer_opts * opts,
                                            struct infvsr_media_writer ** out, struct infvsr_err * err);
/* Streaming mode: the container goes, as it is produced, to io->write (never seeks back:
 * Matroska without cues, MPEG-TS, fragmented MP4, y4m); no file, no rename. Bytes reach
 * the callback when the writer's buffer fills and at infvsr_media_writer_flush/finish.
 * The header is written during the open. */
struct infvsr_media_output_io {
    void * opaque;
    /* Stores all `size` bytes; returns size, or on error a negative errno (-ENOSPC for a
     * full disk), which the writer's error message then names; other negative values
     * read as EIO. */
    int  (*write)(void * opaque, const uint8_t * buf, int size);
};
enum infvsr_status infvsr_media_writer_open_io(const struct infvsr_media_output_io * io,
                                               const struct infvsr_media_writer_opts * opts,
                                               struct infvsr_media_writer ** out, struct infvsr_err * err);
/* Pushes the bytes the writer holds to the output (streaming mode: to the callback).
 * Packets still waiting in the muxer's interleaving queue (for another stream's packets)
 * stay there. */
enum infvsr_status infvsr_media_writer_flush(struct infvsr_media_writer * w, struct infvsr_err * err);

/* An owned copy of a packet handed to a packet sink, to pass it to another thread (the
 * sink's packet is only borrowed). NULL when out of memory. */
struct infvsr_media_packet * infvsr_media_packet_clone(const struct infvsr_media_packet * p);
void infvsr_media_packet_free(struct infvsr_media_packet * p);
/* Decode time (else presentation time) in seconds; NAN when the packet has neither. */
double infvsr_media_packet_seconds(const struct infvsr_media_packet * p);
int    infvsr_media_packet_size(const struct infvsr_media_packet * p);

/* pts in the opts' time base; INFVSR_MEDIA_NOPTS numbers frames at the frame rate. */
enum infvsr_status infvsr_media_writer_write(struct infvsr_media_writer * w, const uint8_t * rgb, int64_t pts,
                                             struct infvsr_err * err);
/* An infvsr_media_packet_sink (user = the writer). */
enum infvsr_status infvsr_media_writer_copy_packet_sink(void * writer, const struct infvsr_media_packet * pkt,
                                                        struct infvsr_err * err);
/* Flushes the encoder, writes the trailer, renames the temp file to the path, frees w.
 * On failure the temp file is removed and nothing exists under the path. */
enum infvsr_status infvsr_media_writer_finish(struct infvsr_media_writer * w, struct infvsr_err * err);
/* Gives up: removes the temp file, frees w. */
void infvsr_media_writer_abort(struct infvsr_media_writer * w);
int64_t infvsr_media_writer_frames_written(const struct infvsr_media_writer * w);
int     infvsr_media_writer_copied_streams(const struct infvsr_media_writer * w);
/* Copied packets whose timestamps were fixed up (returned) or that were dropped (*dropped,
 * may be NULL) because they were missing or not increasing, as on a corrupt input. */
int64_t infvsr_media_writer_copied_packets_fixed(const struct infvsr_media_writer * w, int64_t * dropped);

/* Writes one RGB24 frame (w x h, rows packed) as a PNG file: "<path>.tmp", then renamed
 * to `path` (readers never see a partial file). For previews: fast compression. */
enum infvsr_status infvsr_media_png_write(const char * path, const uint8_t * rgb, int w, int h, struct infvsr_err * err);

#ifdef __cplusplus
}
#endif
