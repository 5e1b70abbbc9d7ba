#include "cli_util.h"

#include "infvsr/backend.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int parse_number(const char * prog, const struct cli_opt * o, const char * v) {
    char * end = NULL;
    errno      = 0;
    double x   = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(x)) {
        fprintf(stderr, "%s: %s expects a number, got '%s'\n", prog, o->name, v);
        return 2;
    }
    if (o->kind == CLI_INT && x != floor(x)) {
        fprintf(stderr, "%s: %s expects an integer, got '%s'\n", prog, o->name, v);
        return 2;
    }
    if (x < o->min || x > o->max) {
        fprintf(stderr, "%s: %s must be in [%g, %g], got '%s'\n", prog, o->name, o->min, o->max, v);
        return 2;
    }
    if (o->kind == CLI_INT) {
        *(int *)o->dst = (int)x;
    } else {
        *(double *)o->dst = x;
    }
    return 0;
}

int cli_parse(const char * prog, int argc, char ** argv, const struct cli_opt * opts,
              const char ** positional, int max_positional, int * n_positional) {
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char * a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return -1;
        const struct cli_opt * o = opts;
        while (o->name && strcmp(o->name, a) != 0) o++;
        if (!o->name) {
            if (positional && (a[0] != '-' || strcmp(a, "-") == 0) && n_pos < max_positional) {
                positional[n_pos++] = a;
                continue;
            }
            fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a);
            return 2;
        }
        if (o->kind == CLI_FLAG) {
            *(bool *)o->dst = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
        const char * v = argv[++i];
        if (o->kind == CLI_STR) {
            *(const char **)o->dst = v;
        } else if (parse_number(prog, o, v) != 0) {
            return 2;
        }
    }
    if (n_positional) *n_positional = n_pos;
    return 0;
}

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cli_sort_median(double * v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

double cli_peak_rss_kib(void) {
    FILE * f = fopen("/proc/self/status", "r");
    char   line[256];
    double kib = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) kib = strtod(line + 6, NULL);
    }
    if (f) fclose(f);
    if (kib < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kib = (double)ru.ru_maxrss;
    }
    return kib;
}

int cli_open_backend(const char * prog, const char * device, const char * precision, int threads, bool cpu_reference,
                     struct infvsr_backend ** be) {
    *be = NULL;
    int p = infvsr_precision_from_name(precision ? precision : "auto");
    if (p < 0) {
        fprintf(stderr, "%s: --precision must be auto, f32 or bf16, got '%s'\n", prog, precision);
        return 2;
    }
    struct infvsr_backend_opts bo = infvsr_backend_default_opts();
    bo.n_threads     = threads;
    bo.precision     = (enum infvsr_precision)p;
    bo.cpu_reference = cpu_reference;
    struct infvsr_err err;
    infvsr_err_clear(&err);
    enum infvsr_status st = infvsr_backend_init_by_name(device ? device : "cpu", &bo, be, &err);
    if (st == INFVSR_OK) return 0;
    fprintf(stderr, "%s: --device %s%s%s: %s\n", prog, device ? device : "cpu", precision ? " --precision " : "",
            precision ? precision : "", err.msg[0] ? err.msg : infvsr_status_str(st));
    if (st == INFVSR_ERR_UNSUPPORTED) return CLI_EXIT_NO_DEVICE;
    if (st == INFVSR_ERR_INVALID_ARG) return 2;
    return 1;
}
