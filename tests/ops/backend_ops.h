/* The op-case table of tests/ops/test_backend_ops.c: one list of cases, every op of the
 * table (base/internal/backend_impl.h), run on whichever backend the command line names
 * and checked against a reference (after ggml's test-backend-ops):
 *
 *   -b cpu      the fast CPU backend against the float64 reference backend (use_ref)
 *   -b devsim   the device-emulating backend against the fast CPU backend
 *   -b cuda[:N] the CUDA backend against the fast CPU backend
 *
 * A case is data (op, shapes, dtypes, parameters, tolerances) plus a `run` function that
 * creates its tensors through the bo_* helpers below and calls the op once. The runner
 * calls `run` on both backends with the same seed, so both see the same values, then
 * compares every output. Each tensor sits in a larger allocation with guard bytes before
 * and after it (checked through tensor_get, so device backends are covered too); inputs
 * must come back unchanged; outputs start as NaN so an unwritten element fails.
 *
 * Kinds of case:
 *   BO_COMPARE   run on the tested and on the reference backend, compare within the
 *                case's tolerance for this mode (see struct bo_case)
 *   BO_HOST_REF  run on the tested backend, compare bit-exactly with a naive host
 *                implementation written from the contract (the copy family, gather_rows)
 *   BO_INVALID   must be refused with INVALID_ARG and a message (containing the case's
 *                needle: words every backend's message has), without writing anything
 *                and leaving the backend healthy
 *   BO_SELF      checks of their own (the memory API)
 *
 * Activation tensors (dtype BO_ACT) take the activation dtype of the run: f32, or bf16
 * on backends that compute in bf16 (cuda, devsim with --precision bf16). The reference
 * side always computes in f32 on the same values (inputs rounded to bf16 first). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "ops.h"

#define BO_MAX_TENSORS 12
#define BO_GUARD       256 /* guard bytes before and after every tensor */
#define BO_PARAM_BYTES 512

/* "The activation dtype of this run" in place of a dtype. */
#define BO_ACT ((enum infvsr_dtype)(INFVSR_TYPE_COUNT + 1))

enum bo_kind {
    BO_COMPARE,
    BO_HOST_REF,
    BO_INVALID,
    BO_SELF,
};

enum bo_flag {
    BO_ACT_FREE    = 1u << 0, /* independent of the activation dtype: first pass only       */
    BO_DEVICE_ONLY = 1u << 1, /* only on backends whose memory the host cannot use           */
    BO_REPEAT      = 1u << 2, /* run a second time (cpu: on one thread), bit-identical output */
    BO_BF16_ONLY   = 1u << 3, /* only with bf16 activations                                  */
    BO_CUDA_ONLY   = 1u << 4, /* a CUDA kernel variant: other backends would repeat a case   */
    BO_HOST_ONLY   = 1u << 5, /* only on backends with host-visible memory (cpu)              */
};

enum bo_role { BO_IN, BO_OUT, BO_INOUT };

struct bo_tensor {
    struct infvsr_tensor base;   /* the allocation: guard, data, guard (U8)            */
    struct infvsr_tensor t;      /* what the op sees                                   */
    enum bo_role         role;
    unsigned char *      init;   /* host copy of the initial contents of t             */
    size_t               nbytes;
};

/* One side of a case run: the backend and the tensors created on it. */
struct bo_ctx {
    struct infvsr_backend * be;
    enum infvsr_dtype       act;      /* activation dtype on this side                 */
    enum infvsr_dtype       round;    /* activation inputs are rounded to this dtype   */
    bool                    is_ref;   /* the reference side of a BO_COMPARE case        */
    bool                    is_cuda;
    uint64_t                seed;
    int                     n;
    struct bo_tensor        ts[BO_MAX_TENSORS];
    int                     n_views;
    struct infvsr_tensor    views[BO_MAX_TENSORS];
    bool                    setup_failed;
    char                    setup_msg[1024];
    struct infvsr_err       err;      /* the op's error                                 */
};

struct bo_case;
typedef enum infvsr_status (*bo_run_fn)(struct bo_ctx * c, const struct bo_case * k);

/* Host view of a finished run for BO_HOST_REF: initial bytes of every tensor (by creation
 * index) and the expected bytes of outputs, preset to their initial bytes. */
struct bo_host {
    int                          n;
    const struct infvsr_tensor * t[BO_MAX_TENSORS]; /* metadata only (dtype, shape)    */
    const unsigned char *        init[BO_MAX_TENSORS];
    unsigned char *              expect[BO_MAX_TENSORS]; /* NULL for inputs             */
};
typedef void (*bo_host_fn)(const struct bo_case * k, struct bo_host * h);

struct bo_case {
    const char *       op;           /* the op's name: -o filters on it                  */
    char               desc[192];    /* shapes and parameters: -p filters on it          */
    enum bo_kind       kind;
    unsigned           flags;
    /* BO_COMPARE tolerances, relative L2 error over each output:                         */
    double             tol_ref;      /* -b cpu: fast vs float64 reference (1e-5)         */
    double             tol_elem_ref; /* -b cpu: worst elementwise relative error (0: off) */
    double             tol_f32;      /* cuda vs cpu with f32 activations                  */
    double             tol_bf16;     /* any backend vs cpu with bf16 activations          */
    /* devsim with f32 activations runs the CPU kernels: always bit-identical to cpu.      */
    enum infvsr_status want;         /* BO_INVALID: the status expected (INVALID_ARG)     */
    const char *       needle;       /* BO_INVALID: in the message (NULL: any message)    */
    bo_run_fn          run;
    bo_host_fn         host_ref;
    _Alignas(8) unsigned char p[BO_PARAM_BYTES]; /* the op file's parameter struct      */
};

struct bo_list {
    struct bo_case * v;
    int              n, cap;
};

/* Appends a case with default tolerances; params (size <= BO_PARAM_BYTES) are copied. */
struct bo_case * bo_add(struct bo_list * l, const char * op, enum bo_kind kind, bo_run_fn run,
                        const void * params, size_t size);
void             bo_desc(struct bo_case * k, const char * fmt, ...) __attribute__((format(printf, 2, 3)));
#define BO_P(k, type) ((const type *)(const void *)(k)->p)

/* ---- helpers for run functions: tensors on c->be (NULL if setup failed) ---- */

/* Random uniform [lo, hi) input of dtype dt (BO_ACT allowed); integers: [lo, hi]. */
struct infvsr_tensor * bo_in(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                             const int64_t * shape, double lo, double hi);
/* Input holding `vals` converted to dt (a float dtype or BO_ACT). */
struct infvsr_tensor * bo_in_f32(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                                 const int64_t * shape, const float * vals);
/* Input holding raw bytes of dtype dt. */
struct infvsr_tensor * bo_in_bytes(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                                   const int64_t * shape, const void * bytes);
/* Output: NaN (float dtypes) or 0xAB bytes before the op. */
struct infvsr_tensor * bo_out(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                              const int64_t * shape);
/* Output with random initial contents (the op reads it: ACCUMULATE, partial views). */
struct infvsr_tensor * bo_inout(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                                const int64_t * shape, double lo, double hi);
/* An input that the op also writes (in place): compared as an output. */
struct infvsr_tensor * bo_make_out(struct bo_ctx * c, struct infvsr_tensor * t);
/* A view over the storage of t (created by the helpers above): dtype, shape and a byte
 * offset of its own, as modules make row slices and arena views. */
struct infvsr_tensor * bo_view(struct bo_ctx * c, const struct infvsr_tensor * t, const char * name,
                               enum infvsr_dtype dt, int ndim, const int64_t * shape, int64_t byte_offset);
/* The dtype BO_ACT stands for on this side. */
enum infvsr_dtype      bo_dtype(const struct bo_ctx * c, enum infvsr_dtype dt);
/* Next value of the case's random stream (same on both sides). */
uint64_t               bo_rand(struct bo_ctx * c);
/* "act" for BO_ACT, else the dtype's name (for descriptions). */
const char *           bo_dt_name(enum infvsr_dtype dt);
/* "[2, 3, 4]" of a shape (for descriptions); buf of 96 bytes. */
const char *           bo_shape(char * buf, int ndim, const int64_t * shape);

/* Run functions start with this after creating their tensors. */
#define BO_SETUP_DONE(c)                                  \
    do {                                                  \
        if ((c)->setup_failed) return INFVSR_ERR_NOMEM;   \
    } while (0)

/* ---- the runner's side of a run (backend_ops.c) ---- */

/* Frees the run's tensors. */
void bo_ctx_free(struct bo_ctx * c);
/* Queues a tensor_get of every tensor (guards included) into out[i] (malloc'd, free with
 * bo_free_all) and synchronizes; false with a reason on failure. */
bool bo_download_all(struct bo_ctx * c, unsigned char ** out, char * why, size_t why_len);
void bo_free_all(unsigned char ** bufs, int n);
/* Guards intact around every tensor and inputs as uploaded (every tensor when
 * all_unchanged); false with a reason (prefixed by side) otherwise. */
bool bo_check_untouched(const struct bo_ctx * c, unsigned char ** got, bool all_unchanged, const char * side,
                        char * why, size_t why_len);

/* ---- the case lists, one function per op family (tests/ops/cases_*.c) ---- */
void bo_cases_gemm(struct bo_list * l);        /* linear, matmul                         */
void bo_cases_norm(struct bo_list * l);        /* layer_norm, rms_norm, channel_rms_norm, modulate */
void bo_cases_elementwise(struct bo_list * l); /* unary, add, add_gated, affine_clamp, softmax */
void bo_cases_attention(struct bo_list * l);   /* attention, rope                        */
void bo_cases_conv(struct bo_list * l);        /* conv3d, resize                         */
void bo_cases_copy(struct bo_list * l);        /* copy                                   */
void bo_cases_gather(struct bo_list * l);      /* gather_rows                            */
void bo_cases_memory(struct bo_list * l);      /* the memory API: alloc, set, get        */

/* Shapes as compound literals. */
#define S1(a) ((const int64_t[]){ a })
#define S2(a, b) ((const int64_t[]){ a, b })
#define S3(a, b, c) ((const int64_t[]){ a, b, c })
#define S4(a, b, c, d) ((const int64_t[]){ a, b, c, d })
#define S5(a, b, c, d, e) ((const int64_t[]){ a, b, c, d, e })

/* Default tolerances (rel L2). cpu: the bound every op has met against the float64
 * reference. cuda f32: reductions in another order (cuBLASLt, tiled attention);
 * elementwise ops are far below it. bf16: output rounding alone is ~2e-3. */
#define BO_TOL_REF  1e-5
#define BO_TOL_F32  1e-5
#define BO_TOL_GEMM 1e-4
#define BO_TOL_BF16 1e-2
