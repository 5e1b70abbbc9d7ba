/* libFuzzer target for the checkpoint readers (safetensors, zip, legacy torch.save, pickle
 * VM, torch walker). Not part of ctest; see tests/fuzz/README.md for the build and run
 * commands. The first input byte picks the mode:
 *   even: the rest is a whole file for infvsr_weights_open (every format, by content)
 *   odd:  the rest is a bare pickle run by the VM and walked into an index whose storages
 *         all resolve to one 4 KiB blob, so every opcode and tensor rebuild is reachable
 *         without a valid ZIP around it (pickle.dict lists the opcodes and globals). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "infvsr/sha256.h"
#include "infvsr/weights.h"
#include "io/pickle.h"
#include "io/torch_walk.h"

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

static void hash_all(const struct infvsr_weights * w) {
    for (size_t i = 0; i < infvsr_weights_count(w); i++) { /* touch every byte of every view */
        const struct infvsr_tensor * t = infvsr_weights_at(w, i);
        char hex[65];
        infvsr_sha256_hex(t->data, infvsr_tensor_nbytes(t), hex);
        (void)infvsr_weights_find(w, infvsr_weights_key_at(w, i));
    }
}

static void whole_file(const uint8_t * data, size_t size) {
    static int fd = -1;
    if (fd < 0) fd = memfd_create("fuzz-weights", 0);
    if (fd < 0 || ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) return;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    if (infvsr_weights_open(path, &w, &err) != INFVSR_OK) return;
    hash_all(w);
    char hint[512];
    infvsr_weights_hint(w, "blocks.0.norm.weight", hint, sizeof hint);
    infvsr_weights_close(w);
}

static _Alignas(64) uint8_t blob[4096];

static enum infvsr_status any_storage(void * ctx, const struct infvsr_pk_obj * s, struct infvsr__storage_blob * out,
                                      const char * key, struct infvsr_err * err) {
    (void)ctx, (void)s, (void)key, (void)err;
    out->data   = blob;
    out->nbytes = sizeof blob;
    snprintf(out->name, sizeof out->name, "blob");
    return INFVSR_OK;
}

static void bare_pickle(const uint8_t * data, size_t size) {
    struct infvsr_pickle vm;
    struct infvsr_err    err = { 0 };
    if (infvsr_pickle_run(&vm, data, size, &err) == INFVSR_OK) {
        struct infvsr_weights w; /* an index without a file: only what the walker touches */
        memset(&w, 0, sizeof w);
        w.file.data = blob;
        w.file.size = sizeof blob;
        (void)infvsr__torch_walk(&w, vm.result, data[0] & 1, any_storage, NULL, &err);
        for (size_t i = 0; i < w.n_entries; i++) {
            const struct infvsr_tensor * t = &w.entries[i].t;
            char hex[65];
            infvsr_sha256_hex(t->data, infvsr_tensor_nbytes(t), hex);
            infvsr_tensor_release(&w.entries[i].t);
            free(w.entries[i].key);
        }
        free(w.entries);
    }
    infvsr_pickle_free(&vm);
}

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    if (size == 0) return 0;
    if (data[0] & 1) bare_pickle(data + 1, size - 1);
    else whole_file(data + 1, size - 1);
    return 0;
}
