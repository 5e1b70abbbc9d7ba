/* Shared by the attention kernels (attention.cu: dispatch, WMMA and SIMT kernels;
 * attention_mma.cu: the mma.sync kernel). */
#pragma once

#include "cuda_common.cuh"

struct attn_p {
    const void *  q;  int qd;
    const void *  k0; const void * k1; int kd;
    const void *  v0; const void * v1; int vd;
    const float * bias;
    void *        out; int od;
    int64_t       nq, n0, nk;   /* nk = n0 + n1 */
    int           h, d;
    int64_t       hd;           /* row stride of q/k/v/out = H*D */
    /* Softmax in base 2: scores are kept as log2(e) * (scale * q.k + bias), so every
     * exponential is one exp2f (the SFU's ex2) instead of expf's extra multiply, and
     * log2(e) is folded into the scale here, once per call, instead of per score. */
    float         scale_log2;   /* scale * ATTN_LOG2E */
};

#define ATTN_LOG2E 1.4426950408889634f /* log2(e): exp(x) = exp2(x * log2(e)) */

/* Row j of the key (or value) sequence for head h, from the segment holding it. */
__device__ __forceinline__ int64_t seg_offset(const attn_p & p, int64_t j, int head) {
    return (j < p.n0 ? j : j - p.n0) * p.hd + (int64_t)head * p.d;
}

/* Copies ROWS rows (row r = sequence row r0 + r; zero past `limit`) of one head into
 * a [ROWS][D + 8] bf16 tile with 16-byte vector loads. Host guarantees 16-byte alignment. */
template <int D, int ROWS>
__device__ __forceinline__ void attn_load_rows(__nv_bfloat16 * dst, const attn_p & p, const void * s0,
                                               const void * s1, int64_t split, int64_t r0,
                                               int64_t limit, int head) {
    constexpr int VPR = D / 8; /* 16-byte vectors per row */
    constexpr int ldt = D + 8;
    for (int v = threadIdx.x; v < ROWS * VPR; v += blockDim.x) {
        const int     r = v / VPR, c = (v % VPR) * 8;
        const int64_t j = r0 + r;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (j < limit) {
            const __nv_bfloat16 * src =
                (const __nv_bfloat16 *)(j < split ? s0 : s1) +
                (j < split ? j : j - split) * p.hd + (int64_t)head * D + c;
            val = *(const uint4 *)src;
        }
        *(uint4 *)(dst + r * ldt + c) = val;
    }
}

/* The mma.sync flash kernel (attention_mma.cu); *launched false when it does not apply
 * (head dim, shared memory), so the caller falls back. */
enum infvsr_status cu_attention_mma(struct cuda_ctx * c, const attn_p & p, bool * launched,
                                    struct infvsr_err * err);
