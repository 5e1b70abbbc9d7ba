/* Structured logs for infvsrd: one line per event on stderr, either a JSON object
 * ({"ts","level","msg","request_id","job_id"}) or text ("ts LEVEL msg request_id=.. job_id=..").
 *
 * The level is checked before the arguments are evaluated. Thread-safe (one write(2) per
 * line); the sink can be replaced for tests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum srv_log_level { SRV_LOG_ERROR = 0, SRV_LOG_WARN, SRV_LOG_INFO, SRV_LOG_DEBUG };

extern enum srv_log_level srv_log_threshold;

typedef void (*srv_log_sink_cb)(void * user, const char * line, size_t len);

/* format: "json" or "text"; level: "error".."debug". */
void srv_log_setup(const char * format, const char * level);
void srv_log_set_sink(srv_log_sink_cb cb, void * user); /* NULL = stderr */

void srv_log_write(enum srv_log_level lvl, const char * func, const char * request_id, const char * job_id,
                   const char * fmt, ...) __attribute__((format(printf, 5, 6)));

#define SRV_LOG(lvl, rid, jid, ...) \
    do { if ((lvl) <= srv_log_threshold) srv_log_write((lvl), __func__, (rid), (jid), __VA_ARGS__); } while (0)
#define LOG_ERROR(...) SRV_LOG(SRV_LOG_ERROR, NULL, NULL, __VA_ARGS__)
#define LOG_WARN(...)  SRV_LOG(SRV_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define LOG_INFO(...)  SRV_LOG(SRV_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define LOG_DEBUG(...) SRV_LOG(SRV_LOG_DEBUG, NULL, NULL, __VA_ARGS__)
/* With a request id and/or job id (either may be NULL). */
#define RLOG(lvl, rid, jid, ...) SRV_LOG(SRV_LOG_##lvl, (rid), (jid), __VA_ARGS__)
/* With a level computed at run time. */
#define RLOG_AT(lvl, rid, jid, ...) SRV_LOG((lvl), (rid), (jid), __VA_ARGS__)
