/* The three concurrent transfers of `infvsr submit`, on one thread with curl_multi:
 *
 * - upload: tus PATCHes of --chunk-size bytes from the server's offset. A broken PATCH (or a
 *   409 offset_mismatch, or a fresh start) is followed by a HEAD: the server keeps what
 *   arrived of a broken PATCH, so the next PATCH starts at its Upload-Offset, never at 0.
 * - events: GET /events (SSE). Progress only, plus the job's final state: its loss is
 *   retried and never fails the run.
 * - output: GET /output appended to OUT.part while the job runs. After a cut the request is
 *   repeated with `Range: bytes=N-` (N = bytes in OUT.part). The server honours Range once the
 *   job has succeeded (206); while it still runs it ignores Range and streams from byte 0
 *   (openapi.yaml), so a 200 answer is read from the start and its first N bytes are compared
 *   with OUT.part instead of written: equal, the stream goes on from N; different (the server
 *   re-ran the job after a restart), OUT.part starts again from 0.
 *
 * Errors: network failures and 429/503 follow sb_retry_decision; any other error answer ends
 * the run with the server's message. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "submit.h"

enum { X_UPLOAD, X_EVENTS, X_OUTPUT, X_N };
static const char * const xname[X_N] = { "upload", "events", "download" };

#define SB_GONE (-404) /* the job no longer exists: cmd_submit.c starts a new one (once) */

struct xfer {
    CURL *              h;
    struct curl_slist * hdrs;
    struct sb_resp      r;
    bool                running, done;
    double              start_at;
    struct sb_backoff   b;
};

struct tx {
    struct sb * s;
    CURLM *     m;
    struct xfer x[X_N];
    int         result;   /* exit code once fatal (0 while going on) */
    bool        reported; /* the reason has been printed (events, status and answers all tell a failure) */
    /* upload */
    int     in_fd;
    int64_t patch_start, patch_len, patch_pos;
    bool    need_head;
    /* events */
    char *  sse_line;
    size_t  sse_len, sse_cap;
    char    sse_event[32];
    char *  sse_data;
    size_t  sse_data_len;
    bool    job_final;
    /* output */
    int     part_fd;
    long    out_status;     /* status of the current output response, 0 before its first byte */
    int64_t skip;           /* bytes of a 200 re-stream still to compare with OUT.part */
    bool    mismatch;       /* a re-stream differs from OUT.part, or a 206 starts elsewhere */
    int64_t resume_from;    /* out_bytes when the current request started */
};

/* ---- helpers ------------------------------------------------------------------------------ */

static struct curl_slist * base_headers(const struct sb * s) {
    struct curl_slist * l = NULL;
    for (struct curl_slist * a = s->auth; a; a = a->next) l = curl_slist_append(l, a->data);
    return l;
}

static void job_url(const struct sb * s, const char * suffix, char * out, size_t cap) {
    snprintf(out, cap, "%s/v1/jobs/%s%s", s->st.base, s->st.job_id, suffix);
}

static void set_fatal(struct tx * t, int code) {
    if (!t->result) t->result = code;
}

static int fatal_resp(struct tx * t, const char * what, const struct sb_resp * r) {
    char why[700];
    sb_describe(r, why, sizeof why);
    if (r->status == 404) {
        set_fatal(t, SB_GONE);
        return t->result;
    }
    int code = sb_exit_for(r);
    /* the job itself ended (input not a video, spool full, cancelled or deleted): a rerun
     * must not resume it */
    if (r->status == 422 || r->status == 507 || r->status == 410) t->s->job_failed = true;
    if (!t->reported)
        fprintf(stderr, "infvsr submit: %s: %s%s\n", what, why, code == SB_EXIT_AUTH ? " (check --token / INFVSR_TOKEN)" : "");
    t->reported = true;
    set_fatal(t, code);
    return t->result;
}

/* Schedules a retry of x after `w` seconds, or ends the run (the decision's exit code). */
static void retry_or_fail(struct tx * t, int k, const struct sb_resp * r) {
    double w;
    int d = sb_retry_decision(t->s, xname[k], r, &t->x[k].b, &w);
    if (d == SB_RETRY) t->x[k].start_at = sb_now() + w;
    else if (d == 0) fatal_resp(t, xname[k], r);
    else set_fatal(t, d);
}

/* Reads the job object of an SSE event or a status answer into the progress fields. */
static void apply_job(struct tx * t, json_t * j) {
    struct sb * s = t->s;
    const char * st = json_string_value(json_object_get(j, "state"));
    if (st) snprintf(s->job_state, sizeof s->job_state, "%s", st);
    json_t * v;
    if ((v = json_object_get(j, "frames_in")) && json_is_integer(v)) s->frames_in = json_integer_value(v);
    if ((v = json_object_get(j, "frames_out")) && json_is_integer(v)) s->frames_out = json_integer_value(v);
    if ((v = json_object_get(j, "fps")) && json_is_number(v)) s->fps = json_number_value(v);
    if ((v = json_object_get(json_object_get(j, "output"), "bytes")) && json_is_integer(v))
        s->out_bytes_server = json_integer_value(v);
    if (st && (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0)) {
        json_t * e = json_object_get(j, "error");
        if (!t->reported)
            fprintf(stderr, "infvsr submit: job %s %s: %s: %s\n", s->st.job_id, st,
                    json_string_value(json_object_get(e, "code")) ?: "-",
                    json_string_value(json_object_get(e, "message")) ?: "-");
        t->reported = true;
        t->job_final = s->job_failed = true;
        set_fatal(t, SB_EXIT_FAILED);
    } else if (st && strcmp(st, "succeeded") == 0) {
        t->job_final = true;
    }
}

/* GET the job's status now (after a cut output stream: did the job fail?). */
static void refresh_status(struct tx * t) {
    char url[1400];
    job_url(t->s, "", url, sizeof url);
    struct sb_resp r = { 0 };
    sb_request(t->s, "GET", url, NULL, NULL, 0, &r);
    if (r.status == 200 && r.body) {
        json_t * j = json_loads(r.body, 0, NULL);
        apply_job(t, j);
        json_decref(j);
    } else if (r.status == 404) {
        set_fatal(t, SB_GONE);
    }
    sb_resp_free(&r);
}

/* ---- upload ------------------------------------------------------------------------------- */

static size_t up_read(char * buf, size_t size, size_t n, void * ud) {
    struct tx * t = ud;
    int64_t left = t->patch_len - t->patch_pos;
    size_t want = size * n < (size_t)left ? size * n : (size_t)left;
    if (want == 0) return 0;
    ssize_t got = pread(t->in_fd, buf, want, (off_t)(t->patch_start + t->patch_pos));
    if (got <= 0) return CURL_READFUNC_ABORT; /* the input shrank or a read error */
    t->patch_pos += got;
    return (size_t)got;
}

static int up_seek(void * ud, curl_off_t off, int origin) {
    struct tx * t = ud;
    if (origin != SEEK_SET || off < 0 || off > t->patch_len) return CURL_SEEKFUNC_FAIL;
    t->patch_pos = off; /* a 307 to the owner sends the same body again */
    return CURL_SEEKFUNC_OK;
}

static int up_progress(void * ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal;
    struct tx * t = ud;
    t->s->upload_sent = t->patch_start + ulnow;
    return 0;
}

/* HEAD: the server's offset. false when the run must wait (retry scheduled) or stop. */
static bool upload_head(struct tx * t) {
    struct sb * s = t->s;
    struct sb_resp r = { 0 };
    const char * hdrs[] = { "Tus-Resumable: 1.0.0", NULL };
    sb_request(s, "HEAD", s->st.upload_url, hdrs, NULL, 0, &r);
    bool ok = false;
    if (r.status == 200 && r.upload_offset >= 0 && r.upload_offset <= s->st.in.size) {
        s->upload_done = s->upload_sent = r.upload_offset;
        t->need_head = false;
        t->x[X_UPLOAD].b.net_since = 0;
        sb_event(s, "{\"event\":\"upload_offset\",\"offset\":%" PRId64 ",\"length\":%" PRId64 "}", r.upload_offset,
                 s->st.in.size);
        if (r.upload_offset > 0 && r.upload_offset < s->st.in.size)
            sb_note(s, "upload resumes at byte %" PRId64 " of %" PRId64, r.upload_offset, s->st.in.size);
        ok = true;
    } else if (r.status == 200) {
        fprintf(stderr, "infvsr submit: HEAD %s: Upload-Offset missing or outside [0, %" PRId64 "]\n",
                s->st.upload_url, s->st.in.size);
        set_fatal(t, SB_EXIT_FAILED);
    } else {
        retry_or_fail(t, X_UPLOAD, &r);
    }
    sb_resp_free(&r);
    return ok;
}

static bool upload_start(struct tx * t) {
    struct sb * s = t->s;
    struct xfer * x = &t->x[X_UPLOAD];
    if (t->need_head && !upload_head(t)) return false;
    if (s->upload_done >= s->st.in.size) {
        x->done = true;
        return false;
    }
    t->patch_start = s->upload_done;
    t->patch_len = s->st.in.size - t->patch_start;
    if (t->patch_len > s->o->chunk_size) t->patch_len = s->o->chunk_size;
    t->patch_pos = 0;
    sb_resp_reset(&x->r);
    x->hdrs = base_headers(s);
    char off[64];
    snprintf(off, sizeof off, "Upload-Offset: %" PRId64, t->patch_start);
    x->hdrs = curl_slist_append(x->hdrs, "Tus-Resumable: 1.0.0");
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/offset+octet-stream");
    x->hdrs = curl_slist_append(x->hdrs, off);
    x->hdrs = curl_slist_append(x->hdrs, "Expect:"); /* no 100-continue round trip */
    x->h = sb_easy(s, s->st.upload_url, x->hdrs, &x->r);
    if (!x->h) {
        set_fatal(t, SB_EXIT_FAILED);
        return false;
    }
    curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "PATCH");
    curl_easy_setopt(x->h, CURLOPT_READFUNCTION, up_read);
    curl_easy_setopt(x->h, CURLOPT_READDATA, t);
    curl_easy_setopt(x->h, CURLOPT_SEEKFUNCTION, up_seek);
    curl_easy_setopt(x->h, CURLOPT_SEEKDATA, t);
    curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)t->patch_len);
    curl_easy_setopt(x->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(x->h, CURLOPT_XFERINFOFUNCTION, up_progress);
    curl_easy_setopt(x->h, CURLOPT_XFERINFODATA, t);
    if (s->o->limit_rate > 0) {
        curl_easy_setopt(x->h, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)s->o->limit_rate);
        /* curl paces per buffer: the smallest one (16 KiB) keeps bursts short */
        curl_easy_setopt(x->h, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    }
    sb_event(s, "{\"event\":\"patch\",\"offset\":%" PRId64 ",\"bytes\":%" PRId64 "}", t->patch_start, t->patch_len);
    return true;
}

static void upload_done(struct tx * t, CURLcode rc) {
    struct sb * s = t->s;
    struct xfer * x = &t->x[X_UPLOAD];
    sb_resp_finish(s, x->h, rc, &x->r);
    if (rc == CURLE_OK && x->r.status == 204) {
        x->b.net_since = 0;
        int64_t off = x->r.upload_offset;
        if (off == t->patch_start + t->patch_len) {
            s->upload_done = s->upload_sent = off;
            if (off >= s->st.in.size) {
                x->done = true;
                sb_event(s, "{\"event\":\"uploaded\",\"bytes\":%" PRId64 "}", off);
            }
        } else {
            t->need_head = true; /* the answer does not add up: ask */
        }
        x->start_at = 0;
        return;
    }
    char code[48];
    sb_error_code(&x->r, code, sizeof code);
    if (x->r.status == 409 && strcmp(code, "offset_mismatch") == 0) {
        t->need_head = true;
        x->start_at = 0;
        return;
    }
    t->need_head = true; /* whatever happened, the next PATCH starts at the server's offset */
    if (x->r.status == 0) {
        sb_event(s, "{\"event\":\"upload_cut\",\"sent_to\":%" PRId64 "}", s->upload_sent);
    }
    retry_or_fail(t, X_UPLOAD, &x->r);
}

/* ---- events ------------------------------------------------------------------------------- */

static void sse_dispatch(struct tx * t) {
    if (!t->sse_data_len) return;
    json_t * j = json_loadb(t->sse_data, t->sse_data_len, 0, NULL);
    if (strcmp(t->sse_event, "progress") == 0 || strcmp(t->sse_event, "done") == 0) {
        if (json_object_size(j) > 0) apply_job(t, j);
        if (strcmp(t->sse_event, "done") == 0) {
            t->job_final = true;
            if (json_object_size(j) == 0) { /* `{}`: someone deleted the job; not started again */
                if (!t->reported) fprintf(stderr, "infvsr submit: job %s was deleted on the server\n", t->s->st.job_id);
                t->reported = t->s->job_failed = true;
                set_fatal(t, SB_EXIT_FAILED);
            }
        }
        sb_progress(t->s, false);
    } else if (strcmp(t->sse_event, "error") == 0) {
        json_t * e = json_object_get(j, "error");
        if (!t->reported)
            fprintf(stderr, "infvsr submit: job %s failed: %s: %s\n", t->s->st.job_id,
                    json_string_value(json_object_get(e, "code")) ?: "-",
                    json_string_value(json_object_get(e, "message")) ?: "-");
        t->reported = true;
        t->job_final = t->s->job_failed = true;
        set_fatal(t, SB_EXIT_FAILED);
    }
    json_decref(j);
    t->sse_data_len = 0;
}

static void sse_line(struct tx * t, const char * line, size_t n) {
    if (n == 0) {
        sse_dispatch(t);
        snprintf(t->sse_event, sizeof t->sse_event, "message");
        return;
    }
    if (line[0] == ':') return; /* keep-alive comment */
    const char * colon = memchr(line, ':', n);
    size_t kl = colon ? (size_t)(colon - line) : n;
    const char * v = colon ? colon + 1 : line + n;
    size_t vl = colon ? n - kl - 1 : 0;
    if (vl && *v == ' ') v++, vl--;
    if (kl == 5 && memcmp(line, "event", 5) == 0) {
        snprintf(t->sse_event, sizeof t->sse_event, "%.*s", (int)(vl < 31 ? vl : 31), v);
    } else if (kl == 4 && memcmp(line, "data", 4) == 0) {
        if (t->sse_data_len + vl + 1 > SB_BODY_MAX) return; /* an oversized event is dropped */
        char * p = realloc(t->sse_data, t->sse_data_len + vl + 2);
        if (!p) return;
        t->sse_data = p;
        if (t->sse_data_len) t->sse_data[t->sse_data_len++] = '\n';
        memcpy(t->sse_data + t->sse_data_len, v, vl);
        t->sse_data_len += vl;
    }
}

static size_t ev_write(char * buf, size_t size, size_t n, void * ud) {
    struct tx * t = ud;
    struct xfer * x = &t->x[X_EVENTS];
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) { /* an error body: kept for the message */
        return sb_resp_append(&x->r, buf, len);
    }
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n') {
            size_t l = t->sse_len;
            if (l && t->sse_line[l - 1] == '\r') l--;
            sse_line(t, t->sse_line ? t->sse_line : "", l);
            t->sse_len = 0;
            continue;
        }
        if (t->sse_len + 1 >= t->sse_cap) {
            if (t->sse_cap >= SB_BODY_MAX) continue; /* an absurd line is cut */
            size_t cap = t->sse_cap ? t->sse_cap * 2 : 4096;
            char * p = realloc(t->sse_line, cap);
            if (!p) return 0;
            t->sse_line = p, t->sse_cap = cap;
        }
        t->sse_line[t->sse_len++] = c;
    }
    return len;
}

static bool events_start(struct tx * t) {
    struct sb * s = t->s;
    struct xfer * x = &t->x[X_EVENTS];
    char url[1400];
    job_url(s, "/events", url, sizeof url);
    sb_resp_reset(&x->r);
    t->sse_len = t->sse_data_len = 0;
    snprintf(t->sse_event, sizeof t->sse_event, "message");
    x->hdrs = base_headers(s);
    x->hdrs = curl_slist_append(x->hdrs, "Accept: text/event-stream");
    x->h = sb_easy(s, url, x->hdrs, &x->r);
    if (!x->h) return false;
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, ev_write);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, t);
    /* the server sends a comment every 15 s: a minute of silence is a dead connection */
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, 60L);
    return true;
}

static void events_done(struct tx * t, CURLcode rc) {
    struct xfer * x = &t->x[X_EVENTS];
    sb_resp_finish(t->s, x->h, rc, &x->r);
    if (t->job_final) {
        x->done = true;
        return;
    }
    long st = x->r.status;
    if (st == 401 || st == 403 || st == 404 || st == 410) {
        fatal_resp(t, "events", &x->r);
        return;
    }
    /* cut, or ended without `done`: progress is cosmetic, so reconnect with backoff and
     * never give up the run for it */
    double w = 0.5;
    for (int i = 0; i < x->b.net_tries && w < 10; i++) w *= 2;
    x->b.net_tries++;
    if (st == 429 || st == 503) w = x->r.retry_after_s > 0 ? x->r.retry_after_s : 5;
    x->start_at = sb_now() + (w > 10 ? 10 : w);
}

/* ---- output ------------------------------------------------------------------------------- */

/* Leading digits of p as a number, -1 when none or past 2^63 - 1; *end after them. */
static int64_t digits(const char * p, const char ** end) {
    int64_t v = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    *end = p;
    return v;
}

/* Content-Range "bytes a-b/size": a. -1 when malformed. */
static int64_t range_start(const char * cr) {
    if (strncmp(cr, "bytes ", 6) != 0) return -1;
    const char * end = NULL;
    int64_t v = digits(cr + 6, &end);
    return v >= 0 && *end == '-' ? v : -1;
}

static size_t out_write(char * buf, size_t size, size_t n, void * ud) {
    struct tx * t = ud;
    struct sb * s = t->s;
    struct xfer * x = &t->x[X_OUTPUT];
    size_t len = size * n;
    if (t->out_status == 0) {
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &t->out_status);
        if (t->out_status == 206) {
            if (range_start(x->r.content_range) != s->out_bytes) {
                t->mismatch = true;
                return 0;
            }
            t->skip = 0;
            sb_event(s, "{\"event\":\"download_resume\",\"offset\":%" PRId64 ",\"mode\":\"range\"}", s->out_bytes);
        } else if (t->out_status == 200) {
            t->skip = s->out_bytes;
            if (s->out_bytes > 0)
                sb_event(s, "{\"event\":\"download_resume\",\"offset\":%" PRId64 ",\"mode\":\"restream\"}",
                         s->out_bytes);
        }
    }
    if (t->out_status != 200 && t->out_status != 206) { /* an error body */
        return sb_resp_append(&x->r, buf, len);
    }
    size_t done = 0;
    while (t->skip > 0 && done < len) { /* a 200 re-stream: its start must equal OUT.part */
        char cmp[65536];
        size_t k = len - done < sizeof cmp ? len - done : sizeof cmp;
        if ((int64_t)k > t->skip) k = (size_t)t->skip;
        int64_t at = s->out_bytes - t->skip;
        if (pread(t->part_fd, cmp, k, (off_t)at) != (ssize_t)k || memcmp(cmp, buf + done, k) != 0) {
            t->mismatch = true;
            return 0;
        }
        t->skip -= (int64_t)k;
        done += k;
    }
    while (done < len) {
        ssize_t w = pwrite(t->part_fd, buf + done, len - done, (off_t)s->out_bytes);
        if (w <= 0) {
            fprintf(stderr, "infvsr submit: write %s: %s\n", s->part_path, strerror(errno));
            set_fatal(t, SB_EXIT_FAILED);
            return 0;
        }
        done += (size_t)w;
        s->out_bytes += w;
    }
    return len;
}

static bool output_start(struct tx * t) {
    struct sb * s = t->s;
    struct xfer * x = &t->x[X_OUTPUT];
    char url[1400], range[64];
    job_url(s, "/output", url, sizeof url);
    sb_resp_reset(&x->r);
    t->out_status = 0, t->skip = 0, t->mismatch = false;
    t->resume_from = s->out_bytes;
    x->hdrs = base_headers(s);
    if (s->out_bytes > 0) {
        snprintf(range, sizeof range, "Range: bytes=%" PRId64 "-", s->out_bytes);
        x->hdrs = curl_slist_append(x->hdrs, range);
    }
    x->h = sb_easy(s, url, x->hdrs, &x->r);
    if (!x->h) return false;
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, out_write);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, t);
    return true;
}

static void output_restart_from_zero(struct tx * t, const char * why) {
    struct sb * s = t->s;
    sb_note(s, "%s: %s starts again from byte 0", why, s->part_path);
    sb_event(s, "{\"event\":\"download_restart\",\"reason\":\"%s\"}", why);
    if (ftruncate(t->part_fd, 0) != 0) set_fatal(t, SB_EXIT_FAILED);
    s->out_bytes = 0;
    t->x[X_OUTPUT].start_at = 0;
}

static void output_done(struct tx * t, CURLcode rc) {
    struct sb * s = t->s;
    struct xfer * x = &t->x[X_OUTPUT];
    sb_resp_finish(s, x->h, rc, &x->r);
    if (t->result) return;
    long st = x->r.status;
    if (t->mismatch) {
        output_restart_from_zero(t, st == 206 ? "the server's range does not start where OUT.part ends"
                                              : "the server's output differs from OUT.part (job re-run?)");
        return;
    }
    if (rc == CURLE_OK && (st == 200 || st == 206)) {
        if (t->skip > 0) { /* the stream was shorter than what we had */
            output_restart_from_zero(t, "the server's output is shorter than OUT.part");
            return;
        }
        x->done = true;
        return;
    }
    if (st == 200 || st == 206 || (st == 0 && rc != CURLE_OK)) {
        /* cut mid-stream (network, or the server ended it because the job failed) */
        if (st != 0) {
            sb_event(s, "{\"event\":\"download_cut\",\"at\":%" PRId64 "}", s->out_bytes);
            sb_note(s, "download cut at byte %" PRId64 " (%s); resuming", s->out_bytes, x->r.curl_msg);
            refresh_status(t);
            if (t->result) return;
            if (s->out_bytes > t->resume_from) x->b.net_since = 0, x->b.net_tries = 0; /* progress was made */
            struct sb_resp cut = x->r;
            cut.status = 0; /* retried as a network failure */
            cut.body = NULL, cut.len = cut.cap = 0; /* the body stays with x->r */
            retry_or_fail(t, X_OUTPUT, &cut);
            return;
        }
        retry_or_fail(t, X_OUTPUT, &x->r);
        return;
    }
    if (st == 416) {
        /* a 416 whose Content-Range total equals what OUT.part holds: a run killed before the rename */
        const char * slash = strchr(x->r.content_range, '/'), * end = NULL;
        if (slash && s->out_bytes > 0 && digits(slash + 1, &end) == s->out_bytes && *end == 0) {
            x->done = true;
            return;
        }
        output_restart_from_zero(t, "the server has fewer bytes than OUT.part (416)");
        return;
    }
    char code[48];
    sb_error_code(&x->r, code, sizeof code);
    if (st == 409 && strcmp(code, "conflict") == 0 && !t->x[X_UPLOAD].done) {
        x->start_at = sb_now() + 1; /* the upload has not begun yet */
        return;
    }
    if (st == 503 && strstr(x->r.body ? x->r.body : "", "max_suspend_s")) {
        x->start_at = sb_now() + 1; /* nothing produced yet in the server's wait limit: ask again */
        return;
    }
    if (st == 429 || st == 503 || st == 502 || st == 504) {
        retry_or_fail(t, X_OUTPUT, &x->r);
        return;
    }
    fatal_resp(t, "download", &x->r);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void finish_xfer(struct tx * t, int k) {
    struct xfer * x = &t->x[k];
    if (x->h) {
        curl_multi_remove_handle(t->m, x->h);
        curl_easy_cleanup(x->h);
        x->h = NULL;
    }
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    x->running = false;
}

int sb_transfer(struct sb * s) {
    struct tx t = { .s = s, .need_head = true, .in_fd = -1, .part_fd = -1 };
    t.in_fd = open(s->o->in, O_RDONLY | O_CLOEXEC);
    t.part_fd = open(s->part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (t.in_fd < 0 || t.part_fd < 0) {
        fprintf(stderr, "infvsr submit: open %s: %s\n", t.in_fd < 0 ? s->o->in : s->part_path, strerror(errno));
        if (t.in_fd >= 0) close(t.in_fd);
        if (t.part_fd >= 0) close(t.part_fd);
        return SB_EXIT_FAILED;
    }
    struct stat ps;
    s->out_bytes = fstat(t.part_fd, &ps) == 0 ? ps.st_size : 0; /* a killed run's partial output */
    s->upload_done = s->upload_sent = 0;
    t.m = curl_multi_init();
    for (int k = 0; k < X_N; k++) sb_resp_reset(&t.x[k].r);
    while (!t.result && !(t.x[X_UPLOAD].done && t.x[X_OUTPUT].done)) {
        double now = sb_now();
        for (int k = 0; k < X_N && !t.result; k++) {
            struct xfer * x = &t.x[k];
            if (x->running || x->done || now < x->start_at) continue;
            bool ok = k == X_UPLOAD ? upload_start(&t) : k == X_EVENTS ? events_start(&t) : output_start(&t);
            if (ok) {
                curl_multi_add_handle(t.m, x->h);
                x->running = true;
            } else {
                finish_xfer(&t, k);
                if (k != X_UPLOAD && !t.result) x->start_at = now + 1;
            }
        }
        if (t.result) break;
        int still = 0;
        curl_multi_perform(t.m, &still);
        CURLMsg * msg;
        int left;
        while ((msg = curl_multi_info_read(t.m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            for (int k = 0; k < X_N; k++) {
                if (t.x[k].h != msg->easy_handle) continue;
                CURLcode rc = msg->data.result;
                if (k == X_UPLOAD) upload_done(&t, rc);
                else if (k == X_EVENTS) events_done(&t, rc);
                else output_done(&t, rc);
                finish_xfer(&t, k);
                break;
            }
        }
        sb_progress(s, false);
        curl_multi_poll(t.m, NULL, 0, 100, NULL);
    }
    for (int k = 0; k < X_N; k++) {
        finish_xfer(&t, k);
        sb_resp_free(&t.x[k].r);
    }
    curl_multi_cleanup(t.m);
    free(t.sse_line);
    free(t.sse_data);
    close(t.in_fd);
    close(t.part_fd);
    return t.result;
}
