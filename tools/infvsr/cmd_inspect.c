/* `infvsr inspect FILE [--json]`: list every tensor of a checkpoint.
 *
 * Text mode prints one line per tensor (key, dtype, shape) and a summary line. --json
 * adds the sha256 of each tensor's bytes (contiguous, little-endian, stored dtype) so a
 * checkpoint can be compared bit-for-bit against PyTorch (tests/io/check_inspect.py). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "infvsr/weights.h"
#include "infvsr/sha256.h"

static void usage(FILE * f) {
    fprintf(f, "usage: infvsr inspect FILE [--json]\n"
               "  Lists the tensors of a .safetensors or torch.save (.pth/.ckpt) file.\n"
               "  --json  machine-readable output, with the sha256 of every tensor's bytes\n"
               "exit codes: 0 ok, 1 unreadable or malformed file, 2 usage error\n");
}

static const char * format_name(enum infvsr_weights_format f) {
    return f == INFVSR_WEIGHTS_SAFETENSORS ? "safetensors" : f == INFVSR_WEIGHTS_TORCH_LEGACY ? "torch_legacy" : "torch_zip";
}

static int print_json(const struct infvsr_weights * w, int64_t params, uint64_t bytes) {
    json_t * tensors = json_array();
    size_t   n       = infvsr_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const struct infvsr_tensor * t = infvsr_weights_at(w, i);
        json_t * shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        char hex[2 * INFVSR_SHA256_SIZE + 1];
        infvsr_sha256_hex(t->data, infvsr_tensor_nbytes(t), hex);
        json_array_append_new(tensors, json_pack("{s:s, s:s, s:o, s:s}", "key", infvsr_weights_key_at(w, i),
                                                 "dtype", infvsr_dtype_name(t->dtype), "shape", shape, "sha256", hex));
    }
    json_t * root = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o}", "file", infvsr_weights_path(w), "format",
                              format_name(infvsr_weights_format(w)), "count", (json_int_t)n, "params",
                              (json_int_t)params, "bytes", (json_int_t)bytes, "tensors", tensors);
    int rc = json_dumpf(root, stdout, JSON_INDENT(1)) == 0 ? 0 : 1;
    fputc('\n', stdout);
    json_decref(root);
    return rc;
}

int infvsr_cmd_inspect(int argc, char ** argv) {
    const char * path = NULL;
    int          json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "infvsr inspect: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    if (infvsr_weights_open(path, &w, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr inspect: %s\n", err.msg);
        return 1;
    }
    int64_t  params = 0;
    uint64_t bytes  = 0;
    size_t   n      = infvsr_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const struct infvsr_tensor * t = infvsr_weights_at(w, i);
        params += infvsr_tensor_numel(t);
        bytes += infvsr_tensor_nbytes(t);
    }
    int rc = 0;
    if (json) {
        rc = print_json(w, params, bytes);
    } else {
        for (size_t i = 0; i < n; i++) {
            const struct infvsr_tensor * t = infvsr_weights_at(w, i);
            char shape[128];
            printf("%-64s %-4s %s\n", infvsr_weights_key_at(w, i), infvsr_dtype_name(t->dtype),
                   infvsr_shape_str(t->ndim, t->shape, shape, sizeof shape));
        }
        printf("%zu tensors, %" PRId64 " parameters, %" PRIu64 " bytes (%s)\n", n, params, bytes,
               format_name(infvsr_weights_format(w)));
    }
    infvsr_weights_close(w);
    return rc;
}
