/* Requests of `infvsr submit` on libcurl (why libcurl: submit.h): response capture, the
 * headers the protocol needs (Upload-Offset, Retry-After, Content-Range, Location) parsed
 * with overflow checks, error bodies turned into messages, progress lines. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "submit.h"

double sb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sb_sleep(double seconds) {
    if (seconds <= 0) return;
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void sb_resp_reset(struct sb_resp * r) {
    free(r->body);
    memset(r, 0, sizeof *r);
    r->upload_offset = r->content_length = -1;
    r->retry_after_s = -1;
}

void sb_resp_free(struct sb_resp * r) {
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}

/* Digits only, no sign, no overflow: a header number from the network. */
static bool parse_u63(const char * s, size_t n, int64_t * out) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) n--;
    if (n == 0) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static void copy_value(char * dst, size_t cap, const char * v, size_t n) {
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static size_t on_header(char * buf, size_t size, size_t n, void * ud) {
    struct sb_resp * r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) { /* a new response (after a 307 or a 100) */
        r->upload_offset = r->content_length = -1;
        r->retry_after_s = -1;
        r->location[0] = r->content_range[0] = 0;
        return len;
    }
    const char * colon = memchr(buf, ':', len);
    if (!colon) return len;
    size_t nl = (size_t)(colon - buf);
    const char * v = colon + 1;
    size_t vl = len - nl - 1;
    int64_t x;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(buf, name, nl) == 0)
    if (IS("Upload-Offset")) {
        r->upload_offset = parse_u63(v, vl, &x) ? x : -2; /* -2: present but not a number */
    } else if (IS("Content-Length")) {
        r->content_length = parse_u63(v, vl, &x) ? x : -1;
    } else if (IS("Retry-After")) {
        /* delta-seconds only (the daemon sends those); an HTTP date counts as absent */
        r->retry_after_s = parse_u63(v, vl, &x) ? (x > 86400 ? 86400 : (int)x) : -1;
    } else if (IS("Location")) {
        copy_value(r->location, sizeof r->location, v, vl);
    } else if (IS("Content-Range")) {
        copy_value(r->content_range, sizeof r->content_range, v, vl);
    }
#undef IS
    return len;
}

size_t sb_resp_append(struct sb_resp * r, const char * buf, size_t len) {
    if (r->len + len + 1 > r->cap) {
        if (r->len + len + 1 > SB_BODY_MAX) return len; /* keep the start; the rest is dropped */
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len + 1) cap *= 2;
        char * p = realloc(r->body, cap);
        if (!p) return 0; /* aborts the transfer: out of memory */
        r->body = p, r->cap = cap;
    }
    memcpy(r->body + r->len, buf, len);
    r->len += len;
    r->body[r->len] = 0;
    return len;
}

static size_t on_body(char * buf, size_t size, size_t n, void * ud) {
    return sb_resp_append(ud, buf, size * n);
}

CURL * sb_easy(const struct sb * s, const char * url, struct curl_slist * hdrs, struct sb_resp * r) {
    CURL * h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_msg);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "infvsr-submit/0.1");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
    /* A peer that vanished without a FIN (NAT, mobile link) is noticed by keep-alive probes
     * instead of a transfer that hangs forever; no low-speed limit on uploads and output,
     * which the server may legitimately pause (backpressure, a slow chunk). */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 20L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
    /* 307 to the job's owner instance (openapi.yaml "Ownership"): same method and body. The
     * owner is part of the same deployment and needs the same bearer token, so the token goes
     * along (UNRESTRICTED_AUTH), but never to another scheme: an https server cannot bounce
     * the token onto plain http. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 1L);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, strncasecmp(url, "https:", 6) == 0 ? "https" : "http,https");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (s->o->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return h;
}

void sb_resp_finish(struct sb * s, CURL * h, CURLcode rc, struct sb_resp * r) {
    r->curl_rc = rc;
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    r->status = status;
    curl_easy_getinfo(h, CURLINFO_REDIRECT_COUNT, &r->redirects);
    char * eff = NULL;
    curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
    if (eff) snprintf(r->effective_url, sizeof r->effective_url, "%s", eff);
    if (rc != CURLE_OK && !r->curl_msg[0]) snprintf(r->curl_msg, sizeof r->curl_msg, "%s", curl_easy_strerror(rc));
    /* The job's requests follow its owner: after a 307 the next ones go there directly. */
    if (rc == CURLE_OK && r->redirects > 0 && s->st.job_id[0] && strstr(r->effective_url, s->st.job_id)) {
        char origin[sizeof s->st.base];
        if (sb_origin(r->effective_url, origin, sizeof origin) && strcmp(origin, s->st.base) != 0) {
            sb_note(s, "job %s is served by %s (redirected)", s->st.job_id, origin);
            sb_event(s, "{\"event\":\"redirected\",\"base\":\"%s\"}", origin);
            snprintf(s->st.base, sizeof s->st.base, "%s", origin);
        }
    }
}

void sb_request(struct sb * s, const char * method, const char * url, const char * const * headers, const char * body,
                size_t len, struct sb_resp * r) {
    sb_resp_reset(r);
    struct curl_slist * hl = NULL;
    for (struct curl_slist * a = s->auth; a; a = a->next) hl = curl_slist_append(hl, a->data);
    for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    CURL * h = sb_easy(s, url, hl, r);
    if (!h) {
        r->curl_rc = CURLE_OUT_OF_MEMORY;
        snprintf(r->curl_msg, sizeof r->curl_msg, "out of memory");
        curl_slist_free_all(hl);
        return;
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L); /* control requests are small */
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
    }
    CURLcode rc = curl_easy_perform(h);
    sb_resp_finish(s, h, rc, r);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
}

void sb_error_code(const struct sb_resp * r, char * out, size_t len) {
    out[0] = 0;
    if (!r->body) return;
    json_t * j = json_loads(r->body, 0, NULL);
    const char * code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    if (code) snprintf(out, len, "%s", code);
    json_decref(j);
}

void sb_describe(const struct sb_resp * r, char * out, size_t len) {
    if (r->status == 0) {
        snprintf(out, len, "no response: %s", r->curl_msg[0] ? r->curl_msg : curl_easy_strerror(r->curl_rc));
        return;
    }
    json_t * j = r->body ? json_loads(r->body, 0, NULL) : NULL;
    json_t * e = json_object_get(j, "error");
    const char * code = json_string_value(json_object_get(e, "code"));
    const char * msg = json_string_value(json_object_get(e, "message"));
    if (code && msg) {
        snprintf(out, len, "HTTP %ld %s: %s", r->status, code, msg);
    } else if (r->body && r->len) {
        snprintf(out, len, "HTTP %ld: %.200s", r->status, r->body);
    } else {
        snprintf(out, len, "HTTP %ld", r->status);
    }
    json_decref(j);
}

bool sb_origin(const char * url, char * out, size_t len) {
    const char * p = strstr(url, "://");
    if (!p) return false;
    const char * end = strchr(p + 3, '/');
    size_t n = end ? (size_t)(end - url) : strlen(url);
    if (n >= len) return false;
    memcpy(out, url, n);
    out[n] = 0;
    return true;
}

int sb_exit_for(const struct sb_resp * r) {
    if (r->status == 401 || r->status == 403) return SB_EXIT_AUTH;
    if (r->status == 429 || r->status == 503) return SB_EXIT_BUSY;
    if (r->status == 0) return SB_EXIT_NETWORK;
    return SB_EXIT_FAILED;
}

/* ---- output for people and scripts --------------------------------------------------------- */

void sb_event(struct sb * s, const char * fmt, ...) {
    if (s->o->progress != SB_PROGRESS_JSON) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

void sb_note(struct sb * s, const char * fmt, ...) {
    if (s->o->progress == SB_PROGRESS_NONE || s->o->progress == SB_PROGRESS_JSON) return;
    if (s->o->progress == SB_PROGRESS_TTY) fputs("\r\033[K", stderr);
    fputs("infvsr submit: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void fmt_mib(char * b, size_t n, int64_t bytes) {
    if (bytes < 1048576) snprintf(b, n, "%.1f KiB", (double)bytes / 1024.0);
    else if (bytes < (INT64_C(1) << 30)) snprintf(b, n, "%.1f MiB", (double)bytes / 1048576.0);
    else snprintf(b, n, "%.2f GiB", (double)bytes / 1073741824.0);
}

void sb_progress(struct sb * s, bool force) {
    if (s->o->progress == SB_PROGRESS_NONE || s->o->progress == SB_PROGRESS_PLAIN) return;
    double t = sb_now();
    if (!force && t - s->t_last_progress < 0.25) return;
    s->t_last_progress = t;
    int64_t total = s->st.in.frames;
    if (s->o->max_frames > 0 && (total < 0 || total > s->o->max_frames)) total = s->o->max_frames;
    double eta = total > 0 && s->fps > 0 && s->frames_out <= total ? (double)(total - s->frames_out) / s->fps : -1;
    int64_t up = s->upload_sent > s->upload_done ? s->upload_sent : s->upload_done;
    if (up > s->st.in.size) up = s->st.in.size;
    double pct = s->st.in.size > 0 ? 100.0 * (double)up / (double)s->st.in.size : 100.0;
    if (s->o->progress == SB_PROGRESS_JSON) {
        /* a line per change, not per tick: scripts read every line */
        int64_t sig[5] = { up, s->frames_in, s->frames_out, s->out_bytes, (int64_t)s->job_state[0] << 8 | s->job_state[1] };
        if (!force && memcmp(sig, s->last_json, sizeof sig) == 0) return;
        memcpy(s->last_json, sig, sizeof sig);
        printf("{\"event\":\"progress\",\"job\":\"%s\",\"state\":\"%s\",\"upload_bytes\":%" PRId64
               ",\"upload_total\":%" PRId64 ",\"upload_pct\":%.1f,\"frames_in\":%" PRId64 ",\"frames_out\":%" PRId64
               ",\"frames_total\":%" PRId64 ",\"fps\":%.3f,\"eta_s\":%.1f,\"output_bytes\":%" PRId64 "}\n",
               s->st.job_id, s->job_state[0] ? s->job_state : "created", up, s->st.in.size, pct, s->frames_in,
               s->frames_out, total, s->fps, eta, s->out_bytes);
        fflush(stdout);
        return;
    }
    char ub[32], ob[32], et[32] = "--:--";
    fmt_mib(ub, sizeof ub, s->st.in.size);
    fmt_mib(ob, sizeof ob, s->out_bytes);
    if (eta >= 0) {
        int e = (int)eta;
        snprintf(et, sizeof et, "%d:%02d:%02d", e / 3600, e / 60 % 60, e % 60);
    }
    char fr[48];
    if (total > 0) snprintf(fr, sizeof fr, "%" PRId64 "/%" PRId64, s->frames_out, total);
    else snprintf(fr, sizeof fr, "%" PRId64, s->frames_out);
    fprintf(stderr, "\r\033[Kupload %5.1f%% of %s | %s frames | %.2f fps | ETA %s | output %s | %s", pct, ub, fr, s->fps,
            et, ob, s->job_state[0] ? s->job_state : "created");
    fflush(stderr);
}

/* ---- retries ---------------------------------------------------------------------------------- */

int sb_retry_decision(struct sb * s, const char * what, const struct sb_resp * r, struct sb_backoff * b, double * wait_s) {
    char why[600];
    *wait_s = 0;
    if (r->status == 0 || r->status == 502 || r->status == 504) {
        double t = sb_now();
        if (b->net_since == 0) b->net_since = t, b->net_tries = 0;
        sb_describe(r, why, sizeof why);
        if (t - b->net_since >= s->o->retry_timeout_s) {
            fprintf(stderr, "infvsr submit: %s: %s; giving up after %.0f s of retries (--retry-timeout)\n", what, why,
                    t - b->net_since);
            return SB_EXIT_NETWORK;
        }
        double w = 0.5;
        for (int i = 0; i < b->net_tries && w < 10; i++) w *= 2;
        if (w > 10) w = 10;
        b->net_tries++;
        sb_note(s, "%s: %s; retrying in %.1f s", what, why, w);
        sb_event(s, "{\"event\":\"retry\",\"what\":\"%s\",\"status\":%ld,\"wait_s\":%.1f}", what, r->status, w);
        *wait_s = w;
        return SB_RETRY;
    }
    b->net_since = 0;
    if (r->status == 429 || r->status == 503) {
        int ra = r->retry_after_s > 0 ? r->retry_after_s : 5;
        sb_describe(r, why, sizeof why);
        if (s->busy_waited + ra > s->o->max_wait_s) {
            fprintf(stderr,
                    "infvsr submit: %s: server busy: %s (Retry-After: %d s; waited %.0f s of --max-wait %.0f s)\n",
                    what, why, ra, s->busy_waited, s->o->max_wait_s);
            return SB_EXIT_BUSY;
        }
        s->busy_waited += ra;
        sb_note(s, "%s: server busy (%s); retrying after %d s (Retry-After)", what, why, ra);
        sb_event(s, "{\"event\":\"retry\",\"what\":\"%s\",\"status\":%ld,\"wait_s\":%d}", what, r->status, ra);
        *wait_s = ra;
        return SB_RETRY;
    }
    return 0;
}

int sb_call(struct sb * s, const char * what, const char * method, const char * url, const char * const * headers,
            const char * body, size_t len, struct sb_resp * r) {
    struct sb_backoff b = { 0 };
    for (;;) {
        sb_request(s, method, url, headers, body, len, r);
        double w;
        int d = sb_retry_decision(s, what, r, &b, &w);
        if (d != SB_RETRY) return d;
        sb_sleep(w);
    }
}
