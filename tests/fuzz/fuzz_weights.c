/* libFuzzer target for the checkpoint readers (safetensors, zip, pickle, torch zip).
 * Not part of ctest; see tests/fuzz/README.md for the build and run commands. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "infvsr/weights.h"
#include "infvsr/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    static int fd = -1;
    if (fd < 0) fd = memfd_create("fuzz-weights", 0);
    if (fd < 0 || ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct infvsr_weights * w;
    struct infvsr_err       err = { 0 };
    if (infvsr_weights_open(path, &w, &err) != INFVSR_OK) return 0;
    for (size_t i = 0; i < infvsr_weights_count(w); i++) { /* touch every byte of every view */
        const struct infvsr_tensor * t = infvsr_weights_at(w, i);
        char hex[65];
        infvsr_sha256_hex(t->data, infvsr_tensor_nbytes(t), hex);
        (void)infvsr_weights_find(w, infvsr_weights_key_at(w, i));
    }
    infvsr_weights_close(w);
    return 0;
}
