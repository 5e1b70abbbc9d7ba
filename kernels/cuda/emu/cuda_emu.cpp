/* The kernel emulator's runtime (cuda_emu.h says what is emulated): the fiber scheduler
 * behind a launch, block and warp barriers, warp shuffles, mma.sync m16n8k16 from the
 * PTX ISA fragment layouts, and the few runtime calls the emulated .cu files make. */
#include "cuda_emu.h"
#include "wmma_emu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

extern "C" {
#include "infvsr/tensor.h" /* f16 conversions (round-to-nearest-even) */
}

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

/* Dynamic shared memory of every kernel ("extern __shared__ unsigned char smem[]"); the
 * limit of the largest emulated device (sm_90: 227 KiB opt-in). */
#define EMU_SMEM_MAX (227u * 1024u)
thread_local __attribute__((aligned(128))) unsigned char smem[EMU_SMEM_MAX];

namespace emu {

float    f16_to_f32(uint16_t h) { return infvsr_f16_to_f32(h); }
uint16_t f32_to_f16_rn(float f) { return infvsr_f32_to_f16(f); }

namespace {

enum fstate { RUNNABLE, WAIT_WARP, WAIT_BLOCK, DONE };
enum coll_kind { C_NONE, C_SYNCWARP, C_SHFL, C_MMA };

/* Exchange area of one warp collective; two per warp, used alternately (collective n in
 * buffer n % 2): a lane can be at most one collective ahead of the slowest lane, so the
 * buffer it writes is never one another lane still reads. */
struct coll_buf {
    uint32_t v[32];
    int      src[32];
    uint32_t a[32][4], b[32][2];
    float    c[32][4], d[32][4];
};

struct warp_state {
    int      lanes = 0, live = 0, arrived = 0;
    uint64_t seq = 0;
    int      kind = C_NONE;
    coll_buf buf[2];
};

/* Fiber stack size. The kernels' frames are small (largest: a WMMA tile per lane, 1 KiB);
 * ASan clears the shadow of a stack it switches to on every swapcontext, so a larger
 * stack costs time on every switch. */
const size_t STACK = 256u << 10;

struct fiber {
    ucontext_t ctx;
    char *     stack = nullptr; /* mmap'd, lowest page a guard */
    uint3      tid;
    int        lane = 0, warp = 0;
    fstate     st = DONE;
    void *     fake = nullptr;
};

struct runner {
    std::vector<fiber>      f;
    std::vector<warp_state> w;
    int                     live = 0, arrived_block = 0, cur = -1;
    bool                    abort = false;
    ucontext_t              sched;
    void *                  sched_fake = nullptr;
    const void *            sched_bottom = nullptr;
    size_t                  sched_size = 0;
    dim3                    bdim, gdim;
    uint3                   bidx;
    const std::function<void()> * body = nullptr;
};

thread_local runner *                     R = nullptr;
thread_local std::string                  g_error;
thread_local bool                         g_pending = false;
thread_local size_t                       g_optin = EMU_SMEM_MAX;
thread_local std::map<const void *, int> g_func_smem;

void start_switch(void ** save, const void * bottom, size_t size) {
#if EMU_ASAN
    __sanitizer_start_switch_fiber(save, bottom, size);
#else
    (void)save, (void)bottom, (void)size;
#endif
}
void finish_switch(void * save, const void ** bottom, size_t * size) {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(save, bottom, size);
#else
    (void)save, (void)bottom, (void)size;
#endif
}

fiber & me() { return R->f[(size_t)R->cur]; }

/* Fiber -> scheduler. An exiting fiber passes exiting = true (ASan drops its fake stack). */
void to_sched(bool exiting) {
    fiber & f = me();
    start_switch(exiting ? nullptr : &f.fake, R->sched_bottom, R->sched_size);
    swapcontext(&f.ctx, &R->sched);
    finish_switch(f.fake, nullptr, nullptr);
}

void fail_here(const std::string & msg) {
    if (g_error.empty()) g_error = msg;
    g_pending = true;
    if (R && R->cur >= 0) {
        R->abort = true;
        to_sched(false); /* never resumed: the block is abandoned */
    }
}

void release_block() {
    for (fiber & x : R->f)
        if (x.st == WAIT_BLOCK) x.st = RUNNABLE;
    R->arrived_block = 0;
}

void complete_mma(coll_buf & b);

/* Last lane of a collective arrived: finish it and wake the warp. */
void complete_warp(int wi) {
    warp_state & w = R->w[(size_t)wi];
    if (w.kind == C_MMA) complete_mma(w.buf[w.seq & 1]);
    w.arrived = 0;
    w.kind = C_NONE;
    w.seq++;
    for (fiber & x : R->f)
        if (x.warp == wi && x.st == WAIT_WARP) x.st = RUNNABLE;
}

void fiber_main() {
    finish_switch(nullptr, &R->sched_bottom, &R->sched_size);
    (*R->body)();
    fiber & f = me();
    f.st = DONE;
    R->live--;
    warp_state & w = R->w[(size_t)f.warp];
    w.live--;
    if (R->arrived_block > 0 && R->arrived_block == R->live) release_block();
    if (w.arrived > 0) {
        /* a collective waits on a lane that has exited: undefined on the device */
        char m[160];
        snprintf(m, sizeof m, "thread (%u,%u,%u) exited while its warp waits in a warp collective", f.tid.x,
                 f.tid.y, f.tid.z);
        if (g_error.empty()) g_error = m;
        g_pending = true;
        R->abort = true;
    }
    to_sched(true);
}

char * new_stack() {
    void * p = mmap(nullptr, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "cuda_emu: cannot map a fiber stack: %s\n", strerror(errno));
        abort();
    }
    mprotect(p, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE); /* overflow faults, never corrupts */
    return (char *)p;
}

/* Fiber stacks, kept for the life of the host thread (reused by every block). */
thread_local std::vector<char *> g_stacks;

/* Runs one block; false when it failed (g_error says why). */
bool run_block(runner & r, size_t smem_bytes) {
    const size_t n = (size_t)r.bdim.x * r.bdim.y * r.bdim.z;
    while (g_stacks.size() < n) g_stacks.push_back(new_stack());
    r.f.assign(n, fiber());
    r.w.assign((n + 31) / 32, warp_state());
    for (size_t i = 0; i < n; i++) {
        fiber & f = r.f[i];
        f.stack = g_stacks[i];
        f.tid = uint3{ (unsigned)(i % r.bdim.x), (unsigned)(i / r.bdim.x % r.bdim.y),
                       (unsigned)(i / ((size_t)r.bdim.x * r.bdim.y)) };
        f.lane = (int)(i % 32);
        f.warp = (int)(i / 32);
        f.st = RUNNABLE;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_main, 0);
        r.w[i / 32].lanes++;
        r.w[i / 32].live++;
    }
    r.live = (int)n;
    r.arrived_block = 0;
    r.abort = false;
    memset(smem, 0xff, smem_bytes); /* unwritten shared memory reads as NaN */
    while (r.live > 0 && !r.abort) {
        bool ran = false;
        for (size_t i = 0; i < n && !r.abort; i++) {
            if (r.f[i].st != RUNNABLE) continue;
            r.cur = (int)i;
            start_switch(&r.sched_fake, r.f[i].stack, STACK);
            swapcontext(&r.sched, &r.f[i].ctx);
            finish_switch(r.sched_fake, nullptr, nullptr);
            r.cur = -1;
            ran = true;
        }
        if (!ran && r.live > 0 && !r.abort) {
            int wb = 0, ww = 0;
            for (fiber & x : r.f) wb += x.st == WAIT_BLOCK, ww += x.st == WAIT_WARP;
            char m[200];
            snprintf(m, sizeof m, "deadlock: %d threads wait in __syncthreads, %d in warp collectives, none can run "
                     "(divergent barrier)", wb, ww);
            if (g_error.empty()) g_error = m;
            g_pending = true;
            return false;
        }
    }
    return !r.abort;
}

/* Enters warp collective `kind`; returns its buffer. */
coll_buf & coll_enter(int kind, unsigned mask) {
    fiber &      f = me();
    warp_state & w = R->w[(size_t)f.warp];
    const unsigned full = w.lanes == 32 ? 0xffffffffu : ((1u << w.lanes) - 1u);
    if ((mask & full) != full)
        fail_here("warp collective with a partial mask: the emulator supports full-warp collectives only");
    if (w.live != w.lanes) fail_here("warp collective while lanes of the warp have exited");
    if (w.arrived == 0) w.kind = kind;
    else if (w.kind != kind) fail_here("lanes of one warp are in different warp collectives (divergence)");
    return w.buf[w.seq & 1];
}
/* Arrives; returns once the whole warp has (results in the buffer returned by coll_enter). */
void coll_arrive() {
    fiber &      f = me();
    warp_state & w = R->w[(size_t)f.warp];
    if (++w.arrived == w.live) {
        complete_warp(f.warp);
        return;
    }
    f.st = WAIT_WARP;
    to_sched(false);
}

/* ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 ----
 * Fragment layouts from the PTX ISA, section 9.7.14.5.8 "Matrix Fragments for
 * mma.m16n8k16 with floating point type" (Figures 79, 81 and 83 and the formulas under
 * them), with groupID = %laneid >> 2, threadID_in_group = %laneid % 4:
 *   A (.bf16, 16x16; a0..a7 low to high in four .b32 registers, two per register):
 *     row = groupID                 for ai where 0 <= i < 2 || 4 <= i < 6
 *           groupID + 8             otherwise
 *     col = threadID_in_group * 2 + (i & 0x1)        for ai where i < 4
 *           threadID_in_group * 2 + (i & 0x1) + 8    for ai where i >= 4
 *   B (.bf16, 16x8; b0..b3 in two .b32 registers):
 *     row = threadID_in_group * 2 + (i & 0x1)        for bi where i < 2
 *           threadID_in_group * 2 + (i & 0x1) + 8    for bi where i >= 2
 *     col = groupID
 *   C, D (.f32, 16x8; c0..c3):
 *     row = groupID for ci where i < 2, groupID + 8 for ci where i >= 2
 *     col = threadID_in_group * 2 + (i & 0x1)
 * "Low to high": element 2j is the low 16 bits of register j.
 * EMU_PLANT_LAYOUT_SWAP (tests only) exchanges a2,a3 with a4,a5, i.e. reads register 1
 * as (row g, col +8) and register 2 as (row g+8): the kind of slip the tests must catch. */
int a_row(int g, int i) {
#ifdef EMU_PLANT_LAYOUT_SWAP
    if (i >= 2 && i < 6) i ^= 6; /* 2<->4, 3<->5 */
#endif
    return (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
}
int a_col(int t, int i) {
#ifdef EMU_PLANT_LAYOUT_SWAP
    if (i >= 2 && i < 6) i ^= 6;
#endif
    return t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
}
int b_row(int t, int i) { return t * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
int c_row(int g, int i) { return i < 2 ? g : g + 8; }
int c_col(int t, int i) { return t * 2 + (i & 1); }

float bf16_half(uint32_t reg, int hi) {
    __nv_bfloat16 h;
    h.bits = (uint16_t)(hi ? reg >> 16 : reg & 0xffffu);
    return __bfloat162float(h);
}

void complete_mma(coll_buf & b) {
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; lane++) {
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 8; i++) A[a_row(g, i)][a_col(t, i)] = bf16_half(b.a[lane][i / 2], i & 1);
        for (int i = 0; i < 4; i++) B[b_row(t, i)][g] = bf16_half(b.b[lane][i / 2], i & 1);
        for (int i = 0; i < 4; i++) C[c_row(g, i)][c_col(t, i)] = b.c[lane][i];
    }
    /* bf16 x bf16 products are exact in f32; the 16 products and C are summed in double
     * and rounded once (the hardware's internal order and rounding are not specified). */
    for (int lane = 0; lane < 32; lane++) {
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; i++) {
            const int m = c_row(g, i), n = c_col(t, i);
            double s = C[m][n];
            for (int k = 0; k < 16; k++) s += (double)A[m][k] * (double)B[k][n];
            b.d[lane][i] = (float)s;
        }
    }
}

}  // namespace

/* ---- device-side entry points ---- */

static const uint3 k_zero3 = { 0, 0, 0 };
static const dim3  k_one3;

const uint3 & thread_idx() { return R && R->cur >= 0 ? me().tid : k_zero3; }
const uint3 & block_idx() { return R ? R->bidx : k_zero3; }
const dim3 &  block_dim() { return R ? R->bdim : k_one3; }
const dim3 &  grid_dim() { return R ? R->gdim : k_one3; }

void syncthreads() {
    if (!R || R->cur < 0) return;
    if (++R->arrived_block == R->live) {
        release_block();
        return;
    }
    me().st = WAIT_BLOCK;
    to_sched(false);
}

void syncwarp(unsigned mask) {
    coll_enter(C_SYNCWARP, mask);
    coll_arrive();
}

uint32_t shfl_u32(unsigned mask, uint32_t v, int arg, int width, int mode) {
    if (width <= 0 || width > 32 || (width & (width - 1))) fail_here("shuffle width must be a power of two <= 32");
    const int  lane = me().lane;
    coll_buf & b = coll_enter(C_SHFL, mask);
    const int  base = lane & ~(width - 1);
    int        src = lane;
    switch (mode) {
    case SHFL_IDX: src = base + (arg & (width - 1)); break;
    case SHFL_XOR: src = lane ^ arg; if (src >= base + width) src = lane; break;
    case SHFL_UP: src = lane - arg; if (src < base) src = lane; break;
    default: src = lane + arg; if (src >= base + width) src = lane; break;
    }
    b.v[lane] = v;
    coll_arrive();
    return b.v[src];
}

void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    const int  lane = me().lane;
    coll_buf & b = coll_enter(C_MMA, 0xffffffffu);
    memcpy(b.a[lane], a, sizeof b.a[lane]);
    b.b[lane][0] = b0;
    b.b[lane][1] = b1;
    memcpy(b.c[lane], d, sizeof b.c[lane]);
    coll_arrive();
    memcpy(d, b.d[lane], sizeof b.d[lane]);
}

void fail(const char * msg) { fail_here(msg); }
int  cur_lane() { return R && R->cur >= 0 ? me().lane : 0; }

/* ---- host side ---- */

void run_grid(const char * name, const void * kernel, dim3 grid, dim3 block, size_t smem_bytes,
              const std::function<void()> & body) {
    char m[256];
    const size_t nthreads = (size_t)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
        grid.z > 65535) {
        snprintf(m, sizeof m, "%s: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)", name, grid.x,
                 grid.y, grid.z, block.x, block.y, block.z);
        fail_here(m);
        return;
    }
    int optin = 48 * 1024;
    auto it = g_func_smem.find(kernel);
    if (it != g_func_smem.end() && it->second > optin) optin = it->second;
    if (smem_bytes > (size_t)optin || smem_bytes > g_optin) {
        snprintf(m, sizeof m, "%s: %zu bytes of dynamic shared memory exceed the kernel's limit (%d; device %zu)",
                 name, smem_bytes, optin, g_optin);
        fail_here(m);
        return;
    }
    if (R) {
        fail_here("a kernel launched from inside a kernel (dynamic parallelism is not emulated)");
        return;
    }
    runner r;
    r.bdim = block;
    r.gdim = grid;
    r.body = &body;
    R = &r;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                r.bidx = uint3{ x, y, z };
                if (!run_block(r, smem_bytes)) {
                    std::string e = g_error;
                    snprintf(m, sizeof m, "%s, block (%u,%u,%u): ", name, x, y, z);
                    g_error = m + e;
                    R = nullptr;
                    return;
                }
            }
    R = nullptr;
}

void   set_smem_optin(size_t bytes) { g_optin = bytes < EMU_SMEM_MAX ? bytes : EMU_SMEM_MAX; }
size_t smem_optin() { return g_optin; }
void   set_func_smem(const void * kernel, int bytes) { g_func_smem[kernel] = bytes; }

const char * last_launch_error() {
    thread_local std::string out;
    out = g_error;
    g_error.clear();
    g_pending = false;
    return out.c_str();
}

void record_failure(const char * fmt, ...) {
    char    m[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (g_error.empty()) g_error = m;
    g_pending = true;
}

}  // namespace emu

namespace nvcuda {
namespace wmma {
void detail::check_ptr(const void * p, unsigned ldm, size_t elem, const char * what) {
    if ((uintptr_t)p % 32 != 0 || (ldm * elem) % 16 != 0) {
        char m[160];
        snprintf(m, sizeof m, "wmma %s: pointer %p must be 32-byte aligned and ldm (%u) a multiple of 16 bytes",
                 what, p, ldm);
        ::emu::fail(m);
    }
}
int detail::lane() { return ::emu::cur_lane(); }
}  // namespace wmma
}  // namespace nvcuda

/* ---- runtime API ---- */

const char * cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    default: return "unspecified launch failure (emulated)";
    }
}
cudaError_t cudaGetLastError(void) {
    if (!emu::g_pending) return cudaSuccess;
    emu::g_pending = false; /* the message stays for last_launch_error() */
    return cudaErrorLaunchFailure;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }
static emu::runtime_counts g_runtime_calls;
emu::runtime_counts emu::runtime_calls() { return g_runtime_calls; }

cudaError_t cudaMemcpyAsync(void * dst, const void * src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
    (void)kind, (void)s;
    g_runtime_calls.memcpy_async++;
    const char * d = (const char *)dst, * q = (const char *)src;
    if (n && d < q + n && q < d + n) { /* overlapping copies are undefined in CUDA */
        emu::record_failure("cudaMemcpyAsync: overlapping ranges (%p, %p, %zu bytes)", dst, src, n);
        emu::g_pending = false;
        return cudaErrorInvalidValue;
    }
    if (n) memcpy(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    (void)s;
    g_runtime_calls.stream_sync++;
    return cudaSuccess;
}
