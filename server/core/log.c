/* Structured log lines (see log.h). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum srv_log_level srv_log_threshold = SRV_LOG_INFO;
static bool log_json = true;
static srv_log_sink_cb sink_cb;
static void * sink_user;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char * level_names[] = { "error", "warn", "info", "debug" };

void srv_log_setup(const char * format, const char * level) {
    log_json = !format || strcmp(format, "text") != 0;
    for (int i = 0; i < 4; i++)
        if (level && strcmp(level, level_names[i]) == 0) srv_log_threshold = (enum srv_log_level)i;
}

void srv_log_set_sink(srv_log_sink_cb cb, void * user) {
    pthread_mutex_lock(&log_mu);
    sink_cb = cb;
    sink_user = user;
    pthread_mutex_unlock(&log_mu);
}

/* Appends s as the body of a JSON string (without quotes). */
static size_t json_escape(char * out, size_t cap, size_t o, const char * s) {
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { out[o++] = '\\'; out[o++] = (char)ch; }
        else if (ch == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
        else if (ch == '\t') { out[o++] = '\\'; out[o++] = 't'; }
        else if (ch < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        else out[o++] = (char)ch;
    }
    return o;
}

static size_t add_str(char * out, size_t cap, size_t o, const char * s) {
    while (*s && o + 1 < cap) out[o++] = *s++;
    return o;
}

void srv_log_write(enum srv_log_level lvl, const char * func, const char * request_id, const char * job_id,
                   const char * fmt, ...) {
    char msg[2048], line[4600], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(tv.tv_usec / 1000));

    size_t o = 0, cap = sizeof(line) - 2;
    if (log_json) {
        o += (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"func\":\"%s\",\"msg\":\"", ts,
                              level_names[lvl], func);
        o = json_escape(line, cap, o, msg);
        o = add_str(line, cap, o, "\"");
        if (request_id && *request_id) {
            o = add_str(line, cap, o, ",\"request_id\":\"");
            o = json_escape(line, cap, o, request_id);
            o = add_str(line, cap, o, "\"");
        }
        if (job_id && *job_id) {
            o = add_str(line, cap, o, ",\"job_id\":\"");
            o = json_escape(line, cap, o, job_id);
            o = add_str(line, cap, o, "\"");
        }
        o = add_str(line, cap, o, "}");
    } else {
        o += (size_t)snprintf(line, cap, "%s %-5s %s: %s", ts, level_names[lvl], func, msg);
        if (o > cap) o = cap;
        if (request_id && *request_id) o += (size_t)snprintf(line + o, cap - o, " request_id=%s", request_id);
        if (o > cap) o = cap;
        if (job_id && *job_id) o += (size_t)snprintf(line + o, cap - o, " job_id=%s", job_id);
        if (o > cap) o = cap;
    }
    line[o++] = '\n';
    line[o] = 0;

    pthread_mutex_lock(&log_mu);
    if (sink_cb) sink_cb(sink_user, line, o);
    else {
        ssize_t w = write(STDERR_FILENO, line, o);
        (void)w;
    }
    pthread_mutex_unlock(&log_mu);
}
