/* `infvsr verify-model DIR [--config CFG.json]`: checks the four files of a model directory
 * against what the model config needs (engine: infvsr_model_file_check), without loading the
 * modules: per file one summary line (the one infvsrd logs at startup) and the problems
 * found (missing keys with the nearest names, wrong shapes, wrong dtypes, unreadable file).
 * Exit status for scripts: 0 all files good, 1 a problem, 2 usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"
#include "commands.h"
#include "infvsr/model_files.h"
#include "infvsr/session.h"
#include "infvsr/weights.h"

#define MAX_PROBLEM_LINES 20

static void usage(FILE * f) {
    fprintf(f, "usage: infvsr verify-model DIR [--config CFG.json]\n"
               "  Checks DIR/{InfVSR.ckpt, Wan2.1_VAE.pth, ram_swin_large_14m.pth, DAPE.pth} (each may be\n"
               "  <stem>.safetensors) against the tensors the model config needs: count, shapes, dtypes.\n"
               "  --config  architecture JSON (default: DIR/model.json if present, else the full InfVSR config)\n"
               "exit codes: 0 every file good, 1 a file is missing, unreadable or lacks what the model needs,\n"
               "            2 usage error\n");
}

static bool is_file(const char * path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* DIR/name, or DIR/<stem>.safetensors (as infvsr_model_open_dir looks them up). */
static bool find_file(const char * dir, const char * name, char * out, size_t len) {
    snprintf(out, len, "%s/%s", dir, name);
    if (is_file(out)) return true;
    const char * dot = strrchr(name, '.');
    snprintf(out, len, "%s/%.*s.safetensors", dir, dot ? (int)(dot - name) : (int)strlen(name), name);
    return is_file(out);
}

static void print_problems(const char * problems, size_t n_problems) {
    int          lines = 0;
    const char * p     = problems;
    while (*p && lines < MAX_PROBLEM_LINES) {
        const char * nl = strchr(p, '\n');
        int          l  = nl ? (int)(nl - p) : (int)strlen(p);
        printf("  - %.*s\n", l, p);
        lines++;
        p += l + (nl ? 1 : 0);
    }
    if (n_problems > (size_t)lines) printf("  - ... and %zu more\n", n_problems - (size_t)lines);
}

int infvsr_cmd_verify_model(int argc, char ** argv) {
    const char *         cfg_path = NULL;
    const char *         pos[1];
    int                  n_pos = 0;
    const struct cli_opt opts[] = { { "--config", CLI_STR, &cfg_path, 0, 0 }, { NULL, CLI_FLAG, NULL, 0, 0 } };
    int                  rc = cli_parse("infvsr verify-model", argc, argv, opts, pos, 1, &n_pos);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc || n_pos != 1) {
        if (!rc) usage(stderr);
        return 2;
    }
    const char *               dir = pos[0];
    struct infvsr_model_config cfg = infvsr_model_config_full();
    struct infvsr_err          err = { 0 };
    char                       path[4096];
    if (!cfg_path) {
        snprintf(path, sizeof path, "%s/%s", dir, INFVSR_MODEL_FILE_CONFIG);
        if (is_file(path)) cfg_path = path;
    }
    if (cfg_path && infvsr_model_config_load(cfg_path, &cfg, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr verify-model: %s: %s\n", cfg_path, err.msg);
        return 1;
    }
    printf("model config: %s (%s)\n", cfg.name, cfg_path ? cfg_path : "built-in full config");
    int bad_files = 0;
    struct infvsr_model_file_check * c = malloc(sizeof *c);
    if (!c) return 1;
    for (int f = 0; f < INFVSR_FILE_COUNT; f++) {
        const char * name = infvsr_model_file_name((enum infvsr_model_file)f);
        if (!find_file(dir, name, path, sizeof path)) {
            printf("%s: missing (looked for %s/%s and the .safetensors of the same stem)\n", name, dir, name);
            bad_files++;
            continue;
        }
        struct infvsr_weights * w;
        if (infvsr_weights_open(path, &w, &err) != INFVSR_OK) {
            printf("%s: unreadable\n", name);
            print_problems(err.msg, 1);
            bad_files++;
            continue;
        }
        char line[512];
        infvsr_model_file_check(&cfg, (enum infvsr_model_file)f, w, c);
        printf("%s\n", infvsr_model_file_check_line(c, (enum infvsr_model_file)f, w, line, sizeof line));
        if (c->n_problems) {
            print_problems(c->problems, c->n_problems);
            bad_files++;
        }
        infvsr_weights_close(w);
    }
    free(c);
    printf("%s: %d of %d files %s\n", dir, bad_files ? bad_files : INFVSR_FILE_COUNT, INFVSR_FILE_COUNT,
           bad_files ? "have problems" : "good");
    return bad_files ? 1 : 0;
}
