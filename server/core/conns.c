/* Connections: who holds them and for how long (issue 15 items 4 and 6).
 *
 * DESIGN
 * - One struct srv_conn per TCP connection (MHD's socket_context), from NOTIFY_STARTED to
 *   NOTIFY_CLOSED, linked oldest first in srv->conns. A connection is either carrying a
 *   request (first access-handler call .. completion: `in_request`) or waiting for the
 *   next request's header (`ready_mono` = since when).
 * - Header deadline: MHD's connection timeout is an inactivity timeout, so a client that
 *   trickles one header byte every few seconds holds its connection forever. The 1 s tick
 *   closes every connection that has waited header_timeout_s for a complete header (this
 *   includes an idle keep-alive connection: the next request's header must arrive within
 *   header_timeout_s too; MHD shows us no earlier point than "header complete").
 * - Headroom: when a new connection leaves fewer than `reserve` free slots under
 *   max_connections, the oldest connection that is still waiting for a header is closed.
 *   Such a connection has cost the server nothing yet and its client (if honest) simply
 *   reconnects, and this keeps /healthz and new jobs reachable while hostile clients open
 *   connections as fast as they can. Connections carrying requests are never evicted.
 * - Closing from outside MHD: shutdown(2) on the socket (the fd stays MHD's; no fd reuse
 *   race). MHD sees end-of-file on its next read and closes the connection through its
 *   own path (NOTIFY_CLOSED frees ours). Safe inside MHD callbacks: it is one syscall.
 * - Per-client connection limit: MHD's own per-IP limit resets the connection without an
 *   HTTP status, and cannot know the client behind a proxy. So we count: each connection
 *   is counted under its client address (the peer; for a peer in trusted_proxies, nothing
 *   until a request names the client in X-Forwarded-For, then that client). A connection
 *   opened while its client already held max_connections_per_ip is `over_limit`; its
 *   requests get 429 rate_limited + Retry-After + Connection: close while the client is
 *   still over the limit. Probes are exempt. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "srv.h"

#define IP_BUCKETS 1024

struct srv_conn {
    struct srv_link link;          /* srv->conns, oldest first                             */
    struct MHD_Connection * mhd;
    int     fd;
    char    peer[SRV_ADDR_STR];    /* TCP peer, canonical                                  */
    char    client[SRV_ADDR_STR];  /* counted under this address, "" = not counted         */
    bool    in_request;
    bool    over_limit;
    bool    closing;               /* shutdown() done                                      */
    double  ready_mono;            /* waiting for a request header since                   */
};

struct srv_ipcount {
    char    addr[SRV_ADDR_STR];
    int     n;
    struct srv_ipcount * next;
};

/* ---- per-address counts -------------------------------------------------------------------- */

static unsigned addr_hash(const char * s) {
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % IP_BUCKETS;
}

/* Adds `d` to addr's count; returns the new count (0 when untracked: out of memory). */
static int ip_add(struct srv * s, const char * addr, int d) {
    if (!s->ipc && !(s->ipc = calloc(IP_BUCKETS, sizeof(*s->ipc)))) return 0;
    struct srv_ipcount ** pp = &s->ipc[addr_hash(addr)];
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->addr, addr) == 0) break;
    struct srv_ipcount * e = *pp;
    if (!e) {
        if (d <= 0 || !(e = calloc(1, sizeof(*e)))) return 0;
        snprintf(e->addr, sizeof(e->addr), "%s", addr);
        *pp = e;
    }
    e->n += d;
    int n = e->n;
    if (n <= 0) {
        *pp = e->next;
        free(e);
    }
    return n;
}

static int conn_count(struct srv * s, const char * addr) {
    if (!s->ipc) return 0;
    for (struct srv_ipcount * e = s->ipc[addr_hash(addr)]; e; e = e->next)
        if (strcmp(e->addr, addr) == 0) return e->n;
    return 0;
}

/* Counts `c` under `client` ("" = not counted); decides over_limit when it gets a new one. */
static void attribute(struct srv * s, struct srv_conn * c, const char * client) {
    if (strcmp(c->client, client) == 0) return;
    if (c->client[0]) ip_add(s, c->client, -1);
    snprintf(c->client, sizeof(c->client), "%s", client);
    c->over_limit = false;
    if (!client[0]) return;
    int n = ip_add(s, client, +1);
    c->over_limit = s->cfg.max_connections_per_ip > 0 && n > s->cfg.max_connections_per_ip;
}

/* ---- closing ---------------------------------------------------------------------------------- */

/* One line per connection would let an attacker flood the log: each close is a debug line,
 * and the tick writes a summary (report_closes). */
static void close_conn(struct srv * s, struct srv_conn * c, int reason, const char * why) {
    if (c->closing) return;
    c->closing = true;
    s->conn_closes[reason]++;
    LOG_DEBUG("closing connection from %s (%s)", c->peer, why);
    if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
}

/* Every 10 s at most: how many connections the daemon closed itself since the last line. */
static void report_closes(struct srv * s, double now) {
    static const char * const names[SRV_CONN_CLOSE_COUNT] = { "header_timeout", "evicted", "per_client_limit" };
    if (now - s->conn_report_mono < 10.0) return;
    s->conn_report_mono = now;
    uint64_t total = 0;
    for (int i = 0; i < SRV_CONN_CLOSE_COUNT; i++) total += s->conn_closes[i] - s->conn_reported[i];
    if (total == 0) return;
    char line[256];
    size_t o = 0;
    for (int i = 0; i < SRV_CONN_CLOSE_COUNT && o < sizeof(line); i++)
        o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s=%llu", i ? " " : "", names[i],
                              (unsigned long long)(s->conn_closes[i] - s->conn_reported[i]));
    memcpy(s->conn_reported, s->conn_closes, sizeof(s->conn_reported));
    LOG_WARN("closed %llu connection(s) without a request in the last 10 s or more: %s (open now: %d of %d)",
             (unsigned long long)total, line, s->n_connections, s->cfg.max_connections);
}

/* Slots kept free for new connections: 1/16 of max_connections, 1..64. */
static int reserve(const struct srv * s) {
    int r = s->cfg.max_connections / 16;
    return r < 1 ? 1 : r > 64 ? 64 : r;
}

static void make_room(struct srv * s, struct srv_conn * fresh) {
    if (s->n_connections <= s->cfg.max_connections - reserve(s)) return;
    for (struct srv_link * l = s->conns.next; l != &s->conns; l = l->next) {
        struct srv_conn * c = SRV_CONTAINER(l, struct srv_conn, link);
        if (c == fresh || c->in_request || c->closing) continue;
        close_conn(s, c, SRV_CONN_CLOSE_EVICTED, "evicted: no complete request header and the server is near max_connections");
        return;
    }
}

/* ---- MHD notifications ------------------------------------------------------------------------ */

static void peer_of(struct MHD_Connection * mc, char * out, size_t len) {
    out[0] = 0;
    const union MHD_ConnectionInfo * ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr * sa = ci->client_addr;
    char raw[SRV_ADDR_STR] = "";
    if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, raw, sizeof(raw));
    else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, raw, sizeof(raw));
    struct srv_addr a;
    if (srv_addr_parse(raw, strlen(raw), &a)) srv_addr_format(&a, out, len); /* ::ffff:a.b.c.d -> a.b.c.d */
    else snprintf(out, len, "%s", raw);
}

void srv_connection_cb(void * cls, struct MHD_Connection * mc, void ** socket_context,
                       enum MHD_ConnectionNotificationCode code) {
    struct srv * s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        s->n_connections++;
        struct srv_conn * c = calloc(1, sizeof(*c));
        *socket_context = c;
        if (!c) return; /* untracked: no deadline, no count (out of memory) */
        c->mhd = mc;
        const union MHD_ConnectionInfo * fi = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = fi ? fi->connect_fd : -1;
        peer_of(mc, c->peer, sizeof(c->peer));
        c->ready_mono = srv_mono_now();
        srv_list_add(&s->conns, &c->link);
        struct srv_addr a;
        bool proxy = srv_addr_parse(c->peer, strlen(c->peer), &a) && srv_cidr_list_match(s->cfg.trusted, s->cfg.n_trusted, &a);
        attribute(s, c, proxy ? "" : c->peer);
        make_room(s, c);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        s->n_connections--;
        struct srv_conn * c = *socket_context;
        *socket_context = NULL;
        if (!c) return;
        attribute(s, c, "");
        srv_list_del(&c->link);
        free(c);
    }
}

static struct srv_conn * conn_of(struct MHD_Connection * mc) {
    const union MHD_ConnectionInfo * ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* ---- requests --------------------------------------------------------------------------------- */

/* Every X-Forwarded-For value, in order, joined by commas. */
struct xff_ctx {
    char buf[2048];
    size_t len;
};

static enum MHD_Result add_xff(void * cls, enum MHD_ValueKind kind, const char * key, const char * value) {
    (void)kind;
    struct xff_ctx * x = cls;
    if (strcasecmp(key, "X-Forwarded-For") != 0 || !value) return MHD_YES;
    int n = snprintf(x->buf + x->len, sizeof(x->buf) - x->len, "%s%s", x->len ? "," : "", value);
    if (n < 0 || (size_t)n >= sizeof(x->buf) - x->len) { /* longer than any honest chain: keep the right end */
        x->len = 0;
        snprintf(x->buf, sizeof(x->buf), "%s", value);
    }
    x->len = strlen(x->buf);
    return MHD_YES;
}

bool srv_conn_request_begin(struct srv_req * r) {
    struct srv * s = r->srv;
    struct srv_conn * c = conn_of(r->conn);
    char peer[SRV_ADDR_STR];
    if (c) {
        c->in_request = true;
        snprintf(peer, sizeof(peer), "%s", c->peer);
    } else peer_of(r->conn, peer, sizeof(peer));
    struct xff_ctx x = { .len = 0 };
    x.buf[0] = 0;
    if (s->cfg.n_trusted > 0) MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_xff, &x);
    srv_client_resolve(peer, x.len ? x.buf : NULL, s->cfg.trusted, s->cfg.n_trusted, r->client, sizeof(r->client));
    if (!c) return true;
    struct srv_addr a;
    bool proxy = srv_addr_parse(peer, strlen(peer), &a) && srv_cidr_list_match(s->cfg.trusted, s->cfg.n_trusted, &a);
    /* a trusted proxy's connection counts for the client it carries now; a direct one for its peer */
    attribute(s, c, proxy && strcmp(r->client, peer) != 0 ? r->client : proxy ? "" : peer);
    return !(c->over_limit && s->cfg.max_connections_per_ip > 0 &&
             conn_count(s, c->client) > s->cfg.max_connections_per_ip);
}

void srv_conn_request_end(struct srv_req * r) {
    struct srv_conn * c = conn_of(r->conn);
    if (!c) return;
    c->in_request = false;
    c->ready_mono = srv_mono_now();
}

/* ---- the 1 s tick ----------------------------------------------------------------------------- */

void srv_conns_tick(struct srv * s) {
    double now = srv_mono_now();
    report_closes(s, now);
    if (s->cfg.header_timeout_s <= 0) return;
    for (struct srv_link * l = s->conns.next; l != &s->conns; l = l->next) {
        struct srv_conn * c = SRV_CONTAINER(l, struct srv_conn, link);
        if (c->in_request || c->closing || now - c->ready_mono < s->cfg.header_timeout_s) continue;
        close_conn(s, c, SRV_CONN_CLOSE_HEADER_TIMEOUT, "no complete request header within header_timeout_s");
        /* a peer that ignores the FIN cannot keep MHD's side open either */
        MHD_set_connection_option(c->mhd, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
    }
}

void srv_conns_free(struct srv * s) {
    if (!s->ipc) return;
    for (int i = 0; i < IP_BUCKETS; i++)
        while (s->ipc[i]) {
            struct srv_ipcount * e = s->ipc[i];
            s->ipc[i] = e->next;
            free(e);
        }
    free(s->ipc);
    s->ipc = NULL;
}
