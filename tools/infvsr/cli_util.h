/* Shared pieces of the `infvsr` subcommands: a table-driven option parser with strict number
 * parsing (a typo like `--threads 2x` is a usage error, not a silent 2 or 0), a monotonic
 * clock, sorting for medians and the process's peak RSS. */
#pragma once

#include <stdbool.h>

enum cli_kind {
    CLI_FLAG,   /* bool *: set to true when present        */
    CLI_STR,    /* const char **: the next argument         */
    CLI_INT,    /* int *: the next argument, in [min, max]  */
    CLI_DOUBLE, /* double *: the next argument, in [min, max] */
};

struct cli_opt {
    const char *  name;  /* "--threads"; a NULL name ends the table */
    enum cli_kind kind;
    void *        dst;
    double        min, max; /* CLI_INT / CLI_DOUBLE bounds (inclusive) */
};

/* Parses argv[1..argc) against `opts`. Returns 0 on success, -1 when -h/--help was given
 * (the caller prints usage to stdout and exits 0), 2 on a usage error (message printed to
 * stderr as "<prog>: ..."). Positional arguments are refused unless `positional` is non-NULL,
 * in which case up to `max_positional` of them are stored there in order and their count in
 * *n_positional. */
int cli_parse(const char * prog, int argc, char ** argv, const struct cli_opt * opts,
              const char ** positional, int max_positional, int * n_positional);

double cli_now_s(void);

/* Sorts v ascending in place and returns the median (v[n/2]); n >= 1. */
double cli_sort_median(double * v, int n);

/* Peak resident set of this process in KiB (VmHWM; getrusage as a fallback). VmHWM, not
 * ru_maxrss: ru_maxrss survives exec, so a process started by a large parent (a benchmark's
 * PyTorch) would report the parent's peak. */
double cli_peak_rss_kib(void);
