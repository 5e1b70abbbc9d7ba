/* `infvsr run MODULE ...`: the verification subcommand. Runs one module of the model on
 * tensors read from a safetensors file and writes its outputs to a safetensors file, so
 * that any module can be compared with the PyTorch reference outside the test suite.
 * Tensor names per module are documented in docs/VERIFY.md. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "run_modules.h"

struct module {
    const char * name;
    int (*fn)(int argc, char ** argv);
    const char * help;
};

static const struct module modules[] = {
    /* Each module adds one line here, its runner lives in run_<module>.c. */
    { "dit", infvsr_run_dit, "causal DiT on a chunk sequence (KV cache): pred_i, restored_i" },
    { "vae-encode", infvsr_run_vae, "streaming VAE encode of frames_i chunks: latents_i" },
    { "vae-decode", infvsr_run_vae, "streaming VAE decode of latents_i chunks: decoded_i" },
    { "visual", infvsr_run_visual, "RAM Swin-L + DAPE + image_proj on one frame/image: context, tokens" },
    { NULL, NULL, NULL },
};

int infvsr_cmd_run(int argc, char ** argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE * f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: infvsr run <module> [options]   (see docs/VERIFY.md)\n\nmodules:\n");
        for (const struct module * m = modules; m->name; m++) fprintf(f, "  %-12s %s\n", m->name, m->help);
        return argc < 2 ? 2 : 0;
    }
    for (const struct module * m = modules; m->name; m++) {
        if (strcmp(argv[1], m->name) == 0) return m->fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "infvsr run: unknown module '%s'\n", argv[1]);
    return 2;
}
