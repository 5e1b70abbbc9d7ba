/* CPU feature detection for the bf16 kernels (isa.h). */
#include "isa.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023 /* linux/arch/x86/include/uapi/asm/prctl.h */
#define XFEATURE_XTILEDATA  18

const char * infvsr_cpu_isa_name(enum infvsr_cpu_isa isa) {
    switch (isa) {
    case INFVSR_CPU_ISA_AVX2:       return "avx2";
    case INFVSR_CPU_ISA_AVX512BF16: return "avx512bf16";
    case INFVSR_CPU_ISA_AMX:        return "amx";
    }
    return "?";
}

/* XCR0: which register states the OS saves (and so lets programs use). Inline asm needs
 * no target attribute; only called once OSXSAVE says xgetbv exists. */
static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static enum infvsr_cpu_isa g_detected;

static void detect_once(void) {
    unsigned a, b, c, d;
    g_detected = INFVSR_CPU_ISA_AVX2; /* the build's baseline: the program would not run without it */
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return; /* OSXSAVE */
    const uint64_t x = xcr0();
    const bool os_avx512 = (x & 0xE6) == 0xE6;                        /* SSE, AVX, opmask, ZMM */
    if (!os_avx512 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    const bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31);
    const bool amx = (d & (1u << 22)) && (d & (1u << 24));            /* AMX-BF16, AMX-TILE */
    unsigned a1 = 0, b1, c1, d1;
    const bool bf16 = a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5));
    if (!(f && bw && vl && bf16)) return;
    g_detected = INFVSR_CPU_ISA_AVX512BF16;
    /* AMX: the OS must enable the tile state (XCR0 bits 17, 18) and grant it to this
     * process; a kernel without that support refuses the request. */
    if (amx && (x & (3u << 17)) == (3u << 17) && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0)
        g_detected = INFVSR_CPU_ISA_AMX;
}

enum infvsr_cpu_isa infvsr_cpu_isa_detect(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, detect_once);
    return g_detected;
}

enum infvsr_status infvsr_cpu_isa_select(const char * request, enum infvsr_cpu_isa * out, struct infvsr_err * err) {
    const enum infvsr_cpu_isa best = infvsr_cpu_isa_detect();
    const char * from = "requested";
    if (!request || !*request || strcmp(request, "auto") == 0) {
        request = getenv("INFVSR_CPU_ISA");
        from    = "INFVSR_CPU_ISA";
    }
    *out = best;
    if (!request || !*request || strcmp(request, "auto") == 0) return INFVSR_OK;
    enum infvsr_cpu_isa want;
    if (strcmp(request, "avx2") == 0) want = INFVSR_CPU_ISA_AVX2;
    else if (strcmp(request, "avx512bf16") == 0) want = INFVSR_CPU_ISA_AVX512BF16;
    else if (strcmp(request, "amx") == 0) want = INFVSR_CPU_ISA_AMX;
    else {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "backend cpu: %s ISA '%s' is unknown (expected auto, amx, "
                              "avx512bf16 or avx2)", from, request);
    }
    if (want > best) {
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "backend cpu: %s ISA %s is not available on this CPU "
                              "(best here: %s)", from, request, infvsr_cpu_isa_name(best));
    }
    *out = want;
    return INFVSR_OK;
}
