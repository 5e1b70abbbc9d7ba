/* Bearer tokens: from tokens_file and INFVSR_TOKENS="a,b", in the line format of tenant.h
 * (`TOKEN [TENANT [admin]]`; a bare TOKEN is the format of old files and still works).
 * Every route except the probes, /metrics and tus OPTIONS needs one; the comparison is
 * constant-time in the token (srv_ct_equal) and walks every configured token, so the time
 * tells neither whether nor which token matched. A matching token gives the request its
 * tenant (and the admin flag). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv.h"

/* Adds one line; 0 = ok or nothing on it, -1 = error (message in err, prefixed by where). */
static int add_line(struct srv * s, const char * line, size_t n, const char * where, char * err, size_t err_len) {
    struct srv_token t;
    char why[200];
    int rc = srv_token_line_parse(line, n, &t, why, sizeof(why));
    if (rc == 0) return 0;
    if (rc < 0) {
        snprintf(err, err_len, "%s: %s", where, why);
        return -1;
    }
    for (int i = 0; i < s->n_tokens; i++) {
        struct srv_token * o = &s->tokens[i];
        bool same = o->len == t.len && memcmp(o->secret, t.secret, t.len) == 0;
        if (same && (strcmp(o->tenant, t.tenant) != 0 || o->admin != t.admin)) {
            snprintf(err, err_len, "%s: the same token is listed twice with different tenants or flags", where);
            free(t.secret);
            return -1;
        }
        if (same) { /* an exact repeat (file + environment): harmless */
            free(t.secret);
            return 0;
        }
    }
    struct srv_token * p = realloc(s->tokens, (size_t)(s->n_tokens + 1) * sizeof(*p));
    if (!p) {
        free(t.secret);
        snprintf(err, err_len, "out of memory loading tokens");
        return -1;
    }
    s->tokens = p;
    s->tokens[s->n_tokens++] = t;
    return 0;
}

int srv_auth_load(struct srv * s, char * err, size_t err_len) {
    const char * env = getenv("INFVSR_TOKENS");
    int item = 0;
    for (const char * p = env; p && *p;) {
        const char * comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char where[64];
        snprintf(where, sizeof(where), "INFVSR_TOKENS item %d", ++item);
        if (add_line(s, p, n, where, err, err_len) != 0) return -1;
        p += n + (comma ? 1 : 0);
    }
    if (s->cfg.tokens_file[0]) {
        FILE * f = fopen(s->cfg.tokens_file, "r");
        if (!f) {
            snprintf(err, err_len, "tokens_file: cannot open '%s': %s", s->cfg.tokens_file, strerror(errno));
            return -1;
        }
        int before = s->n_tokens, lineno = 0;
        char line[1024];
        while (fgets(line, sizeof(line), f)) {
            char where[600];
            snprintf(where, sizeof(where), "tokens_file %s:%d", s->cfg.tokens_file, ++lineno);
            if (add_line(s, line, strlen(line), where, err, err_len) != 0) {
                fclose(f);
                return -1;
            }
        }
        fclose(f);
        if (s->n_tokens == before) {
            snprintf(err, err_len, "tokens_file: '%s' holds no token", s->cfg.tokens_file);
            return -1;
        }
    }
    if (s->n_tokens) {
        int admins = 0;
        for (int i = 0; i < s->n_tokens; i++) admins += s->tokens[i].admin;
        LOG_INFO("bearer auth on: %d token(s), %d admin", s->n_tokens, admins);
    }
    return 0;
}

bool srv_auth_request(struct srv_req * r, const char * authorization) {
    struct srv * s = r->srv;
    r->tenant[0] = 0;
    r->admin = false;
    if (s->n_tokens == 0) return true; /* one anonymous tenant "" */
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return false;
    const char * t = authorization + 7;
    while (*t == ' ') t++;
    size_t n = strlen(t);
    int match = -1;
    for (int i = 0; i < s->n_tokens; i++) { /* no early exit: time does not tell which matched */
        bool eq = srv_ct_equal(t, n, s->tokens[i].secret, s->tokens[i].len);
        match = eq ? i : match;
    }
    if (match < 0) return false;
    snprintf(r->tenant, sizeof(r->tenant), "%s", s->tokens[match].tenant);
    r->admin = s->tokens[match].admin;
    return true;
}

void srv_auth_free(struct srv * s) {
    for (int i = 0; i < s->n_tokens; i++) free(s->tokens[i].secret);
    free(s->tokens);
    s->tokens = NULL;
    s->n_tokens = 0;
}
