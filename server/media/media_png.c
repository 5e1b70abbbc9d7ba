/* One RGB24 frame to a PNG file (FFmpeg's png encoder): the frame previews of infvsrd.
 * Written to "<path>.tmp" and renamed, so a reader never sees half a file. */
#include <errno.h>
#include <fcntl.h>
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "media.h"

static enum infvsr_status write_all(int fd, const uint8_t * p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return INFVSR_ERR_IO;
        p += k;
        n -= (size_t)k;
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr_media_png_write(const char * path, const uint8_t * rgb, int w, int h, struct infvsr_err * err) {
    if (!path || !rgb || w <= 0 || h <= 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "png: bad arguments");
    const AVCodec * codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec) return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "png: FFmpeg was built without the png encoder");
    enum infvsr_status st = INFVSR_OK;
    AVCodecContext * c = avcodec_alloc_context3(codec);
    AVFrame * f = av_frame_alloc();
    AVPacket * pkt = av_packet_alloc();
    char * tmp = NULL;
    int fd = -1;
    if (!c || !f || !pkt) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "png: out of memory");
        goto out;
    }
    c->width = w;
    c->height = h;
    c->pix_fmt = AV_PIX_FMT_RGB24;
    c->time_base = (AVRational){ 1, 1 };
    c->compression_level = 3; /* previews: fast beats small (level 9 is ~4x slower, ~10% smaller) */
    if (avcodec_open2(c, codec, NULL) < 0) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "png: cannot open the encoder");
        goto out;
    }
    /* the frame points at the caller's pixels: no copy */
    f->format = AV_PIX_FMT_RGB24;
    f->width = w;
    f->height = h;
    f->data[0] = (uint8_t *)rgb;
    f->linesize[0] = w * 3;
    if (avcodec_send_frame(c, f) < 0 || avcodec_send_frame(c, NULL) < 0 || avcodec_receive_packet(c, pkt) < 0) {
        st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "png: encoding failed");
        goto out;
    }
    size_t n = strlen(path) + 5;
    tmp = malloc(n);
    if (!tmp) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "png: out of memory");
        goto out;
    }
    snprintf(tmp, n, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, pkt->data, (size_t)pkt->size) != INFVSR_OK || close(fd) != 0) {
        int e = errno;
        if (fd >= 0) unlink(tmp);
        st = infvsr_err_set(err, INFVSR_ERR_IO, "png: cannot write %.200s: %s", tmp, strerror(e));
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        st = infvsr_err_set(err, INFVSR_ERR_IO, "png: cannot rename to %.200s: %s", path, strerror(e));
    }
out:
    free(tmp);
    av_packet_free(&pkt);
    av_frame_free(&f); /* data[0] is not reference counted: only the struct goes */
    avcodec_free_context(&c);
    return st;
}
