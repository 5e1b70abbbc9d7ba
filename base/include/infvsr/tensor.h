/* Tensors: a dtype, a shape of up to 5 dimensions and a pointer to contiguous data.
 *
 * Shapes are written outermost first, exactly as PyTorch and the checkpoints write them
 * (shape[0] is the slowest-varying axis). We keep PyTorch's order, not ggml's reversed
 * `ne[]`, because every tensor we touch is compared against a PyTorch reference or read
 * from a PyTorch checkpoint, and one convention everywhere removes a class of bugs.
 *
 * Ownership: a tensor either owns its data (allocated by infvsr_tensor_alloc, freed by
 * infvsr_tensor_release) or is a view into memory owned by someone else: a mapped
 * checkpoint (the model), a session's cache buffer, or a scratch arena. The struct itself
 * is always embedded in its owner (model, session, test); nothing here mallocs structs.
 * Backend tensors carry where they live in `mem`; device tensors are allocated and freed
 * through their backend (infvsr/backend.h), and their `data` may not be dereferenced by
 * the host (pointer arithmetic for views is fine). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum infvsr_dtype {
    INFVSR_TYPE_F32 = 0,
    INFVSR_TYPE_F16,
    INFVSR_TYPE_BF16,
    INFVSR_TYPE_F64,
    INFVSR_TYPE_I64,
    INFVSR_TYPE_I32,
    INFVSR_TYPE_I16,
    INFVSR_TYPE_I8,
    INFVSR_TYPE_U8,
    INFVSR_TYPE_BOOL,
    INFVSR_TYPE_COUNT
};

size_t            infvsr_dtype_size(enum infvsr_dtype t);
/* Lower-case torch-style names: "f32", "bf16", ... */
const char *      infvsr_dtype_name(enum infvsr_dtype t);
/* Accepts infvsr names ("bf16") and safetensors names ("BF16"); returns -1 if unknown. */
int               infvsr_dtype_from_name(const char * name);
bool              infvsr_dtype_is_float(enum infvsr_dtype t);

#define INFVSR_MAX_DIMS      5
#define INFVSR_NAME_MAX      128
#define INFVSR_TENSOR_ALIGN  64

enum infvsr_mem {
    INFVSR_MEM_HOST = 0,
    INFVSR_MEM_DEVICE,
};

struct infvsr_tensor {
    char              name[INFVSR_NAME_MAX];
    enum infvsr_dtype dtype;
    int               ndim;                     /* 0..INFVSR_MAX_DIMS (0 = scalar) */
    int64_t           shape[INFVSR_MAX_DIMS];   /* outermost first; unused dims are 1 */
    void *            data;                     /* contiguous row-major             */
    enum infvsr_mem   mem;
    bool              owns_data;                /* freed by infvsr_tensor_release   */
};

/* Product of dims with overflow and negativity checks; false on overflow or dim < 0. */
bool    infvsr_shape_numel(int ndim, const int64_t * shape, int64_t * numel);
int64_t infvsr_tensor_numel(const struct infvsr_tensor * t);
size_t  infvsr_tensor_nbytes(const struct infvsr_tensor * t);

/* Fills metadata (no allocation). name may be NULL. */
void infvsr_tensor_setup(struct infvsr_tensor * t, const char * name, enum infvsr_dtype dtype,
                         int ndim, const int64_t * shape);

/* Allocates host memory (64-byte aligned, zeroed) for a tensor of this shape. */
enum infvsr_status infvsr_tensor_alloc(struct infvsr_tensor * t, const char * name,
                                       enum infvsr_dtype dtype, int ndim, const int64_t * shape);

/* Makes `t` a view of `data` (not owned). */
void infvsr_tensor_view(struct infvsr_tensor * t, const char * name, enum infvsr_dtype dtype,
                        int ndim, const int64_t * shape, void * data);

/* Frees owned host data and zeroes the struct. Safe on a zeroed or view tensor. */
void infvsr_tensor_release(struct infvsr_tensor * t);
/* Frees owned host data but keeps name, dtype and shape (data NULL afterwards). */
void infvsr_tensor_release_data(struct infvsr_tensor * t);

/* Shape helpers for the common cases. */
static inline void infvsr_shape2(int64_t * s, int64_t a, int64_t b) { s[0] = a; s[1] = b; }

/* "[2, 3, 4]" into buf; returns buf. */
const char * infvsr_shape_str(int ndim, const int64_t * shape, char * buf, size_t len);

bool infvsr_tensor_same_shape(const struct infvsr_tensor * a, const struct infvsr_tensor * b);

/* ---- scalar conversions (round-to-nearest-even, as torch's .to()) ---- */

static inline float infvsr_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}

static inline uint16_t infvsr_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}

float    infvsr_f16_to_f32(uint16_t h);
uint16_t infvsr_f32_to_f16(float f);

/* Bulk conversion of n elements of `src_type` at src into f32 at dst. Supports all float
 * dtypes and the integer dtypes (exact for |x| < 2^24). */
void infvsr_convert_to_f32(float * dst, const void * src, enum infvsr_dtype src_type, size_t n);
/* Bulk conversion from f32 into F32/F16/BF16/F64. */
void infvsr_convert_from_f32(void * dst, enum infvsr_dtype dst_type, const float * src, size_t n);

#ifdef __cplusplus
}
#endif
