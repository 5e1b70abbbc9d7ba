/* Backends: where tensors live and ops run. The public face of the op table.
 *
 * A backend is one compute device as one thread sees it: the CPU (host memory, threaded
 * AVX2 kernels), one CUDA GPU (device memory, one stream), or `devsim`, a test backend
 * that runs the CPU kernels behind memory the host cannot read, so that code which
 * forgets it is talking to a device fails on every machine instead of on a GPU.
 *
 *   struct infvsr_backend * be;
 *   infvsr_backend_init_by_name("auto", NULL, &be, &err);   // a usable GPU, else the CPU
 *   struct infvsr_backend_caps caps;
 *   infvsr_backend_get_caps(be, &caps);                       // caps.name == "cuda:0", ...
 *   ... infvsr_model_open_dir("models", be, &model, &err) ...
 *   infvsr_backend_free(be);
 *
 * Programs above the engine (server/, tools/) use only this header: they choose and free
 * backends and read their capabilities; the op table itself is private to kernels/ and
 * engine/ (base/internal/ops.h).
 *
 * Memory contract for every backend (what devsim enforces):
 *  - A tensor allocated by a backend may only be read or written through it: on a backend
 *    whose caps say !host_visible, `t->data` is an address the host must not dereference.
 *  - tensor_set copies from host memory before it returns (the source may be reused).
 *  - tensor_get queues a copy into host memory: the destination holds the data only once
 *    infvsr_backend_synchronize has returned INFVSR_OK. Ops are asynchronous the same way;
 *    errors of queued work may surface at the next call or at synchronize.
 *  - After INFVSR_ERR_DEVICE a backend is unhealthy for good (infvsr_backend_healthy). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"
#include "infvsr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_backend;

/* The activation dtype the engine should compute in. AUTO: the backend's own default
 * (cpu: f32; cuda: bf16, the official dtype; devsim: f32). */
enum infvsr_precision {
    INFVSR_PRECISION_AUTO = 0,
    INFVSR_PRECISION_F32,
    INFVSR_PRECISION_BF16,
};

/* "auto", "f32", "bf16"; NULL if unknown. And the reverse (-1 if unknown). */
const char * infvsr_precision_name(enum infvsr_precision p);
int          infvsr_precision_from_name(const char * name);

struct infvsr_backend_opts {
    int                   n_threads;          /* CPU kernels (cpu, devsim): 0 = all cores  */
    enum infvsr_precision precision;          /* activation dtype request                  */
    bool                  cpu_reference;      /* cpu: every op on the float64 naive oracle */
    /* cpu: instruction set of the bf16 kernels: NULL/"auto" (the environment variable
     * INFVSR_CPU_ISA, else the best the CPU has), "amx", "avx512bf16" or "avx2" (bf16
     * widened to f32 on the f32 kernels). One the CPU lacks: INFVSR_ERR_UNSUPPORTED. */
    const char *          cpu_isa;
    /* devsim only (tests): */
    size_t                devsim_capacity;    /* simulated device memory; 0 = 16 GiB        */
    int64_t               devsim_fault_at_op; /* > 0: the Nth op fails as a device fault    */
};

struct infvsr_backend_opts infvsr_backend_default_opts(void);

/* Creates a backend from a name:
 *   "cpu"                 the host CPU
 *   "cuda", "cuda:N"      CUDA device 0 / N (sm_80 or newer)
 *   "auto"                cuda:0 when this build has CUDA and a usable GPU, else cpu
 *   "devsim", "devsim:N"  the device-emulating test backend (N only names the instance)
 * opts may be NULL (defaults). Environment overrides for devsim (so that programs and
 * daemons can be tested unchanged): INFVSR_DEVSIM_FAULT_AT_OP=N, INFVSR_DEVSIM_CAPACITY_MB=N.
 * Errors: INFVSR_ERR_INVALID_ARG for an unknown name or a precision the backend cannot
 * run; INFVSR_ERR_UNSUPPORTED when the build has no CUDA or no usable GPU is present,
 * with a message that says which. */
enum infvsr_status infvsr_backend_init_by_name(const char * name, const struct infvsr_backend_opts * opts,
                                               struct infvsr_backend ** out, struct infvsr_err * err);
void               infvsr_backend_free(struct infvsr_backend * be);

struct infvsr_backend_caps {
    char                  name[64];      /* "cpu", "cuda:0", "devsim:1"                     */
    char                  device[128];   /* "NVIDIA H100 80GB HBM3", "CPU, 16 threads", ... */
    bool                  host_visible;  /* tensor data may be read by the host directly    */
    enum infvsr_dtype     act_dtype;     /* activation dtype the engine computes in         */
    bool                  act_f32;       /* ops accept f32 activations                      */
    bool                  act_bf16;      /* ops accept bf16 activations                     */
    size_t                mem_total;     /* device memory in bytes (0: host memory)         */
    size_t                mem_free;
};

void         infvsr_backend_get_caps(struct infvsr_backend * be, struct infvsr_backend_caps * caps);
const char * infvsr_backend_name(struct infvsr_backend * be);
/* False once a device fault was recorded; last_error says what failed ("" while healthy). */
bool         infvsr_backend_healthy(struct infvsr_backend * be);
const char * infvsr_backend_last_error(struct infvsr_backend * be);

/* ---- memory (see the contract above) ---- */

/* Allocates storage for t (name, dtype, ndim, shape already set, e.g. by
 * infvsr_tensor_setup); t->mem tells where it lives. Zero-filled on every backend. */
enum infvsr_status infvsr_backend_tensor_alloc(struct infvsr_backend * be, struct infvsr_tensor * t,
                                               struct infvsr_err * err);
/* Frees storage allocated by tensor_alloc and zeroes t. No-op on a zeroed tensor. */
void               infvsr_backend_tensor_free(struct infvsr_backend * be, struct infvsr_tensor * t);
enum infvsr_status infvsr_backend_tensor_set(struct infvsr_backend * be, struct infvsr_tensor * t, const void * src,
                                             size_t offset, size_t nbytes, struct infvsr_err * err);
enum infvsr_status infvsr_backend_tensor_get(struct infvsr_backend * be, const struct infvsr_tensor * t, void * dst,
                                             size_t offset, size_t nbytes, struct infvsr_err * err);
/* Waits for every queued op and copy; returns the first error of queued work. */
enum infvsr_status infvsr_backend_synchronize(struct infvsr_backend * be, struct infvsr_err * err);

/* Convenience for programs and tests that hold host tensors:
 * upload: allocates `out` on the backend with host's shape and name, in `dtype` (host's own
 * dtype when dtype is INFVSR_TYPE_COUNT; float dtypes are converted on the host), and
 * copies host into it.
 * download_f32: allocates `out` as an owned host F32 tensor of dev's shape, copies dev
 * into it (converting float dtypes) and synchronizes. Free with infvsr_tensor_release. */
enum infvsr_status infvsr_backend_upload(struct infvsr_backend * be, const struct infvsr_tensor * host,
                                         enum infvsr_dtype dtype, struct infvsr_tensor * out, struct infvsr_err * err);
enum infvsr_status infvsr_backend_download_f32(struct infvsr_backend * be, const struct infvsr_tensor * dev,
                                               struct infvsr_tensor * out, struct infvsr_err * err);

/* Bytes copied host -> backend (tensor_set) and backend -> host (tensor_get) since init. */
struct infvsr_backend_traffic {
    uint64_t bytes_to_device;
    uint64_t bytes_from_device;
};
void infvsr_backend_get_traffic(struct infvsr_backend * be, struct infvsr_backend_traffic * out);

#ifdef __cplusplus
}
#endif
