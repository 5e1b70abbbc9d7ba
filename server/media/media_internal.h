/* Shared between media_reader.c and media_writer.c; not part of the public API. */
#pragma once

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>

#include "media.h"

struct infvsr_media_packet {
    const AVPacket * pkt;
    int              copy_index; /* 0..n_copy_streams-1, the reader's numbering */
    AVRational       time_base;  /* of pkt's timestamps */
};

/* Codec parameters and time base of copy stream i of a reader (for the writer). */
const AVCodecParameters * infvsr_media_reader_copy_stream(const struct infvsr_media_reader * r, int i,
                                                          AVRational * time_base);

/* An FFmpeg error while demuxing or decoding an input, as "<what>: <what the code means for
 * an input> (FFmpeg: <its text>)" (media_errors.c). INFVSR_ERR_FORMAT for faults of the
 * input; INFVSR_ERR_IO only when `read_failed` (the input's own bytes could not be read);
 * INFVSR_ERR_CANCELLED for AVERROR_EXIT (an interrupt). */
enum infvsr_status infvsr_media_input_err(struct infvsr_err * err, int averr, bool read_failed, const char * what);

/* Records an FFmpeg error code as "<what>: <av_strerror text>". */
enum infvsr_status infvsr_media_av_err(struct infvsr_err * err, enum infvsr_status st, int averr,
                                       const char * what);
