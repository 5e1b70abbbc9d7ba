/* The resume state of `infvsr submit`, kept next to OUT as OUT.infvsr-submit.json: which
 * server and job, the tus upload URL, the Idempotency-Key of the creation and the identity of
 * the input (size, mtime, SHA-256 of its first and last MiB). A second run with the same IN,
 * OUT and options finds the job again and continues from the server's upload offset and
 * from the bytes already in OUT.part; a changed input is never appended to an old upload.
 * Written to a temporary file and renamed, so a kill leaves the old or the new state. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "infvsr/sha256.h"
#include "media.h"
#include "submit.h"

#define IDENTITY_SPAN (1 << 20)

static bool hash_range(int fd, int64_t off, int64_t len, char hex[65]) {
    struct infvsr_sha256 h;
    infvsr_sha256_init(&h);
    char buf[65536];
    while (len > 0) {
        size_t want = len < (int64_t)sizeof buf ? (size_t)len : sizeof buf;
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got <= 0) return false;
        infvsr_sha256_update(&h, buf, (size_t)got);
        off += got, len -= got;
    }
    uint8_t d[INFVSR_SHA256_SIZE];
    infvsr_sha256_final(&h, d);
    for (int i = 0; i < INFVSR_SHA256_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return true;
}

int sb_input_identify(const char * path, struct sb_input * in, char * err, size_t errlen) {
    memset(in, 0, sizeof *in);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
        /* tus needs Upload-Length before the first byte: a pipe cannot be resumed */
        snprintf(err, errlen, "%s: not a non-empty regular file (a pipe cannot be uploaded resumably; "
                              "use curl -T - with PUT for live input)", path);
        close(fd);
        return -1;
    }
    in->size = st.st_size;
    in->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    int64_t span = in->size < IDENTITY_SPAN ? in->size : IDENTITY_SPAN;
    bool ok = hash_range(fd, 0, span, in->head_sha) && hash_range(fd, in->size - span, span, in->tail_sha);
    close(fd);
    if (!ok) {
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    /* The frame count for the ETA: the container's, else duration x rate. Probing is the
     * server's job; a file FFmpeg cannot open here is still sent (the server's 422 says why). */
    in->frames = -1;
    struct infvsr_media_limits lim = infvsr_media_limits_default();
    struct infvsr_media_reader * r = NULL;
    struct infvsr_err e = { 0 };
    if (infvsr_media_reader_open_file(path, &lim, &r, &e) == INFVSR_OK) {
        const struct infvsr_media_info * mi = infvsr_media_reader_info(r);
        if (mi->nframes > 0) in->frames = mi->nframes;
        else if (mi->duration_s > 0 && mi->fps > 0) in->frames = (int64_t)(mi->duration_s * mi->fps + 0.5);
        infvsr_media_reader_close(r);
    }
    return 0;
}

static void get_str(json_t * o, const char * k, char * dst, size_t cap) {
    const char * v = json_string_value(json_object_get(o, k));
    snprintf(dst, cap, "%s", v ? v : "");
}

bool sb_state_load(const char * path, struct sb_state * st) {
    memset(st, 0, sizeof *st);
    json_t * j = json_load_file(path, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return false;
    }
    get_str(j, "server", st->server, sizeof st->server);
    get_str(j, "base", st->base, sizeof st->base);
    get_str(j, "idempotency_key", st->idem_key, sizeof st->idem_key);
    get_str(j, "spec", st->spec, sizeof st->spec);
    get_str(j, "job_id", st->job_id, sizeof st->job_id);
    get_str(j, "upload_url", st->upload_url, sizeof st->upload_url);
    json_t * in = json_object_get(j, "input");
    st->in.size = json_integer_value(json_object_get(in, "size"));
    st->in.mtime_ns = json_integer_value(json_object_get(in, "mtime_ns"));
    get_str(in, "head_sha256", st->in.head_sha, sizeof st->in.head_sha);
    get_str(in, "tail_sha256", st->in.tail_sha, sizeof st->in.tail_sha);
    json_decref(j);
    return st->server[0] && st->idem_key[0] && st->in.size > 0;
}

int sb_state_save(const char * path, const struct sb_state * st) {
    json_t * j = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:I,s:I,s:s,s:s}}", "version", 1, "server", st->server,
                           "base", st->base, "idempotency_key", st->idem_key, "spec", st->spec, "job_id", st->job_id,
                           "upload_url", st->upload_url, "input", "size", (json_int_t)st->in.size, "mtime_ns",
                           (json_int_t)st->in.mtime_ns, "head_sha256", st->in.head_sha, "tail_sha256",
                           st->in.tail_sha);
    if (!j) return -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(j, tmp, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}
