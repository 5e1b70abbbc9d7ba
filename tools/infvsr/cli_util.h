/* Shared pieces of the `infvsr` subcommands: a table-driven option parser with strict number
 * parsing (a typo like `--threads 2x` is a usage error, not a silent 2 or 0), a monotonic
 * clock, sorting for medians and the process's peak RSS. */
#pragma once

#include <stdbool.h>

struct infvsr_backend;

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

/* ---- --device / --precision (every command that runs the model) ---- */

/* Exit code when the requested device is not available: a build without CUDA, no usable
 * GPU, or bf16 asked of a machine that has only the CPU. Distinct from 1 (bad input or
 * runtime failure) and 2 (usage error) so that scripts can fall back to --device cpu. */
#define CLI_EXIT_NO_DEVICE 3

/* The option lines of --device/--precision for usage texts. */
#define CLI_DEVICE_HELP                                                                                 \
    "  --device D               cpu, cuda, cuda:N, auto (a usable GPU, else the CPU) or devsim[:N]\n"  \
    "                           (the device-emulating test backend); exit code 3 when D is not\n"     \
    "                           available in this build or on this machine\n"                         \
    "  --precision P            auto (the device's own: f32 on cpu and devsim, bf16 on cuda), f32\n"  \
    "                           or bf16 (cuda, devsim)\n"

/* Opens the backend `device` (cpu|cuda[:N]|auto|devsim[:N]) computing in `precision`
 * (auto|f32|bf16) with `threads` CPU threads (0 = all). Returns 0 with *be set, or an exit
 * code after printing "<prog>: ..." to stderr: 2 for an unknown device or precision name or
 * a precision the device cannot run, CLI_EXIT_NO_DEVICE when the device is not available,
 * 1 for any other failure. */
int cli_open_backend(const char * prog, const char * device, const char * precision, int threads, bool cpu_reference,
                     struct infvsr_backend ** be);
