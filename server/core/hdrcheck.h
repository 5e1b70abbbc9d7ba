/* The request header section, checked before any route sees it (issue 15 item 5: request
 * smuggling). libmicrohttpd 0.9.75 is lax where a proxy in front of us may be strict, or
 * the other way round, and a disagreement about where a request ends is a desync:
 *   - several Content-Length headers: MHD uses the first;
 *   - several Transfer-Encoding headers ("chunked" + "identity"): MHD looks at the first;
 *   - "Transfer-Encoding : chunked" (space before the colon): MHD keeps the name with the
 *     space, so it is not Transfer-Encoding to MHD, and Content-Length frames the body;
 *   - a NUL in a value: MHD's strings end there and the rest of the line is dropped;
 *   - obs-fold (a line starting with a space continues the previous one): MHD appends it
 *     to the previous field's *name*.
 * All of these are answered 400 and the connection closed (RFC 9112 6.3, 5.1, 5.2).
 *
 * How a NUL is seen: MHD parses the header in place, in its read buffer, and the
 * key/value pointers it hands out point into that buffer, in order. Between the end of one
 * field's value and the next field's name there may only be what MHD wrote over the line
 * ends (NULs) and the optional whitespace it skipped; anything else is the tail of a value
 * cut at a NUL. The same walk catches fields that MHD moved (obs-fold reallocates the
 * name outside the buffer). The region is [method, method + header size) (the access
 * handler's `method` argument is the start of the request line; MHD reports the size).
 *
 * Pure code over those pointers (unit tests: tests/server-core/test_http_parse.c); http.c
 * feeds it from MHD_get_connection_values_n. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct srv_hdr_check {
    const char * region;       /* the raw header section, NULL = skip the layout walk   */
    size_t  region_len;
    const char * prev_end;     /* end of the last field seen (NULL before the first)    */
    int     n_fields, n_content_length, n_transfer_encoding, n_host;
    const char * te;           /* the Transfer-Encoding value                            */
    size_t  te_len;
    bool    bad;
    char    msg[160];          /* why, when bad                                          */
};

void srv_hdr_check_begin(struct srv_hdr_check * c, const char * region, size_t region_len);
/* One header field, in the order received. */
void srv_hdr_check_field(struct srv_hdr_check * c, const char * key, size_t key_len, const char * value,
                         size_t value_len);
/* True when the header section is acceptable; else c->msg says why. */
bool srv_hdr_check_end(struct srv_hdr_check * c);

/* RFC 9110 5.6.2 token (a field name), and a field value without control characters
 * (HTAB and obs-text allowed). */
bool srv_hdr_name_ok(const char * s, size_t n);
bool srv_hdr_value_ok(const char * s, size_t n);
