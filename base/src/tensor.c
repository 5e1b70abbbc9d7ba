#include "infvsr/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char * name;
    const char * st_name; /* safetensors spelling */
    size_t       size;
    bool         is_float;
} dtype_info[INFVSR_TYPE_COUNT] = {
    [INFVSR_TYPE_F32]  = { "f32",  "F32",  4, true  },
    [INFVSR_TYPE_F16]  = { "f16",  "F16",  2, true  },
    [INFVSR_TYPE_BF16] = { "bf16", "BF16", 2, true  },
    [INFVSR_TYPE_F64]  = { "f64",  "F64",  8, true  },
    [INFVSR_TYPE_I64]  = { "i64",  "I64",  8, false },
    [INFVSR_TYPE_I32]  = { "i32",  "I32",  4, false },
    [INFVSR_TYPE_I16]  = { "i16",  "I16",  2, false },
    [INFVSR_TYPE_I8]   = { "i8",   "I8",   1, false },
    [INFVSR_TYPE_U8]   = { "u8",   "U8",   1, false },
    [INFVSR_TYPE_BOOL] = { "bool", "BOOL", 1, false },
};

size_t infvsr_dtype_size(enum infvsr_dtype t) {
    return (unsigned)t < INFVSR_TYPE_COUNT ? dtype_info[t].size : 0;
}

const char * infvsr_dtype_name(enum infvsr_dtype t) {
    return (unsigned)t < INFVSR_TYPE_COUNT ? dtype_info[t].name : "?";
}

bool infvsr_dtype_is_float(enum infvsr_dtype t) {
    return (unsigned)t < INFVSR_TYPE_COUNT && dtype_info[t].is_float;
}

int infvsr_dtype_from_name(const char * name) {
    for (int i = 0; i < INFVSR_TYPE_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0 || strcmp(name, dtype_info[i].st_name) == 0) {
            return i;
        }
    }
    return -1;
}

bool infvsr_shape_numel(int ndim, const int64_t * shape, int64_t * numel) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return false;
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) return false;
        n *= shape[i];
    }
    *numel = n;
    return true;
}

int64_t infvsr_tensor_numel(const struct infvsr_tensor * t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t infvsr_tensor_nbytes(const struct infvsr_tensor * t) {
    return (size_t)infvsr_tensor_numel(t) * infvsr_dtype_size(t->dtype);
}

void infvsr_tensor_setup(struct infvsr_tensor * t, const char * name, enum infvsr_dtype dtype,
                         int ndim, const int64_t * shape) {
    INFVSR_ASSERT(ndim >= 0 && ndim <= INFVSR_MAX_DIMS);
    memset(t, 0, sizeof *t);
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim  = ndim;
    for (int i = 0; i < INFVSR_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
}

enum infvsr_status infvsr_tensor_alloc(struct infvsr_tensor * t, const char * name,
                                       enum infvsr_dtype dtype, int ndim, const int64_t * shape) {
    int64_t numel;
    if (ndim < 0 || ndim > INFVSR_MAX_DIMS || !infvsr_shape_numel(ndim, shape, &numel)) {
        return INFVSR_ERR_INVALID_ARG;
    }
    infvsr_tensor_setup(t, name, dtype, ndim, shape);
    size_t nbytes = (size_t)numel * infvsr_dtype_size(dtype);
    size_t padded = (nbytes + INFVSR_TENSOR_ALIGN - 1) / INFVSR_TENSOR_ALIGN * INFVSR_TENSOR_ALIGN;
    if (padded == 0) padded = INFVSR_TENSOR_ALIGN;
    void * p = aligned_alloc(INFVSR_TENSOR_ALIGN, padded);
    if (!p) return INFVSR_ERR_NOMEM;
    memset(p, 0, padded);
    t->data      = p;
    t->owns_data = true;
    return INFVSR_OK;
}

void infvsr_tensor_view(struct infvsr_tensor * t, const char * name, enum infvsr_dtype dtype,
                        int ndim, const int64_t * shape, void * data) {
    infvsr_tensor_setup(t, name, dtype, ndim, shape);
    t->data = data;
}

void infvsr_tensor_release(struct infvsr_tensor * t) {
    if (!t) return;
    infvsr_tensor_release_data(t);
    memset(t, 0, sizeof *t);
}

void infvsr_tensor_release_data(struct infvsr_tensor * t) {
    if (!t) return;
    if (t->owns_data && t->mem == INFVSR_MEM_HOST) free(t->data);
    t->data      = NULL;
    t->owns_data = false;
}

const char * infvsr_shape_str(int ndim, const int64_t * shape, char * buf, size_t len) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < ndim && off < len; i++) {
        off += (size_t)snprintf(buf + off, len - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    }
    if (off < len) snprintf(buf + off, len - off, "]");
    return buf;
}

bool infvsr_tensor_same_shape(const struct infvsr_tensor * a, const struct infvsr_tensor * b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] != b->shape[i]) return false;
    }
    return true;
}

float infvsr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp  = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        /* zero or subnormal: value = mant * 2^-24 */
        float f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    } else if (exp == 31) {
        v.u = sign | 0x7f800000u | (mant << 13);
    } else {
        v.u = sign | ((exp + 112) << 23) | (mant << 13);
    }
    return v.f;
}

uint16_t infvsr_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = { .f = f };
    uint32_t sign = (v.u >> 16) & 0x8000u;
    uint32_t absu = v.u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);          /* NaN */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);         /* overflow -> inf */
    if (absu < 0x38800000u) {                                           /* subnormal or 0 */
        /* round-to-nearest-even on mant * 2^-24 */
        float a = fabsf(f) * 16777216.0f; /* exact scale by 2^24 */
        float r = nearbyintf(a);
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t rounded = absu + 0x0fffu + ((absu >> 13) & 1u);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

void infvsr_convert_to_f32(float * dst, const void * src, enum infvsr_dtype t, size_t n) {
    switch (t) {
        case INFVSR_TYPE_F32: memcpy(dst, src, n * 4); break;
        case INFVSR_TYPE_BF16: {
            const uint16_t * s = src;
            for (size_t i = 0; i < n; i++) dst[i] = infvsr_bf16_to_f32(s[i]);
            break;
        }
        case INFVSR_TYPE_F16: {
            const uint16_t * s = src;
            for (size_t i = 0; i < n; i++) dst[i] = infvsr_f16_to_f32(s[i]);
            break;
        }
        case INFVSR_TYPE_F64: { const double  * s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; break; }
        case INFVSR_TYPE_I64: { const int64_t * s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; break; }
        case INFVSR_TYPE_I32: { const int32_t * s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; break; }
        case INFVSR_TYPE_I16: { const int16_t * s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; break; }
        case INFVSR_TYPE_I8:  { const int8_t  * s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; break; }
        case INFVSR_TYPE_U8:
        case INFVSR_TYPE_BOOL:{ const uint8_t * s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; break; }
        default: INFVSR_ASSERT(!"bad dtype");
    }
}

void infvsr_convert_from_f32(void * dst, enum infvsr_dtype t, const float * src, size_t n) {
    switch (t) {
        case INFVSR_TYPE_F32: memcpy(dst, src, n * 4); break;
        case INFVSR_TYPE_BF16: { uint16_t * d = dst; for (size_t i = 0; i < n; i++) d[i] = infvsr_f32_to_bf16(src[i]); break; }
        case INFVSR_TYPE_F16:  { uint16_t * d = dst; for (size_t i = 0; i < n; i++) d[i] = infvsr_f32_to_f16(src[i]); break; }
        case INFVSR_TYPE_F64:  { double   * d = dst; for (size_t i = 0; i < n; i++) d[i] = src[i]; break; }
        default: INFVSR_ASSERT(!"convert_from_f32: unsupported destination dtype");
    }
}
