/* Helpers of the daemon core (see util.h). */
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "config.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool fill_random(void * buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)buf + got, n - got, 0);
        if (r <= 0) return false;
        got += (size_t)r;
    }
    return true;
}

bool srv_job_id_new(const char * instance, char * out, size_t out_len) {
    unsigned char r[18] = { 0 }; /* 16 random bytes, padded to a multiple of 3 */
    if (!fill_random(r, 16)) return false;
    char enc[25];
    size_t o = 0;
    for (size_t i = 0; i < 18; i += 3) {
        uint32_t v = ((uint32_t)r[i] << 16) | ((uint32_t)r[i + 1] << 8) | r[i + 2];
        enc[o++] = b64url[(v >> 18) & 63];
        enc[o++] = b64url[(v >> 12) & 63];
        enc[o++] = b64url[(v >> 6) & 63];
        enc[o++] = b64url[v & 63];
    }
    enc[SRV_JOB_ID_RAND_LEN] = 0; /* 16 bytes = 128 bits = 21.3 chars -> 22 (no padding) */
    int n = snprintf(out, out_len, "%s.%s", instance, enc);
    return n > 0 && (size_t)n < out_len;
}

bool srv_job_id_parse(const char * id, char * inst, size_t inst_len) {
    const char * dot = strchr(id, '.');
    if (!dot) return false;
    size_t il = (size_t)(dot - id);
    char name[64];
    if (il == 0 || il >= sizeof(name)) return false;
    memcpy(name, id, il);
    name[il] = 0;
    if (!srv_instance_name_valid(name)) return false;
    const char * r = dot + 1;
    if (strlen(r) != SRV_JOB_ID_RAND_LEN) return false;
    for (const char * p = r; *p; p++)
        if (!strchr(b64url, *p)) return false;
    if (inst) snprintf(inst, inst_len, "%s", name);
    return true;
}

void srv_request_id_new(char out[17]) {
    uint64_t v = 0;
    if (!fill_random(&v, sizeof(v))) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)v);
}

bool srv_ct_equal(const void * a, size_t a_len, const void * b, size_t b_len) {
    const volatile unsigned char * x = a, * y = b;
    unsigned char diff = (unsigned char)(a_len != b_len);
    for (size_t i = 0; i < b_len; i++) {
        unsigned char xa = i < a_len ? x[i] : 0; /* same work whatever a_len is */
        diff |= (unsigned char)(xa ^ y[i]);
    }
    return diff == 0;
}

double srv_mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double srv_unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_rfc3339(double t, char * out, size_t len) {
    if (t <= 0) {
        if (len) out[0] = 0;
        return;
    }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)((t - (double)s) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 999) ms = 999;
    snprintf(out, len, "%s.%03dZ", base, ms);
}

void srv_http_date(double t, char * out, size_t len) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    static const char * days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char * mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int b64_val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool srv_base64_decode(const char * in, size_t n, char * out, size_t cap, size_t * out_len) {
    while (n > 0 && in[n - 1] == '=') n--;
    if (n % 4 == 1) return false;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(in[i]);
        if (v < 0) return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap) return false;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = 0;
    *out_len = o;
    return true;
}
