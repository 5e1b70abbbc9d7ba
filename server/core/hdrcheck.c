/* Header section checks against request smuggling (see hdrcheck.h). */
#include "hdrcheck.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void fail(struct srv_hdr_check * c, const char * fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct srv_hdr_check * c, const char * fmt, ...) {
    if (c->bad) return; /* keep the first reason */
    c->bad = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
}

bool srv_hdr_name_ok(const char * s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (ch == 0 || (!alnum && !strchr("!#$%&'*+-.^_`|~", ch))) return false;
    }
    return true;
}

bool srv_hdr_value_ok(const char * s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
    }
    return true;
}

/* [from, to) holds only what MHD leaves between fields: NULs over ':' and line ends, and
 * the whitespace it skipped. */
static bool gap_clean(const char * from, const char * to) {
    for (const char * p = from; p < to; p++)
        if (*p != 0 && *p != ' ' && *p != '\t') return false;
    return true;
}

/* The first bytes of a field name, printable, for a message (names can hold anything). */
static const char * shown(const char * k, size_t n, char out[44]) {
    size_t i = 0;
    for (; i < n && i < 40; i++) out[i] = k[i] > 0x20 && k[i] < 0x7f ? k[i] : '?';
    out[i] = 0;
    return out;
}

static bool name_is(const char * k, size_t n, const char * want) {
    return n == strlen(want) && strncasecmp(k, want, n) == 0;
}

void srv_hdr_check_begin(struct srv_hdr_check * c, const char * region, size_t region_len) {
    memset(c, 0, sizeof(*c));
    c->region = region;
    c->region_len = region_len;
}

void srv_hdr_check_field(struct srv_hdr_check * c, const char * key, size_t key_len, const char * value,
                         size_t value_len) {
    char nm[44];
    c->n_fields++;
    if (!srv_hdr_name_ok(key, key_len)) {
        fail(c, "malformed header field name '%s' (whitespace before the colon, or not a token)",
             shown(key, key_len, nm));
        return;
    }
    if (!srv_hdr_value_ok(value, value_len)) {
        fail(c, "control character in the value of header %s", shown(key, key_len, nm));
        return;
    }
    if (c->region) {
        const char * end = c->region + c->region_len;
        const char * kend = key + key_len, * vend = value + value_len;
        bool inside = key >= c->region && kend <= end && value >= kend && vend <= end &&
                      (!c->prev_end || key >= c->prev_end);
        if (!inside) fail(c, "malformed header section near %s (folded line?)", shown(key, key_len, nm));
        else if (c->prev_end && !gap_clean(c->prev_end, key))
            fail(c, "NUL or stray bytes in the header line before %s", shown(key, key_len, nm));
        else if (!gap_clean(kend, value)) fail(c, "malformed header field %s", shown(key, key_len, nm));
        c->prev_end = vend;
    }
    if (name_is(key, key_len, "Content-Length")) c->n_content_length++;
    else if (name_is(key, key_len, "Host")) c->n_host++;
    else if (name_is(key, key_len, "Transfer-Encoding")) {
        c->n_transfer_encoding++;
        c->te = value;
        c->te_len = value_len;
    }
}

bool srv_hdr_check_end(struct srv_hdr_check * c) {
    if (c->region && c->prev_end && !gap_clean(c->prev_end, c->region + c->region_len))
        fail(c, "NUL or stray bytes in the last header line");
    if (c->n_content_length > 1) fail(c, "%d Content-Length headers: ambiguous framing", c->n_content_length);
    if (c->n_transfer_encoding > 1) fail(c, "%d Transfer-Encoding headers: ambiguous framing", c->n_transfer_encoding);
    if (c->n_content_length && c->n_transfer_encoding)
        fail(c, "both Transfer-Encoding and Content-Length: ambiguous framing");
    if (c->n_transfer_encoding == 1) {
        size_t n = c->te_len;
        while (n > 0 && (c->te[n - 1] == ' ' || c->te[n - 1] == '\t')) n--;
        if (!(n == 7 && strncasecmp(c->te, "chunked", 7) == 0))
            fail(c, "unsupported Transfer-Encoding '%.*s' (only chunked)", (int)(n < 40 ? n : 40), c->te);
    }
    if (c->n_host > 1) fail(c, "%d Host headers", c->n_host);
    return !c->bad;
}
