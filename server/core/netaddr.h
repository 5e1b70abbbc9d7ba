/* Client addresses: numeric IPv4/IPv6 addresses, CIDR lists (the trusted_proxies
 * directive) and X-Forwarded-For. Pure functions (unit tests: test_http_parse.c).
 *
 * Who the client is (issue 15 item 6): the TCP peer, unless the peer is a trusted proxy;
 * then X-Forwarded-For is read from the right (each proxy appends the address it got the
 * request from) and the first address that is not a trusted proxy is the client. Entries
 * left of it were written by the client itself and prove nothing. An entry that is not an
 * address stops the walk: the client is then the last hop that could be trusted to tell
 * (the proxy that appended the garbage is not one of ours). An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, from a dual-stack listener) is the IPv4 address. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define SRV_ADDR_STR 48 /* INET6_ADDRSTRLEN rounded up */
#define SRV_MAX_TRUSTED_PROXIES 64

struct srv_addr {
    int family;             /* 4 or 6 */
    unsigned char b[16];    /* network order; IPv4 in b[0..3] */
};

struct srv_cidr {
    struct srv_addr a;      /* host bits cleared */
    int prefix;             /* 0..32 or 0..128 */
};

/* Parses a numeric address (s[0..n)); an IPv4-mapped IPv6 address becomes IPv4. Also
 * accepts the forms proxies write into X-Forwarded-For: "[v6]", "[v6]:port", "v4:port". */
bool srv_addr_parse(const char * s, size_t n, struct srv_addr * a);
/* Canonical text (inet_ntop). */
void srv_addr_format(const struct srv_addr * a, char * out, size_t len);

/* "10.0.0.0/8, 127.0.0.1, fd00::/8": comma- or space-separated. False with `err` naming
 * the bad entry (a prefix with host bits set is accepted; the host bits are ignored). */
bool srv_cidr_list_parse(const char * s, struct srv_cidr * out, int max, int * n, char * err, size_t err_len);
bool srv_cidr_list_match(const struct srv_cidr * list, int n, const struct srv_addr * a);

/* The client address of a request (see above): `peer` is the TCP peer's numeric address,
 * `xff` every X-Forwarded-For value joined with commas (NULL = none). Writes canonical
 * text to out; returns true when it came from X-Forwarded-For. */
bool srv_client_resolve(const char * peer, const char * xff, const struct srv_cidr * trusted, int n_trusted,
                        char * out, size_t len);
