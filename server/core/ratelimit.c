/* Per-client request rate limit: a token bucket per client address (max_requests_per_s
 * tokens a second, at most request_burst), touched on the loop thread only, so no locks.
 *
 * The table is open addressing with linear probing and no deletions: when it is half full it
 * is rebuilt without the buckets that have refilled (a full bucket is the same as no entry),
 * so it holds only clients seen in the last burst/rate seconds. It never grows past
 * RL_MAX_SLOTS; a new client that finds no room is let through (and counted), since failing
 * closed would let a flood of addresses lock everyone out, and the per-IP connection limit
 * still bounds what it can do. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

#define RL_MIN_SLOTS 64
#define RL_MAX_SLOTS (1 << 16)

struct srv_rl_entry {
    char   addr[48]; /* "" = empty slot; INET6_ADDRSTRLEN is 46 */
    double tokens;   /* at time t */
    double t;
};

static uint64_t fnv1a(const char * s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static bool refilled(const struct srv_rl_entry * e, double now, double rate, double burst) {
    return e->tokens + (now - e->t) * rate >= burst;
}

static struct srv_rl_entry * probe(struct srv_rl_entry * tab, size_t cap, const char * addr) {
    for (size_t i = fnv1a(addr) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!tab[i].addr[0] || strcmp(tab[i].addr, addr) == 0) return &tab[i];
}

/* Drops refilled buckets and resizes to 4x the live ones (power of two, within limits).
 * Returns false (table unchanged) when out of memory. */
static bool rebuild(struct srv * s, double now, double rate, double burst) {
    size_t live = 0;
    for (size_t i = 0; i < s->rl_cap; i++)
        if (s->rl[i].addr[0] && !refilled(&s->rl[i], now, rate, burst)) live++;
    size_t cap = RL_MIN_SLOTS;
    while (cap < 4 * live && cap < RL_MAX_SLOTS) cap *= 2;
    struct srv_rl_entry * tab = calloc(cap, sizeof *tab);
    if (!tab) return false;
    size_t n = 0;
    for (size_t i = 0; i < s->rl_cap; i++) {
        const struct srv_rl_entry * e = &s->rl[i];
        if (!e->addr[0] || refilled(e, now, rate, burst) || 2 * (n + 1) > cap) continue;
        *probe(tab, cap, e->addr) = *e;
        n++;
    }
    free(s->rl);
    s->rl = tab;
    s->rl_cap = cap;
    s->rl_n = n;
    return true;
}

bool srv_rate_take(struct srv * s, const char * addr, double now, double * wait_s) {
    const double rate = s->cfg.max_requests_per_s, burst = s->cfg.request_burst;
    *wait_s = 0;
    if (rate <= 0 || !addr[0]) return true;
    /* at the size cap, rebuild at most once a second: a flood of new addresses must not make
     * every request scan the whole table */
    if (2 * (s->rl_n + 1) > s->rl_cap && (s->rl_cap < RL_MAX_SLOTS || now - s->rl_rebuilt >= 1.0)) {
        rebuild(s, now, rate, burst);
        s->rl_rebuilt = now;
    }
    struct srv_rl_entry * e = s->rl_cap ? probe(s->rl, s->rl_cap, addr) : NULL;
    if (!e || (!e->addr[0] && 2 * (s->rl_n + 1) > s->rl_cap)) { /* no room: let it through */
        s->rate_untracked++;
        return true;
    }
    if (!e->addr[0]) {
        snprintf(e->addr, sizeof e->addr, "%s", addr);
        e->tokens = burst;
        e->t = now;
        s->rl_n++;
    }
    e->tokens += (now - e->t) * rate;
    if (e->tokens > burst) e->tokens = burst;
    e->t = now;
    if (e->tokens >= 1) {
        e->tokens -= 1;
        return true;
    }
    *wait_s = (1 - e->tokens) / rate;
    return false;
}

void srv_rate_free(struct srv * s) {
    free(s->rl);
    s->rl = NULL;
    s->rl_cap = s->rl_n = 0;
}
