/* Bearer tokens: from tokens_file (one per line, '#' comments) and INFVSR_TOKENS="a,b".
 * Every route except the probes, /metrics and tus OPTIONS needs one; the comparison is
 * constant-time in the token (srv_ct_equal) and walks every configured token. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv.h"

static int add_token(struct srv * s, const char * t, size_t n) {
    while (n > 0 && (t[0] == ' ' || t[0] == '\t')) t++, n--;
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\r' || t[n - 1] == '\n')) n--;
    if (n == 0) return 0;
    char ** p = realloc(s->tokens, (size_t)(s->n_tokens + 1) * sizeof(*p));
    if (!p) return -1;
    s->tokens = p;
    s->tokens[s->n_tokens] = strndup(t, n);
    if (!s->tokens[s->n_tokens]) return -1;
    s->n_tokens++;
    return 0;
}

int srv_auth_load(struct srv * s, char * err, size_t err_len) {
    const char * env = getenv("INFVSR_TOKENS");
    for (const char * p = env; p && *p;) {
        const char * comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (add_token(s, p, n) != 0) goto oom;
        p += n + (comma ? 1 : 0);
    }
    if (s->cfg.tokens_file[0]) {
        FILE * f = fopen(s->cfg.tokens_file, "r");
        if (!f) {
            snprintf(err, err_len, "tokens_file: cannot open '%s': %s", s->cfg.tokens_file, strerror(errno));
            return -1;
        }
        char line[1024];
        while (fgets(line, sizeof(line), f)) {
            if (line[0] == '#') continue;
            if (add_token(s, line, strlen(line)) != 0) {
                fclose(f);
                goto oom;
            }
        }
        fclose(f);
        if (s->n_tokens == 0) {
            snprintf(err, err_len, "tokens_file: '%s' holds no token", s->cfg.tokens_file);
            return -1;
        }
    }
    if (s->n_tokens) LOG_INFO("bearer auth on: %d token(s)", s->n_tokens);
    return 0;
oom:
    snprintf(err, err_len, "out of memory loading tokens");
    return -1;
}

bool srv_auth_check(struct srv * s, const char * authorization) {
    if (s->n_tokens == 0) return true;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return false;
    const char * t = authorization + 7;
    while (*t == ' ') t++;
    size_t n = strlen(t);
    bool ok = false;
    for (int i = 0; i < s->n_tokens; i++) /* no early exit: time does not tell which matched */
        ok |= srv_ct_equal(t, n, s->tokens[i], strlen(s->tokens[i]));
    return ok;
}

void srv_auth_free(struct srv * s) {
    for (int i = 0; i < s->n_tokens; i++) free(s->tokens[i]);
    free(s->tokens);
    s->tokens = NULL;
    s->n_tokens = 0;
}
