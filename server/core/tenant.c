/* Tenants (tenant.h): the tokens-file line format, job visibility, and the per-tenant
 * bookkeeping of jobs that wait for their first input byte. */
#include "tenant.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

bool srv_tenant_name_valid(const char * s) {
    size_t n = strlen(s);
    if (n < 1 || n > SRV_TENANT_MAX - 1) return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-')) return false;
    return true;
}

void srv_tenant_of_bare_token(const char * t, size_t n, char out[SRV_TENANT_MAX]) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
    snprintf(out, SRV_TENANT_MAX, "token-%016llx", (unsigned long long)h);
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The next blank-separated field of [*p, end): its start and length; false when none. */
static bool next_field(const char ** p, const char * end, const char ** f, size_t * fl) {
    while (*p < end && is_blank(**p)) (*p)++;
    if (*p >= end) return false;
    *f = *p;
    while (*p < end && !is_blank(**p)) (*p)++;
    *fl = (size_t)(*p - *f);
    return true;
}

int srv_token_line_parse(const char * line, size_t n, struct srv_token * out, char * err, size_t err_len) {
    memset(out, 0, sizeof(*out));
    const char * p = line, * end = line + n, * f[4];
    size_t fl[4];
    int nf = 0;
    while (nf < 4 && next_field(&p, end, &f[nf], &fl[nf])) nf++;
    if (nf == 0 || f[0][0] == '#') return 0;
    if (nf == 4) {
        snprintf(err, err_len, "expected 'TOKEN [TENANT [admin]]', got more fields");
        return -1;
    }
    if (nf >= 2) {
        if (fl[1] >= SRV_TENANT_MAX) {
            snprintf(err, err_len, "tenant name longer than %d characters", SRV_TENANT_MAX - 1);
            return -1;
        }
        memcpy(out->tenant, f[1], fl[1]);
        out->tenant[fl[1]] = 0;
        if (!srv_tenant_name_valid(out->tenant)) {
            snprintf(err, err_len, "tenant '%.64s': expected 1-64 of [A-Za-z0-9_.-]", out->tenant);
            return -1;
        }
    } else {
        srv_tenant_of_bare_token(f[0], fl[0], out->tenant);
    }
    if (nf == 3) {
        if (fl[2] != 5 || strncmp(f[2], "admin", 5) != 0) {
            snprintf(err, err_len, "third field: expected 'admin', got '%.*s'", (int)(fl[2] < 40 ? fl[2] : 40), f[2]);
            return -1;
        }
        out->admin = true;
    }
    out->secret = strndup(f[0], fl[0]);
    if (!out->secret) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    out->len = fl[0];
    return 1;
}

bool srv_req_sees_job(const struct srv_req * r, const struct srv_job * j) {
    return r->admin || strcmp(r->tenant, j->tenant) == 0;
}

bool srv_job_awaiting_input(struct srv_job * j) {
    if (j->deleted || j->uploader || j->input_ended) return false;
    struct pl_job_status st;
    pl_job_get_status(j->pl, &st);
    return st.state == PL_JOB_CREATED;
}

int srv_tenant_awaiting_jobs(struct srv * s, const char * tenant) {
    int n = 0;
    for (struct srv_link * l = s->jobs_all.next; l != &s->jobs_all; l = l->next) {
        struct srv_job * j = SRV_CONTAINER(l, struct srv_job, all_link);
        if (strcmp(j->tenant, tenant) == 0 && srv_job_awaiting_input(j)) n++;
    }
    return n;
}

bool srv_job_input_wait_expired(struct srv * s, struct srv_job * j, double now) {
    return now - j->created_mono >= s->cfg.input_wait_timeout_s && srv_job_awaiting_input(j);
}
