/* `infvsr submit`: the daemon's client (create a job, tus upload, SSE progress, streamed
 * download). Shared declarations of cmd_submit.c (options, flow), submit_http.c (requests on
 * libcurl), submit_state.c (the resume state next to OUT) and submit_transfer.c (the
 * concurrent upload / events / download loop).
 *
 * Why libcurl: the client has to do TLS, 307 redirects that keep method and body, Range,
 * chunked streaming responses and several transfers at once on one thread (curl_multi);
 * libcurl does all of it, is packaged everywhere (Debian libcurl4) and is what `curl` in the
 * README examples already uses, so the CLI behaves like the documented curl commands. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <curl/curl.h>

/* Exit codes (also in `infvsr submit --help` and the README). */
#define SB_EXIT_OK 0
#define SB_EXIT_FAILED 1  /* the job failed, or the server refused the input or the options (4xx) */
#define SB_EXIT_USAGE 2   /* bad options, OUT exists */
#define SB_EXIT_AUTH 4    /* 401/403: missing or wrong token */
#define SB_EXIT_BUSY 5    /* 429/503 for longer than --max-wait */
#define SB_EXIT_NETWORK 6 /* the server unreachable (or the connection failing) for longer than --retry-timeout */

/* TTY: a progress line on stderr; PLAIN (stderr not a TTY): notes only; JSON: JSON lines on
 * stdout; NONE (--quiet): errors only. */
enum sb_progress_mode { SB_PROGRESS_AUTO, SB_PROGRESS_TTY, SB_PROGRESS_PLAIN, SB_PROGRESS_JSON, SB_PROGRESS_NONE };

struct sb_opts {
    const char * in, * out, * server, * token, * container, * codec, * model;
    int          scale, crf, max_frames;
    bool         scale_set, crf_set, no_scene, yuv444p, no_audio, force, insecure;
    double       scene_threshold, reference_threshold;
    double       max_wait_s, retry_timeout_s, limit_rate;
    int64_t      chunk_size;
    enum sb_progress_mode progress;
};

/* ---- one HTTP response ------------------------------------------------------------------ */
#define SB_BODY_MAX (1 << 20) /* error and JSON bodies kept up to this; larger ones are cut */

struct sb_resp {
    long     status;           /* 0: no HTTP response (see curl_rc) */
    CURLcode curl_rc;
    char     curl_msg[CURL_ERROR_SIZE];
    char *   body;             /* NUL-terminated; NULL when empty or sent to a sink */
    size_t   len, cap;
    int64_t  upload_offset;    /* Upload-Offset, -1 when absent */
    int64_t  content_length;   /* -1 when absent */
    int      retry_after_s;    /* -1 when absent or unparsable */
    char     location[2048];
    char     content_range[128];
    long     redirects;
    char     effective_url[2048];
};

/* ---- the client ------------------------------------------------------------------------- */
struct sb_input {
    int64_t size;
    int64_t mtime_ns;
    char    head_sha[65], tail_sha[65]; /* first and last MiB: the file's identity for a resume */
    int64_t frames;                     /* expected input frames (container or duration x fps), -1 unknown */
};

struct sb_state {
    char server[1024];     /* --server the state was made with */
    char base[1024];       /* scheme://host:port the job's requests go to (the owner after a 307) */
    char idem_key[48];     /* Idempotency-Key of the creation: a restart after a kill re-finds the job */
    char spec[2048];       /* the JobSpec JSON sent */
    char job_id[128];
    char upload_url[4096]; /* absolute tus URL, "" before the tus creation */
    struct sb_input in;
};

struct sb {
    const struct sb_opts * o;
    struct curl_slist *    auth; /* Authorization header (or NULL) */
    struct sb_state        st;
    char                   state_path[4096], part_path[4096];
    double                 t_start;
    /* progress as the events stream reported it */
    char    job_state[16];
    int64_t frames_in, frames_out, out_bytes_server;
    double  fps;
    int64_t upload_done; /* bytes the server confirmed (Upload-Offset) */
    int64_t upload_sent; /* + bytes sent in the current PATCH */
    int64_t out_bytes;   /* bytes in OUT.part */
    double  t_last_progress;
    int64_t last_json[5]; /* what the last --json progress line said */
    bool    job_failed; /* the job ended failed/cancelled: nothing to resume */
    double  busy_waited; /* seconds this run waited on 429/503, all requests together (--max-wait) */
};

/* submit_http.c */
void sb_resp_reset(struct sb_resp * r);
void sb_resp_free(struct sb_resp * r);
/* Appends a body piece, NUL-terminated; beyond SB_BODY_MAX the rest is dropped (the start
 * is kept for messages). Returns len, or 0 when out of memory (which aborts a transfer). */
size_t sb_resp_append(struct sb_resp * r, const char * buf, size_t len);
/* A handle with the common options: url, Authorization, response capture into r, follow
 * 307s with the token (same scheme only), TCP keep-alive. */
CURL * sb_easy(const struct sb * s, const char * url, struct curl_slist * hdrs, struct sb_resp * r);
/* One blocking request; `body` (len bytes) is sent for POST/PATCH. Fills r. */
void sb_request(struct sb * s, const char * method, const char * url, const char * const * headers,
                const char * body, size_t len, struct sb_resp * r);
/* After a finished transfer: status, curl error, redirect (the job's base follows the owner). */
void sb_resp_finish(struct sb * s, CURL * h, CURLcode rc, struct sb_resp * r);
/* "401 unauthorized: missing or wrong bearer token" from the JSON error body, or curl's message. */
void sb_describe(const struct sb_resp * r, char * out, size_t len);
/* The server's error.code, "" when the body is not a JSON error. */
void sb_error_code(const struct sb_resp * r, char * out, size_t len);
/* scheme://host[:port] of url into out. */
bool sb_origin(const char * url, char * out, size_t len);
/* The exit code a final (non-retryable) error response maps to. */
int sb_exit_for(const struct sb_resp * r);

/* Retry policy of every request: a network failure (no response, or 502/504 from a proxy)
 * is retried with exponential backoff (0.5 s doubling to 10 s) until it has lasted
 * --retry-timeout; 429/503 wait Retry-After (default 5 s) while the total wait stays within
 * --max-wait. */
struct sb_backoff {
    double net_since; /* start of the current run of network failures, 0 when none */
    int    net_tries;
};
#define SB_RETRY (-1)
/* SB_RETRY with *wait_s set, 0 when r is a final answer (any other status), or the exit code
 * to give up with (the reason printed). `what` names the request in messages. */
int sb_retry_decision(struct sb * s, const char * what, const struct sb_resp * r, struct sb_backoff * b, double * wait_s);
/* sb_request repeated by sb_retry_decision; 0 with the final response in r, or an exit code. */
int sb_call(struct sb * s, const char * what, const char * method, const char * url, const char * const * headers,
            const char * body, size_t len, struct sb_resp * r);

/* Emits a JSON line (--json) or a line on stderr. */
void sb_event(struct sb * s, const char * json_fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_note(struct sb * s, const char * fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_progress(struct sb * s, bool force);

/* submit_state.c */
int  sb_input_identify(const char * path, struct sb_input * in, char * err, size_t errlen);
bool sb_state_load(const char * path, struct sb_state * st);
int  sb_state_save(const char * path, const struct sb_state * st);

/* submit_transfer.c: upload from the server's offset, events and download at once. Returns
 * an exit code; OUT.part holds the whole output when it returns SB_EXIT_OK. */
int sb_transfer(struct sb * s);

/* Sleeps up to `seconds`, returns early never (a plain wait between retries). */
void sb_sleep(double seconds);
double sb_now(void);
