/* The `workers` directive: parsing, devsim fault injection, `auto` resolution
 * (workerspec.h). */
#include "workerspec.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/backend.h"

static bool fail(char * err, size_t len, const char * fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char * err, size_t len, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && len) vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return false;
}

bool srv_device_name_valid(const char * d) {
    if (!strcmp(d, "cpu") || !strcmp(d, "auto") || !strcmp(d, "cuda") || !strcmp(d, "devsim")) return true;
    const char * n = !strncmp(d, "cuda:", 5) ? d + 5 : !strncmp(d, "devsim:", 7) ? d + 7 : NULL;
    if (!n || !*n || strlen(n) > 3) return false;
    for (const char * p = n; *p; p++)
        if (!isdigit((unsigned char)*p)) return false;
    return true;
}

static bool all_digits(const char * s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

bool srv_workers_parse(const char * workers, const char * device, struct srv_worker_plan * p, char * err,
                       size_t err_len) {
    memset(p, 0, sizeof(*p));
    if (!strcmp(workers, "auto")) {
        p->is_auto = true;
        p->n = 1; /* until resolved: one cpu worker */
        snprintf(p->device[0], sizeof(p->device[0]), "cpu");
        snprintf(p->name[0], sizeof(p->name[0]), "cpu");
        return true;
    }
    if (all_digits(workers)) {
        long v = strlen(workers) <= 3 ? strtol(workers, NULL, 10) : 0;
        if (v < 1 || v > SRV_MAX_WORKERS)
            return fail(err, err_len, "workers: expected 1..%d, auto or a device list, got '%s'", SRV_MAX_WORKERS,
                        workers);
        p->n = (int)v;
        for (int i = 0; i < p->n; i++) {
            snprintf(p->device[i], sizeof(p->device[i]), "%s", device);
            /* several workers on one device: number them so that their labels differ */
            if (p->n == 1) snprintf(p->name[i], sizeof(p->name[i]), "%s", device);
            else snprintf(p->name[i], sizeof(p->name[i]), "%.31s/%d", device, i & 0xff);
        }
        return true;
    }
    const char * s = workers;
    while (*s) {
        const char * comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char d[32];
        if (len == 0 || len >= sizeof(d))
            return fail(err, err_len, "workers: expected auto, 1..%d or a list such as cuda:0,cuda:1, got '%s'",
                        SRV_MAX_WORKERS, workers);
        memcpy(d, s, len);
        d[len] = 0;
        if (!srv_device_name_valid(d) || !strcmp(d, "auto"))
            return fail(err, err_len, "workers: '%s' is not a device (cpu, cuda, cuda:N, devsim, devsim:N)", d);
        if (p->n == SRV_MAX_WORKERS) return fail(err, err_len, "workers: at most %d devices", SRV_MAX_WORKERS);
        for (int i = 0; i < p->n; i++)
            if (!strcmp(p->device[i], d)) return fail(err, err_len, "workers: device '%s' listed twice", d);
        snprintf(p->device[p->n], sizeof(p->device[0]), "%s", d);
        snprintf(p->name[p->n], sizeof(p->name[0]), "%s", d);
        p->n++;
        s += len + (comma ? 1 : 0);
        if (comma && !*s) return fail(err, err_len, "workers: trailing comma in '%s'", workers);
    }
    if (p->n == 0) return fail(err, err_len, "workers: empty");
    return true;
}

bool srv_devsim_faults_parse(const char * spec, struct srv_worker_plan * p, char * err, size_t err_len) {
    const char * s = spec;
    while (*s) {
        const char * comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char item[64];
        if (len == 0 || len >= sizeof(item))
            return fail(err, err_len, "devsim_faults: expected DEVICE@OP[,...], got '%s'", spec);
        memcpy(item, s, len);
        item[len] = 0;
        char * at = strchr(item, '@');
        if (!at || !all_digits(at + 1) || strlen(at + 1) > 15)
            return fail(err, err_len, "devsim_faults: expected DEVICE@OP (OP a positive count), got '%s'", item);
        *at = 0;
        int64_t op = strtoll(at + 1, NULL, 10);
        int w = -1;
        for (int i = 0; i < p->n; i++)
            if (!strcmp(p->name[i], item) && !strncmp(p->device[i], "devsim", 6)) w = i;
        if (w < 0 || op < 1)
            return fail(err, err_len, "devsim_faults: '%s' is not a devsim worker of `workers` (or OP < 1)", item);
        p->fault_at_op[w] = op;
        s += len + (comma ? 1 : 0);
    }
    return true;
}

void srv_workers_resolve_auto(struct srv_worker_plan * p) {
    if (!p->is_auto) return;
    int n = 0;
    for (int i = 0; i < SRV_MAX_WORKERS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "cuda:%d", i);
        struct infvsr_backend * be = NULL;
        struct infvsr_err e = { 0 };
        if (infvsr_backend_init_by_name(name, NULL, &be, &e) != INFVSR_OK) break;
        infvsr_backend_free(be);
        snprintf(p->device[n], sizeof(p->device[0]), "%s", name);
        snprintf(p->name[n], sizeof(p->name[0]), "%s", name);
        n++;
    }
    if (n == 0) {
        n = 1;
        snprintf(p->device[0], sizeof(p->device[0]), "cpu");
        snprintf(p->name[0], sizeof(p->name[0]), "cpu");
    }
    p->n = n;
}
