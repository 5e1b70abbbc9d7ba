/* Kernel emulation: the CUDA kernels of kernels/cuda compiled as host C++ (g++) and run
 * on the CPU, so that their indexing, barriers, warp shuffles and tensor-core fragment
 * layouts are exercised on machines without a GPU or nvcc (CI). See docs/CUDA.md,
 * "Kernel emulation", for what this proves and what it cannot.
 *
 * Force-included (-include cuda_emu.h) into every .cu compiled for emulation, with
 * kernels/cuda/emu/include first on the include path (cuda_runtime.h, cuda_bf16.h,
 * cuda_fp16.h, cublasLt.h and mma.h there are one-line shims onto this header).
 *
 * Execution model (cuda_emu.cpp): a launch runs its grid block by block; each block runs
 * one fiber (ucontext, own stack) per CUDA thread on the calling host thread. A fiber
 * runs until it blocks: __syncthreads waits for every live thread of the block, warp
 * collectives (__shfl_*_sync, __syncwarp, mma.sync) for every lane of the warp. A block
 * where no fiber can run is a deadlock (divergent barrier) and fails the launch, as do
 * a collective with an exited lane, mixed collectives in one warp, dynamic shared memory
 * beyond the emulated device's limit or above 48 KiB without cudaFuncSetAttribute.
 * Shared memory: `__shared__` is thread_local storage, one copy per host thread, which
 * is block-local because blocks run one after another; dynamic shared memory is
 * refilled with 0xFF (NaN in f32 and bf16) before every block, so reading a shared
 * element that no thread wrote this block shows up in the results. */
#pragma once

#ifndef INFVSR_CUDA_EMU
#define INFVSR_CUDA_EMU 1
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]] /* base/include/infvsr/status.h is C11 */
#endif

#include <functional>
#include <tuple>
#include <utility>

/* ---- qualifiers and attributes ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ thread_local
#define __constant__ static

/* ---- vector types ---- */
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{ x, y, z, w }; }

/* ---- bf16 / f16 storage types (cuda_bf16.h, cuda_fp16.h) ---- */
struct __nv_bfloat16 {
    uint16_t bits;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y; /* x at the lower address: the low 16 bits of the 32-bit register */
};
struct __half {
    uint16_t bits;
};

/* Round to nearest even, as __float2bfloat16_rn on the device; NaN -> canonical 0x7fff. */
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = 0x7fff;
        return r;
    }
    r.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
    return __nv_bfloat162{ __float2bfloat16_rn(lo), __float2bfloat16_rn(hi) };
}
namespace emu {
float    f16_to_f32(uint16_t h);
uint16_t f32_to_f16_rn(float f);
}  // namespace emu
static inline __half __float2half_rn(float f) { return __half{ ::emu::f32_to_f16_rn(f) }; }
static inline float  __half2float(__half h) { return ::emu::f16_to_f32(h.bits); }

/* ---- arithmetic intrinsics: IEEE single operations (emulation TUs build with
 * -ffp-contract=off, so nothing is fused into an FMA behind these) ---- */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }

/* ---- the emulator (cuda_emu.cpp) ---- */
namespace emu {

const uint3 & thread_idx();
const uint3 & block_idx();
const dim3 &  block_dim();
const dim3 &  grid_dim();

void     syncthreads();
void     syncwarp(unsigned mask);
uint32_t shfl_u32(unsigned mask, uint32_t v, int lane_arg, int width, int mode);
enum { SHFL_IDX = 0, SHFL_XOR, SHFL_UP, SHFL_DOWN };

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 for the calling lane. */
void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

/* Runs body once per CUDA thread of every block of the grid. Launch failures are kept
 * for cudaGetLastError() and described by last_launch_error(). */
void run_grid(const char * name, const void * kernel, dim3 grid, dim3 block, size_t smem,
              const std::function<void()> & body);

/* The emulated device: the opt-in shared memory limit per block (227 KiB: sm_90). */
void   set_smem_optin(size_t bytes);
size_t smem_optin();
/* First launch/runtime failure since the last call ("" if none), then cleared. */
const char * last_launch_error();
void         record_failure(const char * fmt, ...) __attribute__((format(printf, 1, 2)));
void         set_func_smem(const void * kernel, int bytes);
/* Calls of the emulated runtime's copy and stream-synchronisation entry points since the
 * program started: tests assert that a steady state makes none (resize's cached tables). */
struct runtime_counts {
    uint64_t memcpy_async, stream_sync;
};
runtime_counts runtime_calls();
/* Fails the running launch from device code (never returns into the kernel). */
void fail(const char * msg);
int  cur_lane();

template <class... P> struct launcher {
    void (*kernel)(P...);
    dim3         grid, block;
    size_t       smem;
    const char * name;
    template <class... A> void operator()(A &&... args) const {
        std::tuple<typename std::decay<P>::type...> a(std::forward<A>(args)...);
        void (*k)(P...) = kernel;
        run_grid(name, (const void *)k, grid, block, smem, [&a, k]() { std::apply(k, a); });
    }
};
template <class... P>
launcher<P...> launch_of(dim3 grid, dim3 block, size_t smem, const char * name, void (*kernel)(P...)) {
    return launcher<P...>{ kernel, grid, block, smem, name };
}

}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx  (::emu::block_idx())
#define blockDim  (::emu::block_dim())
#define gridDim   (::emu::grid_dim())
#define warpSize  32

static inline void __syncthreads() { ::emu::syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { ::emu::syncwarp(mask); }

template <class T> static inline T emu_shfl_(unsigned mask, T v, int arg, int width, int mode) {
    static_assert(sizeof(T) == 4, "emulated shuffles move 32-bit values");
    uint32_t u;
    memcpy(&u, &v, 4);
    u = ::emu::shfl_u32(mask, u, arg, width, mode);
    memcpy(&v, &u, 4);
    return v;
}
template <class T> static inline T __shfl_sync(unsigned m, T v, int src, int w = 32) {
    return emu_shfl_(m, v, src, w, ::emu::SHFL_IDX);
}
template <class T> static inline T __shfl_xor_sync(unsigned m, T v, int lm, int w = 32) {
    return emu_shfl_(m, v, lm, w, ::emu::SHFL_XOR);
}
template <class T> static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) {
    return emu_shfl_(m, v, (int)d, w, ::emu::SHFL_UP);
}
template <class T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) {
    return emu_shfl_(m, v, (int)d, w, ::emu::SHFL_DOWN);
}

/* ---- runtime API subset (cuda_runtime.h) used by the emulated .cu files ---- */
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorLaunchFailure = 719,
};
typedef struct emu_stream * cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp {
    char   name[256];
    size_t sharedMemPerBlockOptin;
    int    major, minor;
};
const char * cudaGetErrorString(cudaError_t e);
cudaError_t  cudaGetLastError(void);
cudaError_t  cudaSetDevice(int device);
cudaError_t  cudaMemcpyAsync(void * dst, const void * src, size_t n, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t  cudaStreamSynchronize(cudaStream_t s);
template <class F> cudaError_t cudaFuncSetAttribute(F * kernel, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > ::emu::smem_optin())
        return cudaErrorInvalidValue;
    ::emu::set_func_smem((const void *)kernel, value);
    return cudaSuccess;
}

/* ---- cuBLASLt types named by cuda_common.cuh (no cuBLASLt call is emulated) ---- */
typedef struct emu_cublaslt * cublasLtHandle_t;
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
enum cublasLtEpilogue_t {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_BIAS = 36,
};
static inline const char * cublasGetStatusString(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS (emulated)";
}
