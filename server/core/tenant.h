/* Tenants: who owns a job, who may see it, and how many empty jobs one owner may hold.
 *
 * DESIGN
 * - A bearer token names a tenant. The tokens file (and INFVSR_TOKENS, comma-separated)
 *   has one token per line, `TOKEN [TENANT [admin]]` separated by blanks, '#' lines are
 *   comments. A bare TOKEN (the format before tenants existed) is a tenant of its own,
 *   named `token-` + 16 hex digits of a 64-bit FNV-1a hash of the token: stable across
 *   restarts and file edits (the spool journal stores it), and not the token itself (it is
 *   logged). Several tokens may name one tenant (rotation without losing jobs). `admin`
 *   tokens see and may delete every tenant's jobs; the jobs they create are their own
 *   tenant's.
 * - Without tokens every request is the anonymous tenant "" and sees every job (the
 *   behaviour before tenants).
 * - A job belongs to the tenant that created it. Any other tenant gets exactly the 404 a
 *   job id that never existed gets (status, events, input, output, tus, DELETE), and
 *   Idempotency-Key values are per tenant.
 * - Jobs waiting for their first input byte hold no worker slot and no queue place; they
 *   count against max_awaiting_jobs_per_tenant (beyond: 429 + Retry-After for that tenant
 *   only) and expire after input_wait_timeout_s. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define SRV_TENANT_MAX 65 /* [A-Za-z0-9_.-]{1,64} + NUL */

struct srv_token {
    char * secret;
    size_t len;
    char   tenant[SRV_TENANT_MAX];
    bool   admin;
};

/* True for a valid tenant name: 1-64 of [A-Za-z0-9_.-]. */
bool srv_tenant_name_valid(const char * name);
/* The tenant of a bare token: "token-" + 16 lower-case hex digits. */
void srv_tenant_of_bare_token(const char * token, size_t len, char out[SRV_TENANT_MAX]);
/* Parses one line (or one INFVSR_TOKENS item) of `n` bytes. Returns 1 and fills `out`
 * (out->secret is malloc'ed) for a token, 0 for a blank or comment line, -1 with a message
 * for a malformed line (or out of memory). */
int srv_token_line_parse(const char * line, size_t n, struct srv_token * out, char * err, size_t err_len);

struct srv;
struct srv_req;
struct srv_job;

/* The request may see (and act on) the job: same tenant, or an admin token. */
bool srv_req_sees_job(const struct srv_req * r, const struct srv_job * j);
/* The job has not stored one input byte and no upload request is writing it. */
bool srv_job_awaiting_input(struct srv_job * j);
/* Jobs of `tenant` awaiting input (the per-tenant admission count). */
int srv_tenant_awaiting_jobs(struct srv * s, const char * tenant);
/* The job waited longer than input_wait_timeout_s for its first byte (the reaper removes it). */
bool srv_job_input_wait_expired(struct srv * s, struct srv_job * j, double now_mono);
