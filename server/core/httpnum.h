/* Numbers from the network: the one parser every numeric request header goes through
 * (Content-Length, Upload-Length, Upload-Offset, the bounds of a Range), and the byte-range
 * parser built on it. Pure functions, no daemon state (unit tests: test_http_parse.c).
 *
 * A count is 1*DIGIT, nothing else: no sign, no spaces, no "0x", no list ("5, 5"). A value
 * that does not fit in int64 is not an error of form but of size, so the parser saturates:
 * it reports SRV_NUM_TOO_LARGE with *out = INT64_MAX, and callers answer 413 (a limit was
 * exceeded) where a bad form gets 400. Nothing overflows on the way (issue 15 item 1: the
 * old parser multiplied past INT64_MAX). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum srv_num {
    SRV_NUM_OK,
    SRV_NUM_INVALID,   /* absent, empty, or not only digits                               */
    SRV_NUM_TOO_LARGE, /* only digits but > INT64_MAX: *out = INT64_MAX (saturated)       */
};

/* Parses the whole NUL-terminated `s` (NULL = absent -> INVALID). */
enum srv_num srv_parse_count(const char * s, int64_t * out);
/* The same over s[0..len). */
enum srv_num srv_parse_count_n(const char * s, size_t len, int64_t * out);

/* a + b for non-negative a, b, saturating at INT64_MAX. */
int64_t srv_add_sat(int64_t a, int64_t b);

/* A single "bytes=first-last", "bytes=first-" or "bytes=-suffix" range of a `size`-byte
 * representation (RFC 9110 14.1.2). */
enum srv_range {
    SRV_RANGE_NONE,          /* no header, or one we ignore (several ranges, other units,
                              * bad syntax, last < first): serve the whole file (RFC 9110
                              * allows ignoring Range)                                  */
    SRV_RANGE_OK,            /* [*off, *off + *len)                                     */
    SRV_RANGE_UNSATISFIABLE, /* first >= size, or a zero suffix: 416                    */
};
enum srv_range srv_parse_range(const char * h, int64_t size, int64_t * off, int64_t * len);
