/* Backend selection by name (infvsr/backend.h): the one place that knows every backend of
 * this build. "auto" prefers a usable GPU and falls back to the CPU. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "isa.h"

/* "prefix" or "prefix:N" (N a decimal 0..max). Returns true on a match, *index = N or 0. */
static bool parse_indexed(const char * name, const char * prefix, int max, int * index, bool * bad) {
    size_t n = strlen(prefix);
    *bad = false;
    *index = 0;
    if (strncmp(name, prefix, n) != 0) return false;
    if (name[n] == '\0') return true;
    if (name[n] != ':') return false;
    const char * s = name + n + 1;
    if (*s < '0' || *s > '9' || strlen(s) > 4) {
        *bad = true;
        return true;
    }
    char * end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > max) {
        *bad = true;
        return true;
    }
    *index = (int)v;
    return true;
}

static enum infvsr_status init_cpu(const struct infvsr_backend_opts * o, struct infvsr_backend ** out,
                                   struct infvsr_err * err) {
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    enum infvsr_cpu_isa isa;
    INFVSR_TRY(infvsr_cpu_isa_select(o->cpu_isa, &isa, err));
    p.n_threads = o->n_threads;
    p.use_ref   = o->cpu_reference;
    p.bf16      = o->precision == INFVSR_PRECISION_BF16;
    p.isa       = (int)isa;
    enum infvsr_status st = infvsr_cpu_backend_init(&p, out);
    if (st != INFVSR_OK) return infvsr_err_set(err, st, "backend cpu: cannot start (%s)", infvsr_status_str(st));
    return INFVSR_OK;
}

enum infvsr_status infvsr_backend_init_by_name(const char * name, const struct infvsr_backend_opts * opts,
                                               struct infvsr_backend ** out, struct infvsr_err * err) {
    if (!out) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend: out is NULL");
    *out = NULL;
    if (!name) name = "auto";
    struct infvsr_backend_opts o = opts ? *opts : infvsr_backend_default_opts();
    if (!infvsr_precision_name(o.precision)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend: unknown precision %d", (int)o.precision);
    }
    int  index;
    bool bad;
    if (strcmp(name, "cpu") == 0) return init_cpu(&o, out, err);
    if (parse_indexed(name, "cuda", 1023, &index, &bad)) {
        if (bad) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend '%s': expected cuda or cuda:N", name);
        return infvsr_cuda_backend_init(index, o.precision, out, err);
    }
    if (parse_indexed(name, "devsim", 1023, &index, &bad)) {
        if (bad) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend '%s': expected devsim or devsim:N", name);
        return infvsr_devsim_backend_init(index, &o, out, err);
    }
    if (strcmp(name, "auto") == 0) {
        struct infvsr_err cuda_err;
        infvsr_err_clear(&cuda_err);
        enum infvsr_status st = infvsr_cuda_backend_init(0, o.precision, out, &cuda_err);
        if (st == INFVSR_OK) return INFVSR_OK;
        if (st != INFVSR_ERR_UNSUPPORTED) { /* a GPU is there but failed to start: say so */
            if (err) *err = cuda_err;
            return st;
        }
        return init_cpu(&o, out, err);
    }
    return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                          "backend '%s': unknown (expected cpu, cuda, cuda:N, auto, devsim or devsim:N)", name);
}
