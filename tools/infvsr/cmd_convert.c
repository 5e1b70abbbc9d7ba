/* `infvsr convert IN OUT.safetensors`: rewrites any checkpoint the readers accept (torch.save
 * zip or legacy, safetensors) as a safetensors file with the same keys, shapes, dtypes and
 * bytes. The header's "__metadata__" names the source file and its sha256, so a converted
 * file can be traced back to the download it came from. A converted file loads without
 * running the pickle machine and every tensor is a view into the mapping. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "infvsr/sha256.h"
#include "infvsr/weights.h"

static void usage(FILE * f) {
    fprintf(f, "usage: infvsr convert IN OUT.safetensors\n"
               "  Converts a checkpoint (.pth/.ckpt: torch.save zip or legacy format, or .safetensors)\n"
               "  into safetensors: same keys (wrapper prefixes included), shapes, dtypes and bytes.\n"
               "  The header metadata records source, source_sha256 and source_format.\n"
               "exit codes: 0 ok, 1 unreadable input or write error, 2 usage error\n");
}

static int file_sha256(const char * path, char hex[2 * INFVSR_SHA256_SIZE + 1]) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct infvsr_sha256 s;
    infvsr_sha256_init(&s);
    enum { BUF = 1 << 20 };
    uint8_t * buf = malloc(BUF);
    ssize_t   n   = 0;
    while (buf && (n = read(fd, buf, BUF)) > 0) infvsr_sha256_update(&s, buf, (size_t)n);
    close(fd);
    int rc = buf && n == 0 ? 0 : -1;
    free(buf);
    uint8_t d[INFVSR_SHA256_SIZE];
    infvsr_sha256_final(&s, d);
    for (int i = 0; i < INFVSR_SHA256_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return rc;
}

int infvsr_cmd_convert(int argc, char ** argv) {
    const char *         pos[2];
    int                  n_pos = 0;
    const struct cli_opt opts[] = { { NULL, CLI_FLAG, NULL, 0, 0 } };
    int                  rc = cli_parse("infvsr convert", argc, argv, opts, pos, 2, &n_pos);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc || n_pos != 2) {
        if (!rc) usage(stderr);
        return 2;
    }
    const char * in = pos[0], * out = pos[1];
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    if (infvsr_weights_open(in, &w, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr convert: %s\n", err.msg);
        return 1;
    }
    char hex[2 * INFVSR_SHA256_SIZE + 1], fmt[64];
    if (file_sha256(in, hex) != 0) {
        fprintf(stderr, "infvsr convert: %s: cannot read: %s\n", in, strerror(errno));
        infvsr_weights_close(w);
        return 1;
    }
    size_t                 n       = infvsr_weights_count(w);
    struct infvsr_tensor * tensors = malloc((n ? n : 1) * sizeof *tensors);
    const char **          names   = malloc((n ? n : 1) * sizeof *names);
    if (!tensors || !names) {
        fprintf(stderr, "infvsr convert: out of memory\n");
        free(tensors);
        free(names);
        infvsr_weights_close(w);
        return 1;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        tensors[i] = *infvsr_weights_at(w, i);
        names[i]   = infvsr_weights_key_at(w, i);
        bytes += infvsr_tensor_nbytes(&tensors[i]);
    }
    const char * slash = strrchr(in, '/');
    const char * meta[] = { "source", slash ? slash + 1 : in, "source_sha256", hex,
                            "source_format", infvsr_weights_format_name(w, fmt, sizeof fmt), "converted_by", "infvsr convert" };
    rc = 0;
    if (infvsr_safetensors_write_ex(out, tensors, names, n, meta, sizeof meta / sizeof meta[0] / 2, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr convert: %s\n", err.msg);
        rc = 1;
    } else {
        printf("wrote %s: %zu tensors, %llu bytes, from %s (%s, sha256 %s)\n", out, n, (unsigned long long)bytes, in, fmt, hex);
    }
    free(tensors);
    free(names);
    infvsr_weights_close(w);
    return rc;
}
