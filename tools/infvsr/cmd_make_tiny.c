/* `infvsr make-tiny-model DIR [--seed N] [--config CFG.json]`: writes a demo model with the
 * InfVSR architecture at tiny widths (config/models/infvsr-tiny.json) and deterministic RANDOM
 * weights, as the four files of a model directory in safetensors format plus model.json and
 * README.txt. Its output is NOT meaningful super-resolution: it exists so that
 * `infvsr upscale --model-dir DIR` runs end to end on a fresh machine without the official
 * checkpoints (and for smoke tests and benchmarks).
 *
 * Key names and shapes come from infvsr_model_file_spec() (engine/pipeline/model_spec.c), the
 * list the loaders read (MODEL-SPEC §4.9, §5.9/Appendix A, §6.4): the DiT in bf16 as InfVSR.ckpt ships it, the VAE, Swin (with the "model." prefix of
 * ram_swin_large_14m.pth) and DAPE in f32. Scales keep activations O(1): weights
 * N(0, 1/fan_in), biases N(0, 0.05^2), norm gains 1 + N(0, 0.1^2), modulations N(0, 0.1^2),
 * the VAE decoder head x0.3 so that decoded frames stay mostly inside [-1, 1]. With --config
 * config/models/infvsr-full.json it writes full-size random weights (about 4 GB; the numbers
 * are generated on every core, the same bytes as one sequential pass). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "infvsr/model_config.h"
#include "infvsr/model_files.h"
#include "infvsr/session.h"
#include "infvsr/tensor.h"
#include "infvsr/weights.h"

enum init_kind { INIT_FAN_IN, INIT_BIAS, INIT_GAIN, INIT_MOD, INIT_TABLE, INIT_UNIT };

struct tlist {
    struct infvsr_tensor * t;
    size_t                 n, cap;
    enum infvsr_dtype      dtype;
    uint64_t               rng;
    bool                   oom;
    const char *           prefix; /* before every key: "model." for ram_swin_large_14m (its "model" entry) */
};

#define SPLITMIX_STEP 0x9e3779b97f4a7c15ull

/* splitmix64 + Box-Muller: the same numbers on every machine. */
static double uniform01(uint64_t * s) {
    uint64_t z = (*s += SPLITMIX_STEP);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* "<name><suffix>" in k (256 bytes); the names here are the tool's own constants, so a
 * truncation is a programming error. */
static const char * suffixed(char * k, const char * name, const char * suffix) {
    if (snprintf(k, 256, "%s%s", name, suffix) >= 256) {
        fprintf(stderr, "make-tiny: tensor name too long: %s%s\n", name, suffix);
        abort();
    }
    return k;
}

static double normal(uint64_t * s) {
    double u = uniform01(s), v = uniform01(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Elements [i0, i1) of a tensor. Element i takes the two uniforms after stream state
 * rng0 + 2 i steps (splitmix64 is a counter: the k-th state is rng0 + k * SPLITMIX_STEP), so
 * any split of the range gives exactly the bytes of one sequential pass. */
struct fill_job {
    struct infvsr_tensor * t;
    enum init_kind         kind;
    float                  scale;
    int64_t                fan_in, i0, i1;
    uint64_t               rng0;
};

static void * fill_range(void * arg) {
    const struct fill_job * j = arg;
    const size_t es = infvsr_dtype_size(j->t->dtype);
    uint64_t rng = j->rng0 + 2 * (uint64_t)j->i0 * SPLITMIX_STEP;
    for (int64_t i = j->i0; i < j->i1; i++) {
        double z = normal(&rng), v;
        switch (j->kind) {
        case INIT_FAN_IN: v = z / sqrt((double)j->fan_in); break;
        case INIT_BIAS:   v = 0.05 * z; break;
        case INIT_GAIN:   v = 1.0 + 0.1 * z; break;
        case INIT_MOD:    v = 0.1 * z; break;
        case INIT_TABLE:  v = 0.5 * z; break;
        default:          v = z; break;
        }
        float f = (float)v * j->scale;
        infvsr_convert_from_f32((char *)j->t->data + (size_t)i * es, j->t->dtype, &f, 1);
    }
    return NULL;
}

/* Fills t on up to all cores: the full-size model is ~1.6 G numbers (a minute on one core). */
static void fill(struct tlist * l, struct infvsr_tensor * t, enum init_kind kind, float scale, int64_t fan_in) {
    enum { MAX_THREADS = 64, MIN_PER_THREAD = 1 << 20 };
    const int64_t n = infvsr_tensor_numel(t);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t nt = n / MIN_PER_THREAD;
    if (nt > cores) nt = cores;
    if (nt > MAX_THREADS) nt = MAX_THREADS;
    if (nt < 1) nt = 1;
    struct fill_job jobs[MAX_THREADS];
    pthread_t       tid[MAX_THREADS];
    bool            started[MAX_THREADS] = { false };
    for (int64_t k = 0; k < nt; k++) {
        jobs[k] = (struct fill_job){ .t = t, .kind = kind, .scale = scale, .fan_in = fan_in,
                                     .i0 = n * k / nt, .i1 = n * (k + 1) / nt, .rng0 = l->rng };
        /* The last range runs here; a thread that cannot start runs its range here too. */
        if (k + 1 < nt) started[k] = pthread_create(&tid[k], NULL, fill_range, &jobs[k]) == 0;
        if (!started[k]) fill_range(&jobs[k]);
    }
    for (int64_t k = 0; k < nt; k++)
        if (started[k]) pthread_join(tid[k], NULL);
    l->rng += 2 * (uint64_t)n * SPLITMIX_STEP;
}

/* The spec's callback: allocates the tensor under l->prefix + key and fills it. */
static void add(void * ctx, const struct infvsr_tensor_spec * s) {
    struct tlist * l = ctx;
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct infvsr_tensor * t = realloc(l->t, cap * sizeof *t);
        if (!t) { l->oom = true; return; }
        l->t = t, l->cap = cap;
    }
    char name[256];
    suffixed(name, l->prefix, s->key);
    struct infvsr_tensor * t = &l->t[l->n];
    if (infvsr_tensor_alloc(t, name, l->dtype, s->ndim, s->shape) != INFVSR_OK) { l->oom = true; return; }
    l->n++;
    static const enum init_kind kinds[] = { [INFVSR_INIT_FAN_IN] = INIT_FAN_IN, [INFVSR_INIT_BIAS] = INIT_BIAS,
                                            [INFVSR_INIT_GAIN] = INIT_GAIN, [INFVSR_INIT_MOD] = INIT_MOD,
                                            [INFVSR_INIT_TABLE] = INIT_TABLE };
    int64_t n = infvsr_tensor_numel(t);
    fill(l, t, kinds[s->init], s->scale, n / (s->shape[0] > 0 ? s->shape[0] : 1));
}

static void tlist_free(struct tlist * l) {
    for (size_t i = 0; i < l->n; i++) infvsr_tensor_release(&l->t[i]);
    free(l->t);
    memset(l, 0, sizeof *l);
}

static int write_file(const char * dir, const char * name, struct tlist * l) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct infvsr_err err = { 0 };
    if (l->oom) {
        fprintf(stderr, "infvsr make-tiny-model: out of memory building %s\n", name);
        return 1;
    }
    if (infvsr_safetensors_write(path, l->t, l->n, &err) != INFVSR_OK) {
        fprintf(stderr, "infvsr make-tiny-model: %s: %s\n", path, err.msg);
        return 1;
    }
    return 0;
}

static struct infvsr_model_config tiny_config(void) {
    struct infvsr_model_config c = { .name = "infvsr-tiny-random" };
    c.dit = (struct infvsr_dit_config){ .dim = 128, .ffn_dim = 256, .num_heads = 2, .num_layers = 2, .in_dim = 16,
                                        .out_dim = 16, .freq_dim = 256, .text_dim = 64, .eps = 1e-6f };
    c.vae = (struct infvsr_vae_config){ .dim = 8, .z_dim = 16, .dim_mult = { 1, 2, 4, 4 }, .num_res_blocks = 2 };
    c.visual = (struct infvsr_visual_config){ .img_size = 384, .patch_size = 4, .embed_dim = 32,
                                              .depths = { 2, 2, 2, 2 }, .num_heads = { 1, 2, 4, 8 },
                                              .window_size = 12, .mlp_ratio = 4, .lora_rank = 8, .out_dim = 64 };
    return c;
}

static int write_config(const char * dir, const struct infvsr_model_config * c, unsigned long long seed) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, INFVSR_MODEL_FILE_CONFIG);
    FILE * f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "infvsr make-tiny-model: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    const struct infvsr_visual_config * v = &c->visual;
    fprintf(f,
            "{\n  \"name\": \"%s\",\n"
            "  \"description\": \"RANDOM WEIGHTS (seed %llu) - output is not meaningful. Demo/test model made by "
            "infvsr make-tiny-model.\",\n"
            "  \"dit\": {\n    \"dim\": %d, \"ffn_dim\": %d, \"num_heads\": %d, \"num_layers\": %d,\n"
            "    \"in_dim\": %d, \"out_dim\": %d, \"freq_dim\": %d, \"text_dim\": %d, \"eps\": %g\n  },\n"
            "  \"vae\": {\n    \"dim\": %d, \"z_dim\": %d, \"dim_mult\": [%d, %d, %d, %d], \"num_res_blocks\": %d\n  },\n"
            "  \"visual\": {\n    \"img_size\": %d, \"patch_size\": %d, \"embed_dim\": %d, \"depths\": [%d, %d, %d, %d],\n"
            "    \"num_heads\": [%d, %d, %d, %d], \"window_size\": %d, \"mlp_ratio\": %d, \"lora_rank\": %d,\n"
            "    \"out_dim\": %d\n  }\n}\n",
            c->name, seed, c->dit.dim, c->dit.ffn_dim, c->dit.num_heads, c->dit.num_layers, c->dit.in_dim,
            c->dit.out_dim, c->dit.freq_dim, c->dit.text_dim, (double)c->dit.eps, c->vae.dim, c->vae.z_dim,
            c->vae.dim_mult[0], c->vae.dim_mult[1], c->vae.dim_mult[2], c->vae.dim_mult[3], c->vae.num_res_blocks,
            v->img_size, v->patch_size, v->embed_dim, v->depths[0], v->depths[1], v->depths[2], v->depths[3],
            v->num_heads[0], v->num_heads[1], v->num_heads[2], v->num_heads[3], v->window_size, v->mlp_ratio,
            v->lora_rank, v->out_dim);
    int bad = ferror(f);
    bad |= fclose(f);
    if (bad) fprintf(stderr, "infvsr make-tiny-model: write error on %s\n", path);
    snprintf(path, sizeof path, "%s/README.txt", dir);
    f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f,
            "RANDOM WEIGHTS - output is not meaningful.\n\n"
            "This directory was written by `infvsr make-tiny-model` (seed %llu): the InfVSR architecture at tiny\n"
            "widths (model.json) with deterministic random weights, in the four files an InfVSR model directory\n"
            "holds (safetensors instead of .ckpt/.pth). `infvsr upscale --model-dir` runs with it end to end, which\n"
            "shows that the pipeline works; the pictures it produces are noise-like and say nothing about InfVSR.\n"
            "For real results use the official files (README, 'Model files').\n",
            seed);
    bad |= fclose(f);
    return bad ? 1 : 0;
}

static void usage(FILE * f) {
    fprintf(f,
            "usage: infvsr make-tiny-model DIR [--seed N] [--config CFG.json]\n"
            "  Writes a demo model with RANDOM weights (output not meaningful) into DIR:\n"
            "  InfVSR.safetensors, Wan2.1_VAE.safetensors, ram_swin_large_14m.safetensors, DAPE.safetensors,\n"
            "  model.json and README.txt. Deterministic: the same seed gives the same bytes.\n"
            "  --seed    PRNG seed (default 1)\n"
            "  --config  architecture JSON (default: the built-in tiny config = config/models/infvsr-tiny.json)\n");
}

int infvsr_cmd_make_tiny(int argc, char ** argv) {
    const char * dir = NULL, * cfg_path = NULL;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char * v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (v && strcmp(argv[i], "--seed") == 0) {
            char * end;
            seed = strtoull(v, &end, 10), i++;
            if (*end) { fprintf(stderr, "infvsr make-tiny-model: bad --seed '%s'\n", v); return 2; }
        } else if (v && strcmp(argv[i], "--config") == 0) {
            cfg_path = v, i++;
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "infvsr make-tiny-model: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    struct infvsr_model_config cfg = tiny_config();
    if (cfg_path) {
        struct infvsr_err err = { 0 };
        if (infvsr_model_config_load(cfg_path, &cfg, &err) != INFVSR_OK) {
            fprintf(stderr, "infvsr make-tiny-model: %s: %s\n", cfg_path, err.msg);
            return 1;
        }
        snprintf(cfg.name + strnlen(cfg.name, sizeof cfg.name - 8), 8, "-random");
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "infvsr make-tiny-model: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int rc = 0;
    /* One PRNG stream per file, so that changing one module's layout leaves the others' bytes alone. */
    struct tlist l = { .dtype = INFVSR_TYPE_BF16, .rng = seed * 4 + 0, .prefix = "" };
    infvsr_model_file_spec(&cfg, INFVSR_FILE_DIT, add, &l);
    rc |= write_file(dir, "InfVSR.safetensors", &l);
    tlist_free(&l);
    l = (struct tlist){ .dtype = INFVSR_TYPE_F32, .rng = seed * 4 + 1, .prefix = "" };
    infvsr_model_file_spec(&cfg, INFVSR_FILE_VAE, add, &l);
    rc |= write_file(dir, "Wan2.1_VAE.safetensors", &l);
    tlist_free(&l);
    l = (struct tlist){ .dtype = INFVSR_TYPE_F32, .rng = seed * 4 + 2, .prefix = "model." };
    infvsr_model_file_spec(&cfg, INFVSR_FILE_RAM, add, &l);
    rc |= write_file(dir, "ram_swin_large_14m.safetensors", &l);
    tlist_free(&l);
    l = (struct tlist){ .dtype = INFVSR_TYPE_F32, .rng = seed * 4 + 3, .prefix = "" };
    infvsr_model_file_spec(&cfg, INFVSR_FILE_DAPE, add, &l);
    rc |= write_file(dir, "DAPE.safetensors", &l);
    tlist_free(&l);
    rc |= write_config(dir, &cfg, seed);
    if (rc) return 1;
    printf("wrote %s: %s (RANDOM WEIGHTS - output is not meaningful)\n", dir, cfg.name);
    return 0;
}
