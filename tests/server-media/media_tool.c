/* Test driver for server/media (used by media_test.py): decodes and re-encodes videos
 * without a model, prints what it saw, and reports errors as "error: <status>: <msg>".
 *
 *   media_tool info IN
 *   media_tool rgbmd5 IN [--io]                 md5 of all RGB24 frames, frame count
 *   media_tool transcode IN OUT h264|ffv1|y4m [--lossless] [--io]
 *   media_tool abort OUT                        open a writer, write 2 frames, abort
 *   media_tool chunks IN OUT.mkv                reader -> chunker (scene detection) ->
 *                                               FFV1 writer with the frames' pts and the
 *                                               audio copied; prints each chunk
 *
 * --formats LIST sets the demuxer whitelist (comma-separated FFmpeg demuxer names);
 * --interrupt makes the interrupt callback ask FFmpeg to stop at once.
 * --io reads the input through the callback interface (no seek), the way an upload is
 * fed to the reader; --io-seek also provides the seek callback. transcode prints the
 * process's peak RSS so that the test can check memory does not grow with length. */
#include <libavutil/log.h>
#include <libavutil/md5.h>
#include <libavutil/mem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "infvsr/chunker.h"
#include "media.h"

struct file_io {
    FILE * f;
};

static int file_read(void * opaque, uint8_t * buf, int size) {
    struct file_io * io = opaque;
    size_t n = fread(buf, 1, (size_t)size, io->f);
    return ferror(io->f) ? -1 : (int)n;
}

static int fail(const struct infvsr_err * err) {
    fprintf(stderr, "error: %s: %s\n", infvsr_status_str(err->status), err->msg);
    return 1;
}

static const char * format_whitelist;
static bool io_seekable;
static bool interrupt_now;

static int interrupt_cb(void * user) { return *(const bool *)user; }

static int64_t file_seek(void * opaque, int64_t offset, int whence) {
    struct file_io * io = opaque;
    if (whence == 0x10000) { /* AVSEEK_SIZE */
        off_t cur = ftello(io->f);
        if (fseeko(io->f, 0, SEEK_END) != 0) return -1;
        off_t size = ftello(io->f);
        return fseeko(io->f, cur, SEEK_SET) == 0 ? (int64_t)size : -1;
    }
    if (fseeko(io->f, (off_t)offset, whence) != 0) return -1;
    return (int64_t)ftello(io->f);
}

static enum infvsr_status open_input(const char * path, bool via_io, struct file_io * fio,
                                     struct infvsr_media_reader ** r, struct infvsr_err * err) {
    struct infvsr_media_limits lim = infvsr_media_limits_default();
    lim.format_whitelist = format_whitelist;
    lim.interrupt = interrupt_cb;
    lim.interrupt_user = &interrupt_now;
    if (!via_io) return infvsr_media_reader_open_file(path, &lim, r, err);
    fio->f = fopen(path, "rb");
    if (!fio->f) return infvsr_err_set(err, INFVSR_ERR_IO, "cannot open %s", path);
    struct infvsr_media_io io = { .opaque = fio, .read = file_read, .seek = io_seekable ? file_seek : NULL };
    return infvsr_media_reader_open_io(&io, &lim, r, err);
}

static bool has_flag(int argc, char ** argv, const char * flag) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], flag) == 0) return true;
    return false;
}

static int cmd_info(const char * in) {
    struct infvsr_err err = { 0 };
    struct infvsr_media_reader * r = NULL;
    if (infvsr_media_reader_open_file(in, NULL, &r, &err) != INFVSR_OK) return fail(&err);
    const struct infvsr_media_info * i = infvsr_media_reader_info(r);
    printf("width=%d\nheight=%d\nfps=%.17g\nfps_q=%d/%d\ntb=%d/%d\nnframes=%lld\ncopy_streams=%d\nformat=%s\ncodec=%s\n",
           i->width, i->height, i->fps, i->fps_num, i->fps_den, i->tb_num, i->tb_den, (long long)i->nframes,
           i->n_copy_streams, i->format_name, i->codec_name);
    infvsr_media_reader_close(r);
    return 0;
}

static int cmd_rgbmd5(const char * in, bool via_io) {
    struct infvsr_err err = { 0 };
    struct file_io fio = { 0 };
    struct infvsr_media_reader * r = NULL;
    int rc = 1;
    uint8_t * rgb = NULL;
    struct AVMD5 * md5 = av_md5_alloc();
    if (open_input(in, via_io, &fio, &r, &err) != INFVSR_OK) goto out;
    const struct infvsr_media_info * info = infvsr_media_reader_info(r);
    size_t bytes = (size_t)info->width * info->height * 3;
    rgb = malloc(bytes);
    av_md5_init(md5);
    int st;
    int64_t pts;
    while ((st = infvsr_media_reader_next(r, rgb, &pts, &err)) == INFVSR_OK) av_md5_update(md5, rgb, bytes);
    if (st != INFVSR_MEDIA_EOF) goto out;
    uint8_t d[16];
    av_md5_final(md5, d);
    printf("md5=");
    for (int k = 0; k < 16; k++) printf("%02x", d[k]);
    printf("\nframes=%lld\n", (long long)infvsr_media_reader_frames_read(r));
    rc = 0;
out:
    if (rc) fail(&err);
    infvsr_media_reader_close(r);
    if (fio.f) fclose(fio.f);
    free(rgb);
    av_free(md5);
    return rc;
}

static int cmd_transcode(const char * in, const char * out, const char * codec, bool lossless, bool via_io) {
    struct infvsr_err err = { 0 };
    struct file_io fio = { 0 };
    struct infvsr_media_reader * r = NULL;
    struct infvsr_media_writer * w = NULL;
    uint8_t * rgb = NULL;
    enum infvsr_media_codec c = strcmp(codec, "ffv1") == 0 ? INFVSR_CODEC_FFV1
                              : strcmp(codec, "y4m") == 0  ? INFVSR_CODEC_Y4M
                                                           : INFVSR_CODEC_H264;
    if (open_input(in, via_io, &fio, &r, &err) != INFVSR_OK) goto fail;
    const struct infvsr_media_info * info = infvsr_media_reader_info(r);
    struct infvsr_media_writer_opts wo = infvsr_media_writer_opts_for(info, c);
    wo.lossless = lossless;
    wo.copy_from = r;
    if (infvsr_media_writer_open(out, &wo, &w, &err) != INFVSR_OK) goto fail;
    infvsr_media_reader_set_packet_sink(r, infvsr_media_writer_copy_packet_sink, w);
    rgb = malloc((size_t)info->width * info->height * 3);
    int st;
    int64_t pts;
    while ((st = infvsr_media_reader_next(r, rgb, &pts, &err)) == INFVSR_OK)
        if (infvsr_media_writer_write(w, rgb, pts, &err) != INFVSR_OK) goto fail;
    if (st != INFVSR_MEDIA_EOF) goto fail;
    int64_t frames = infvsr_media_writer_frames_written(w);
    int copied = infvsr_media_writer_copied_streams(w);
    int64_t copied_dropped = 0;
    int64_t copied_fixed = infvsr_media_writer_copied_packets_fixed(w, &copied_dropped);
    enum infvsr_status fst = infvsr_media_writer_finish(w, &err);
    w = NULL;
    if (fst != INFVSR_OK) goto fail;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
#ifdef __SANITIZE_ADDRESS__
    const int asan = 1; /* its quarantine keeps freed memory resident: RSS means little */
#else
    const int asan = 0;
#endif
    printf("frames=%lld\ncopied_streams=%d\npeak_rss_kb=%ld\nasan=%d\ncopied_fixed=%lld\ncopied_dropped=%lld\n",
           (long long)frames, copied, ru.ru_maxrss, asan, (long long)copied_fixed, (long long)copied_dropped);
    infvsr_media_reader_close(r);
    if (fio.f) fclose(fio.f);
    free(rgb);
    return 0;
fail:
    fail(&err);
    infvsr_media_writer_abort(w);
    infvsr_media_reader_close(r);
    if (fio.f) fclose(fio.f);
    free(rgb);
    return 1;
}

static int cmd_abort(const char * out) {
    struct infvsr_err err = { 0 };
    struct infvsr_media_writer_opts wo = infvsr_media_writer_opts_for(NULL, INFVSR_CODEC_H264);
    wo.width = 64;
    wo.height = 48;
    wo.fps = 25;
    struct infvsr_media_writer * w = NULL;
    if (infvsr_media_writer_open(out, &wo, &w, &err) != INFVSR_OK) return fail(&err);
    uint8_t * rgb = calloc(64 * 48 * 3, 1);
    for (int i = 0; i < 2; i++)
        if (infvsr_media_writer_write(w, rgb, INFVSR_MEDIA_NOPTS, &err) != INFVSR_OK) {
            free(rgb);
            infvsr_media_writer_abort(w);
            return fail(&err);
        }
    free(rgb);
    infvsr_media_writer_abort(w);
    printf("aborted\n");
    return 0;
}

/* The pipeline's data path with an identity model: what the daemon will do around the
 * DiT/VAE, minus upscaling. */
static int cmd_chunks(const char * in, const char * out) {
    struct infvsr_err err = { 0 };
    struct infvsr_media_reader * r = NULL;
    struct infvsr_media_writer * w = NULL;
    struct infvsr_chunker * ch = NULL;
    uint8_t * rgb = NULL;
    if (infvsr_media_reader_open_file(in, NULL, &r, &err) != INFVSR_OK) goto fail;
    const struct infvsr_media_info * info = infvsr_media_reader_info(r);
    struct infvsr_media_writer_opts wo = infvsr_media_writer_opts_for(info, INFVSR_CODEC_FFV1);
    wo.copy_from = r;
    if (infvsr_media_writer_open(out, &wo, &w, &err) != INFVSR_OK) goto fail;
    infvsr_media_reader_set_packet_sink(r, infvsr_media_writer_copy_packet_sink, w);
    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(info->width, info->height);
    if (infvsr_chunker_create(&cfg, &ch, &err) != INFVSR_OK) goto fail;
    size_t bytes = (size_t)info->width * info->height * 3;
    for (bool done = false; !done;) {
        rgb = malloc(bytes);
        int64_t pts;
        int st = rgb ? infvsr_media_reader_next(r, rgb, &pts, &err) : infvsr_err_set(&err, INFVSR_ERR_NOMEM, "oom");
        if (st == INFVSR_OK) {
            if (infvsr_chunker_push_pts(ch, rgb, pts, &err) != INFVSR_OK) goto fail;
            rgb = NULL; /* owned by the chunker now */
        } else if (st == INFVSR_MEDIA_EOF) {
            free(rgb);
            rgb = NULL;
            if (infvsr_chunker_finish(ch, &err) != INFVSR_OK) goto fail;
            done = true;
        } else {
            goto fail;
        }
        struct infvsr_chunk c;
        while (infvsr_chunker_pop(ch, &c)) {
            printf("chunk=%lld,%d,%d,%d\n", (long long)c.first, c.n, c.new_scene, c.update);
            for (int i = 0; i < c.n; i++) {
                if (infvsr_media_writer_write(w, c.frames[i], c.pts[i], &err) != INFVSR_OK) {
                    infvsr_chunk_release(&c);
                    goto fail;
                }
            }
            infvsr_chunk_release(&c);
        }
    }
    enum infvsr_status fst = infvsr_media_writer_finish(w, &err);
    w = NULL;
    if (fst != INFVSR_OK) goto fail;
    infvsr_chunker_destroy(ch);
    infvsr_media_reader_close(r);
    return 0;
fail:
    fail(&err);
    free(rgb);
    infvsr_chunker_destroy(ch);
    infvsr_media_writer_abort(w);
    infvsr_media_reader_close(r);
    return 1;
}

int main(int argc, char ** argv) {
    av_log_set_level(AV_LOG_ERROR);
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--formats") == 0) format_whitelist = argv[i + 1];
    io_seekable = has_flag(argc, argv, "--io-seek");
    interrupt_now = has_flag(argc, argv, "--interrupt");
    if (argc >= 3 && strcmp(argv[1], "info") == 0) return cmd_info(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "rgbmd5") == 0) return cmd_rgbmd5(argv[2], has_flag(argc, argv, "--io") || io_seekable);
    if (argc >= 5 && strcmp(argv[1], "transcode") == 0)
        return cmd_transcode(argv[2], argv[3], argv[4], has_flag(argc, argv, "--lossless"),
                             has_flag(argc, argv, "--io") || io_seekable);
    if (argc >= 3 && strcmp(argv[1], "abort") == 0) return cmd_abort(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "chunks") == 0) return cmd_chunks(argv[2], argv[3]);
    fprintf(stderr, "usage: media_tool info|rgbmd5|transcode|abort|chunks ...\n");
    return 2;
}
