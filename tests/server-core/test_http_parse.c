/* Unit tests of the pure HTTP-input pieces of the daemon core (issue 15): the saturating
 * number parser and byte ranges (httpnum.c), the header-section checks against request
 * smuggling (hdrcheck.c) and client addresses / trusted proxies / X-Forwarded-For
 * (netaddr.c). The daemon tests in tests/server check the same cases against real MHD. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hdrcheck.h"
#include "httpnum.h"
#include "netaddr.h"

/* ---- numbers ---------------------------------------------------------------------------------- */

static void test_count_parse(void) {
    int64_t v = -7;
    CHECK_EQ_INT(srv_parse_count("0", &v), SRV_NUM_OK);
    CHECK_EQ_INT(v, 0);
    CHECK_EQ_INT(srv_parse_count("12345", &v), SRV_NUM_OK);
    CHECK_EQ_INT(v, 12345);
    CHECK_EQ_INT(srv_parse_count("9223372036854775807", &v), SRV_NUM_OK); /* INT64_MAX */
    CHECK_EQ_INT(v, INT64_MAX);
    CHECK_EQ_INT(srv_parse_count("0009223372036854775807", &v), SRV_NUM_OK); /* leading zeros: still a count */
    CHECK_EQ_INT(v, INT64_MAX);
    /* one past INT64_MAX and far beyond: saturate, never wrap */
    const char * big[] = { "9223372036854775808", "9223372036854775810", "18446744073709551615",
                           "18446744073709551616", "99999999999999999999999999999999999999", NULL };
    for (const char ** b = big; *b; b++) {
        v = 0;
        CHECK_EQ_INT(srv_parse_count(*b, &v), SRV_NUM_TOO_LARGE);
        CHECK_EQ_INT(v, INT64_MAX);
    }
    const char * bad[] = { "", " 1", "1 ", "+1", "-1", "0x10", "1,2", "1.0", "1e3", "١", NULL };
    for (const char ** b = bad; *b; b++) CHECK_MSG(srv_parse_count(*b, &v) == SRV_NUM_INVALID, "'%s'", *b);
    CHECK_EQ_INT(srv_parse_count(NULL, &v), SRV_NUM_INVALID);
    CHECK_EQ_INT(srv_parse_count_n("123abc", 3, &v), SRV_NUM_OK);
    CHECK_EQ_INT(v, 123);
    CHECK_EQ_INT(srv_add_sat(INT64_MAX - 1, 5), INT64_MAX);
    CHECK_EQ_INT(srv_add_sat(40, 2), 42);
}

static void test_byte_range(void) {
    int64_t off = -1, len = -1;
    CHECK_EQ_INT(srv_parse_range("bytes=0-99", 1000, &off, &len), SRV_RANGE_OK);
    CHECK_EQ_INT(off, 0);
    CHECK_EQ_INT(len, 100);
    CHECK_EQ_INT(srv_parse_range("bytes=900-", 1000, &off, &len), SRV_RANGE_OK);
    CHECK_EQ_INT(len, 100);
    CHECK_EQ_INT(srv_parse_range("bytes=-10", 1000, &off, &len), SRV_RANGE_OK);
    CHECK_EQ_INT(off, 990);
    CHECK_EQ_INT(srv_parse_range("bytes=-5000", 1000, &off, &len), SRV_RANGE_OK); /* whole file */
    CHECK_EQ_INT(off, 0);
    CHECK_EQ_INT(len, 1000);
    /* huge bounds saturate: last clamps to the end, first is past it, suffix is everything */
    CHECK_EQ_INT(srv_parse_range("bytes=10-99999999999999999999999", 1000, &off, &len), SRV_RANGE_OK);
    CHECK_EQ_INT(off, 10);
    CHECK_EQ_INT(len, 990);
    CHECK_EQ_INT(srv_parse_range("bytes=9223372036854775808-", 1000, &off, &len), SRV_RANGE_UNSATISFIABLE);
    CHECK_EQ_INT(srv_parse_range("bytes=0-9223372036854775807", 1000, &off, &len), SRV_RANGE_OK);
    CHECK_EQ_INT(len, 1000);
    CHECK_EQ_INT(srv_parse_range("bytes=-18446744073709551617", 1000, &off, &len), SRV_RANGE_OK);
    CHECK_EQ_INT(len, 1000);
    CHECK_EQ_INT(srv_parse_range("bytes=1000-", 1000, &off, &len), SRV_RANGE_UNSATISFIABLE);
    CHECK_EQ_INT(srv_parse_range("bytes=-0", 1000, &off, &len), SRV_RANGE_UNSATISFIABLE);
    CHECK_EQ_INT(srv_parse_range("bytes=0-", 0, &off, &len), SRV_RANGE_UNSATISFIABLE);
    const char * ignored[] = { "bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=a-b", "bytes=+1-2", "bytes= 1-2",
                               "bytes=-", "bytes=1--2", "bytes=-1-2", "bytes=1-2 ", NULL };
    for (const char ** b = ignored; *b; b++)
        CHECK_MSG(srv_parse_range(*b, 1000, &off, &len) == SRV_RANGE_NONE, "'%s'", *b);
    CHECK_EQ_INT(srv_parse_range(NULL, 1000, &off, &len), SRV_RANGE_NONE);
}

/* ---- header sections ---------------------------------------------------------------------------- */

/* Parses `raw` in place the way libmicrohttpd 0.9.75 does (connection.c: lines end at CRLF or
 * bare LF, both overwritten with NULs; ':' overwritten with NUL; SP/HT after it skipped; a
 * value ends at the line's end or at a NUL inside it, as MHD's C strings do) and feeds the
 * fields to the checker. Returns srv_hdr_check_end. */
static bool check_raw(const char * text, size_t n, char * why, size_t why_len) {
    char * buf = malloc(n + 1);
    memcpy(buf, text, n);
    buf[n] = 0;
    struct srv_hdr_check c;
    srv_hdr_check_begin(&c, buf, n);
    char * p = buf, * end = buf + n;
    bool first = true;
    while (p < end) {
        char * eol = p;
        while (eol < end && *eol != '\n') eol++;
        char * next = eol < end ? eol + 1 : end;
        char * line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        for (char * q = line_end; q < next; q++) *q = 0;
        if (line_end == p) break; /* the empty line */
        if (!first) {
            char * colon = strchr(p, ':');
            if (colon) {
                *colon = 0;
                char * v = colon + 1;
                while (*v == ' ' || *v == '\t') v++;
                srv_hdr_check_field(&c, p, strlen(p), v, strlen(v));
            }
        }
        first = false;
        p = next;
    }
    bool ok = srv_hdr_check_end(&c);
    snprintf(why, why_len, "%s", c.msg);
    free(buf);
    return ok;
}

#define RAW(s) s, sizeof(s) - 1

static void test_header_checks(void) {
    char why[200];
    CHECK(check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88\r\nAccept: */*\r\n\r\n"), why, sizeof(why)));
    CHECK(check_raw(RAW("PUT /x HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"), why, sizeof(why))); /* bare LF */
    CHECK(check_raw(RAW("PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked \r\n\r\n"), why, sizeof(why)));
    CHECK(check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tab:\ta\tb\r\nX-Utf8: caf\xc3\xa9\r\n\r\n"), why, sizeof(why)));
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n"), why, sizeof(why)));
    CHECK_STR_CONTAINS(why, "Content-Length");
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\n"), why, sizeof(why)));
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"),
                     why, sizeof(why)));
    CHECK_STR_CONTAINS(why, "Transfer-Encoding");
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\n"), why,
                     sizeof(why)));
    CHECK_STR_CONTAINS(why, "field name");
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n"), why, sizeof(why)));
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"), why,
                     sizeof(why)));
    CHECK_STR_CONTAINS(why, "both");
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"), why, sizeof(why)));
    CHECK(!check_raw(RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), why, sizeof(why)));
    CHECK(!check_raw(RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), why, sizeof(why)));
    /* a NUL inside a value: MHD's string stops there; the rest of the line is the giveaway */
    CHECK(!check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nAccept: */*\r\n\r\n"), why, sizeof(why)));
    CHECK_STR_CONTAINS(why, "NUL");
    CHECK(!check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\0x\r\n\r\n"), why, sizeof(why)));
    /* a NUL right before the line end cuts nothing: the value is empty either way */
    CHECK(check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: \0\r\n\r\n"), why, sizeof(why)));
    /* other control characters in a value */
    CHECK(!check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n"), why, sizeof(why)));
    CHECK(!check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rz\r\n\r\n"), why, sizeof(why)));
    CHECK(!check_raw(RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fz\r\n\r\n"), why, sizeof(why)));
    /* names */
    CHECK(srv_hdr_name_ok("X-Custom_1.!#$%&'*+^`|~", 23));
    CHECK(!srv_hdr_name_ok("", 0));
    CHECK(!srv_hdr_name_ok("A B", 3));
    CHECK(!srv_hdr_name_ok("A\"B", 3));
    CHECK(!srv_hdr_name_ok("A(B", 3));
    CHECK(!srv_hdr_name_ok("A\0B", 3));
    CHECK(srv_hdr_value_ok("a\tb \x80\xff", 6));
    CHECK(!srv_hdr_value_ok("a\nb", 3));
}

/* Fields MHD moved out of its read buffer (obs-fold reallocates the name) fail the layout
 * walk; without a region the walk is skipped. */
static void test_header_layout(void) {
    char region[] = "GET / HTTP/1.1\0\0Host\0 x\0\0\0\0";
    size_t n = sizeof(region) - 1;
    char * host = region + 16, * x = region + 22;
    struct srv_hdr_check c;
    srv_hdr_check_begin(&c, region, n);
    srv_hdr_check_field(&c, host, 4, x, 1);
    CHECK(srv_hdr_check_end(&c));
    static char moved[] = "Host";
    srv_hdr_check_begin(&c, region, n);
    srv_hdr_check_field(&c, moved, 4, x, 1);
    CHECK(!srv_hdr_check_end(&c));
    srv_hdr_check_begin(&c, NULL, 0);
    srv_hdr_check_field(&c, moved, 4, "x", 1);
    CHECK(srv_hdr_check_end(&c));
    /* out of order */
    char r2[] = "GET / HTTP/1.1\0\0A\0 1\0\0B\0 2\0\0\0\0";
    n = sizeof(r2) - 1;
    srv_hdr_check_begin(&c, r2, n);
    srv_hdr_check_field(&c, r2 + 22, 1, r2 + 25, 1);
    srv_hdr_check_field(&c, r2 + 16, 1, r2 + 19, 1);
    CHECK(!srv_hdr_check_end(&c));
}

/* ---- addresses ----------------------------------------------------------------------------------- */

static const char * fmt(const char * s) {
    static char out[SRV_ADDR_STR];
    struct srv_addr a;
    if (!srv_addr_parse(s, strlen(s), &a)) return "(invalid)";
    srv_addr_format(&a, out, sizeof(out));
    return out;
}

static void test_addresses(void) {
    CHECK(strcmp(fmt("127.0.0.1"), "127.0.0.1") == 0);
    CHECK(strcmp(fmt("::ffff:10.1.2.3"), "10.1.2.3") == 0);
    CHECK(strcmp(fmt("2001:DB8::1"), "2001:db8::1") == 0);
    CHECK(strcmp(fmt("[2001:db8::1]"), "2001:db8::1") == 0);
    CHECK(strcmp(fmt("[2001:db8::1]:443"), "2001:db8::1") == 0);
    CHECK(strcmp(fmt("192.0.2.7:8080"), "192.0.2.7") == 0);
    const char * bad[] = { "", "unknown", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:99999", "[1.2.3.4]",
                           "[::1", "::1]:80", "_hidden", "1.2.3.4 ", NULL };
    for (const char ** b = bad; *b; b++) CHECK_MSG(strcmp(fmt(*b), "(invalid)") == 0, "'%s' -> %s", *b, fmt(*b));
}

static void test_cidr(void) {
    struct srv_cidr l[8];
    int n = 0;
    char err[200];
    CHECK(srv_cidr_list_parse("10.0.0.0/8, 127.0.0.1 fd00::/8,::ffff:192.168.0.0/112", l, 8, &n, err, sizeof(err)));
    CHECK_EQ_INT(n, 4);
    struct srv_addr a;
    const char * in[] = { "10.2.3.4", "127.0.0.1", "fd12::1", "::ffff:10.0.0.1", "192.168.3.4", NULL };
    const char * out[] = { "11.0.0.1", "127.0.0.2", "fe80::1", "::1", "192.169.0.1", NULL };
    for (const char ** p = in; *p; p++) {
        CHECK(srv_addr_parse(*p, strlen(*p), &a));
        CHECK_MSG(srv_cidr_list_match(l, n, &a), "%s should match", *p);
    }
    for (const char ** p = out; *p; p++) {
        CHECK(srv_addr_parse(*p, strlen(*p), &a));
        CHECK_MSG(!srv_cidr_list_match(l, n, &a), "%s should not match", *p);
    }
    CHECK(srv_cidr_list_parse("", l, 8, &n, err, sizeof(err)));
    CHECK_EQ_INT(n, 0);
    CHECK(srv_cidr_list_parse("0.0.0.0/0", l, 8, &n, err, sizeof(err)));
    CHECK(srv_addr_parse("8.8.8.8", 7, &a) && srv_cidr_list_match(l, n, &a));
    CHECK(srv_cidr_list_parse("10.1.2.3/8", l, 8, &n, err, sizeof(err))); /* host bits ignored */
    CHECK(srv_addr_parse("10.200.0.1", 10, &a) && srv_cidr_list_match(l, n, &a));
    const char * bad[] = { "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "example.com", "10.0.0.0/-1",
                           "::ffff:1.2.3.4/95", "10.0.0.0/99999999999999999999", NULL };
    for (const char ** b = bad; *b; b++) {
        CHECK_MSG(!srv_cidr_list_parse(*b, l, 8, &n, err, sizeof(err)), "'%s' accepted", *b);
        CHECK_STR_CONTAINS(err, "not an IPv4/IPv6");
    }
    CHECK(!srv_cidr_list_parse("1.1.1.1,2.2.2.2,3.3.3.3", l, 2, &n, err, sizeof(err)));
    CHECK_STR_CONTAINS(err, "more than 2");
}

static const char * client(const char * peer, const char * xff, const char * trusted) {
    static char out[SRV_ADDR_STR];
    struct srv_cidr l[8];
    int n = 0;
    char err[200];
    CHECK(srv_cidr_list_parse(trusted, l, 8, &n, err, sizeof(err)));
    srv_client_resolve(peer, xff, l, n, out, sizeof(out));
    return out;
}

static void test_forwarded_for(void) {
    /* not a trusted peer: X-Forwarded-For is ignored (anyone can write it) */
    CHECK(strcmp(client("192.0.2.9", "203.0.113.5", ""), "192.0.2.9") == 0);
    CHECK(strcmp(client("192.0.2.9", "203.0.113.5", "10.0.0.0/8"), "192.0.2.9") == 0);
    /* a trusted proxy: the rightmost address that is not a trusted proxy */
    CHECK(strcmp(client("10.0.0.2", "203.0.113.5", "10.0.0.0/8"), "203.0.113.5") == 0);
    CHECK(strcmp(client("10.0.0.2", "1.1.1.1, 203.0.113.5, 10.0.0.7", "10.0.0.0/8"), "203.0.113.5") == 0);
    CHECK(strcmp(client("10.0.0.2", "1.1.1.1,203.0.113.5 ,, 10.0.0.7", "10.0.0.0/8"), "203.0.113.5") == 0);
    /* only trusted hops: the leftmost */
    CHECK(strcmp(client("10.0.0.2", "10.0.0.9, 10.0.0.7", "10.0.0.0/8"), "10.0.0.9") == 0);
    /* garbage stops the walk at the last hop a trusted proxy vouched for */
    CHECK(strcmp(client("10.0.0.2", "203.0.113.5, unknown, 10.0.0.7", "10.0.0.0/8"), "10.0.0.7") == 0);
    CHECK(strcmp(client("10.0.0.2", "unknown", "10.0.0.0/8"), "10.0.0.2") == 0);
    /* no header: the proxy itself */
    CHECK(strcmp(client("10.0.0.2", NULL, "10.0.0.0/8"), "10.0.0.2") == 0);
    /* forms proxies write; a v4-mapped peer */
    CHECK(strcmp(client("::ffff:10.0.0.2", "[2001:db8::5]:1234", "10.0.0.0/8"), "2001:db8::5") == 0);
    CHECK(strcmp(client("::1", "198.51.100.1:5555", "::1"), "198.51.100.1") == 0);
}

static const struct test_case tests[] = {
    TEST(test_count_parse),
    TEST(test_byte_range),
    TEST(test_header_checks),
    TEST(test_header_layout),
    TEST(test_addresses),
    TEST(test_cidr),
    TEST(test_forwarded_for),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
