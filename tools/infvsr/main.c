/* infvsr: the command-line front end of the engine. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
    const char * name;
    int (*fn)(int argc, char ** argv);
    const char * help;
};

static const struct command commands[] = {
    { "inspect", infvsr_cmd_inspect, "list the tensors of a checkpoint (.pth/.ckpt/.safetensors)" },
    { "run",     infvsr_cmd_run,     "run one model module on tensors from a safetensors file" },
    { "upscale", infvsr_cmd_upscale, "super-resolve a video file (FFmpeg in/out, audio copied)" },
    { "submit",  infvsr_cmd_submit,  "run a video on an infvsrd daemon (resumable upload, progress, download)" },
    { "make-tiny-model", infvsr_cmd_make_tiny, "write a RANDOM-weight demo model directory (output not meaningful)" },
    { NULL, NULL, NULL },
};

static void usage(FILE * f) {
    fprintf(f, "usage: infvsr <command> [options]\n\ncommands:\n");
    for (const struct command * c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->help);
    fprintf(f, "\n'infvsr <command> --help' describes a command.\n");
}

int main(int argc, char ** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (const struct command * c = commands; c->name; c++) {
        if (strcmp(argv[1], c->name) == 0) return c->fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "infvsr: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
