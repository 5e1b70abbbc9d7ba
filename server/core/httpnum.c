/* Overflow-checked numbers from the network (see httpnum.h). */
#include "httpnum.h"

#include <string.h>

enum srv_num srv_parse_count_n(const char * s, size_t len, int64_t * out) {
    *out = 0;
    if (!s || len == 0) return SRV_NUM_INVALID;
    int64_t v = 0;
    bool big = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return SRV_NUM_INVALID;
        int d = s[i] - '0';
        /* v * 10 + d > INT64_MAX  <=>  v > (INT64_MAX - d) / 10: checked before it happens */
        if (big || v > (INT64_MAX - d) / 10) big = true;
        else v = v * 10 + d;
    }
    *out = big ? INT64_MAX : v;
    return big ? SRV_NUM_TOO_LARGE : SRV_NUM_OK;
}

enum srv_num srv_parse_count(const char * s, int64_t * out) {
    return srv_parse_count_n(s, s ? strlen(s) : 0, out);
}

int64_t srv_add_sat(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

enum srv_range srv_parse_range(const char * h, int64_t size, int64_t * off, int64_t * len) {
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',')) return SRV_RANGE_NONE;
    const char * p = h + 6, * dash = strchr(p, '-');
    if (!dash) return SRV_RANGE_NONE;
    int64_t a = 0, b = 0;
    if (dash == p) { /* suffix: the last N bytes */
        if (srv_parse_count(dash + 1, &b) == SRV_NUM_INVALID) return SRV_RANGE_NONE;
        if (b == 0 || size == 0) return SRV_RANGE_UNSATISFIABLE;
        if (b > size) b = size;
        *off = size - b;
        *len = b;
        return SRV_RANGE_OK;
    }
    if (srv_parse_count_n(p, (size_t)(dash - p), &a) == SRV_NUM_INVALID) return SRV_RANGE_NONE;
    b = INT64_MAX; /* "first-": to the end */
    if (dash[1] && srv_parse_count(dash + 1, &b) == SRV_NUM_INVALID) return SRV_RANGE_NONE;
    if (b < a) return SRV_RANGE_NONE;
    if (a >= size) return SRV_RANGE_UNSATISFIABLE;
    if (b >= size) b = size - 1; /* size > a >= 0 here, so b - a + 1 below cannot overflow */
    *off = a;
    *len = b - a + 1;
    return SRV_RANGE_OK;
}
