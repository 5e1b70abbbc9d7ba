/* Addresses, CIDR lists and X-Forwarded-For (see netaddr.h). */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "httpnum.h"

static const unsigned char v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool parse_exact(const char * s, size_t n, struct srv_addr * a) {
    char buf[64];
    if (n == 0 || n >= sizeof(buf)) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, buf, a->b) == 1) {
        a->family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, buf, a->b) == 1) {
        a->family = 6;
        if (memcmp(a->b, v4_mapped, 12) == 0) {
            memmove(a->b, a->b + 12, 4);
            memset(a->b + 4, 0, 12);
            a->family = 4;
        }
        return true;
    }
    return false;
}

static bool port_ok(const char * s, size_t n) {
    int64_t v = 0;
    return srv_parse_count_n(s, n, &v) == SRV_NUM_OK && v <= 65535;
}

bool srv_addr_parse(const char * s, size_t n, struct srv_addr * a) {
    if (parse_exact(s, n, a)) return true;
    if (n > 2 && s[0] == '[') { /* [v6] or [v6]:port */
        const char * rb = memchr(s, ']', n);
        if (!rb) return false;
        size_t rest = n - (size_t)(rb + 1 - s);
        if (rest != 0 && !(rest > 1 && rb[1] == ':' && port_ok(rb + 2, rest - 2))) return false;
        return parse_exact(s + 1, (size_t)(rb - s - 1), a) && a->family == 6;
    }
    const char * colon = memchr(s, ':', n); /* v4:port (a v6 address parsed above) */
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)) && port_ok(colon + 1, n - (size_t)(colon + 1 - s)))
        return parse_exact(s, (size_t)(colon - s), a) && a->family == 4;
    return false;
}

void srv_addr_format(const struct srv_addr * a, char * out, size_t len) {
    if (!inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->b, out, (socklen_t)len) && len) out[0] = 0;
}

static void mask(struct srv_addr * a, int prefix) {
    int bytes = a->family == 4 ? 4 : 16;
    for (int i = 0; i < bytes; i++) {
        int keep = prefix - i * 8;
        a->b[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
}

bool srv_cidr_list_parse(const char * s, struct srv_cidr * out, int max, int * n, char * err, size_t err_len) {
    *n = 0;
    const char * p = s;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        const char * start = p;
        while (*p && *p != ' ' && *p != ',' && *p != '\t') p++;
        size_t len = (size_t)(p - start);
        const char * slash = memchr(start, '/', len);
        struct srv_cidr c;
        memset(&c, 0, sizeof(c));
        bool ok = parse_exact(start, slash ? (size_t)(slash - start) : len, &c.a);
        int64_t pre = c.a.family == 4 ? 32 : 128;
        if (ok && slash) {
            bool v6_text = memchr(start, ':', (size_t)(slash - start)) != NULL;
            ok = srv_parse_count_n(slash + 1, len - (size_t)(slash + 1 - start), &pre) == SRV_NUM_OK &&
                 pre <= (v6_text ? 128 : 32);
            /* a mapped prefix ::ffff:a.b.c.d/N names IPv4 addresses: N counts from bit 96 */
            if (ok && c.a.family == 4 && v6_text) {
                ok = pre >= 96;
                pre -= 96;
            }
        }
        if (!ok) {
            snprintf(err, err_len, "'%.*s' is not an IPv4/IPv6 address or CIDR block", (int)(len < 60 ? len : 60), start);
            return false;
        }
        if (*n >= max) {
            snprintf(err, err_len, "more than %d entries", max);
            return false;
        }
        c.prefix = (int)pre;
        mask(&c.a, c.prefix);
        out[(*n)++] = c;
    }
    return true;
}

bool srv_cidr_list_match(const struct srv_cidr * list, int n, const struct srv_addr * a) {
    for (int i = 0; i < n; i++) {
        if (list[i].a.family != a->family) continue;
        struct srv_addr m = *a;
        mask(&m, list[i].prefix);
        if (memcmp(m.b, list[i].a.b, 16) == 0) return true;
    }
    return false;
}

bool srv_client_resolve(const char * peer, const char * xff, const struct srv_cidr * trusted, int n_trusted,
                        char * out, size_t len) {
    struct srv_addr a;
    if (!srv_addr_parse(peer, strlen(peer), &a)) { /* MHD gave no address: keep what we have */
        snprintf(out, len, "%s", peer);
        return false;
    }
    srv_addr_format(&a, out, len);
    if (!xff || n_trusted == 0 || !srv_cidr_list_match(trusted, n_trusted, &a)) return false;
    bool from_xff = false;
    size_t end = strlen(xff);
    while (end > 0) { /* from the right: each hop appended the address it was reached from */
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',') start--;
        size_t b = start, e = end;
        while (b < e && (xff[b] == ' ' || xff[b] == '\t')) b++;
        while (e > b && (xff[e - 1] == ' ' || xff[e - 1] == '\t')) e--;
        end = start > 0 ? start - 1 : 0;
        if (b == e) continue; /* empty list element (RFC 9110 5.6.1 allows them) */
        struct srv_addr h;
        if (!srv_addr_parse(xff + b, e - b, &h)) break; /* garbage: the last trusted hop is the client */
        srv_addr_format(&h, out, len);
        from_xff = true;
        if (!srv_cidr_list_match(trusted, n_trusted, &h)) break; /* the first untrusted hop */
    }
    return from_xff;
}
