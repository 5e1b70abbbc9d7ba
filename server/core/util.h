/* Small helpers of the daemon core: ids, constant-time compare, clocks and dates. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Job id: "<instance>.<22 chars base64url of 16 random bytes>". */
#define SRV_JOB_ID_RAND_LEN 22
#define SRV_JOB_ID_MAX 96

/* Writes a new job id for `instance` (getrandom(2)); false if the kernel gives no entropy. */
bool srv_job_id_new(const char * instance, char * out, size_t out_len);
/* True when `id` has the job-id shape; `inst` (optional) receives the instance prefix. */
bool srv_job_id_parse(const char * id, char * inst, size_t inst_len);

/* Request ids: 16 hex chars from a random 64-bit value. */
void srv_request_id_new(char out[17]);

/* Constant-time equality of two byte strings: the time depends only on the length of
 * `b` (the secret), never on where the first difference is. */
bool srv_ct_equal(const void * a, size_t a_len, const void * b, size_t b_len);

/* Monotonic seconds (for timeouts) and wall-clock unix seconds (for API timestamps). */
double srv_mono_now(void);
double srv_unix_now(void);
/* "2026-11-24T20:10:00.123Z"; "" for t <= 0. */
void srv_rfc3339(double unix_s, char * out, size_t len);
/* IMF-fixdate, "Tue, 24 Nov 2026 20:10:00 GMT" (tus Upload-Expires). */
void srv_http_date(double unix_s, char * out, size_t len);

/* base64 (standard alphabet, padding optional) decode for tus metadata; false on bad input. */
bool srv_base64_decode(const char * in, size_t in_len, char * out, size_t out_cap, size_t * out_len);
