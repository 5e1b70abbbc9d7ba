/* Flash attention with register-resident tiles (FlashAttention-2 scheme) on bf16 tensor
 * cores through inline `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32` (sm_80+).
 * bf16 q/k/v, head dim D in {32, 64, 128}; the default fast path for those (see
 * attention.cu for the dispatch and the WMMA / SIMT kernels it falls back to).
 *
 * Thread/block split: grid (ceil(Nq/64), H), 128 threads = 4 warps, each warp owns 16
 * query rows. Per 64-key tile the block stages K row-major and V TRANSPOSED (d-major) in
 * shared memory, so that every B fragment is two aligned 32-bit shared loads.
 * Fragment layout of m16n8k16 (PTX ISA "Matrix fragments for mma.m16n8k16"), with
 * g = lane / 4 and t = lane % 4:
 *   A (16x16, row): a{0,1} = (g, 2t..2t+1), a{2,3} = (g+8, 2t..), a{4,5} = (g, 2t+8..),
 *                   a{6,7} = (g+8, 2t+8..); register i holds elements {2i, 2i+1}, low half first.
 *   B (16x8, col):  b{0,1} = (k = 2t..2t+1, n = g), b{2,3} = (k = 2t+8.., n = g).
 *   C (16x8, f32):  c{0,1} = (g, 2t..2t+1), c{2,3} = (g+8, 2t..2t+1).
 * So a thread holds rows g and g+8 of S (8 n-tiles x 2 columns each) and of O (D/8
 * n-tiles x 2); row max/sum reduce over the 4 lanes of a group (xor 1, 2). The S
 * accumulator of n-tiles 2kb and 2kb+1 is exactly the A fragment of P for key step kb,
 * so P never leaves registers (converted to bf16 pairs). Q fragments are loaded once
 * into registers; O accumulates in registers in fp32 and is rescaled by exp2(m_old -
 * m_new) per row (in base 2: exp2f on log2(e)-scaled scores, attention_internal.cuh);
 * l is kept per lane and reduced at the end.
 * Shared memory: Q 64 x (D+8), K 64 x (D+8), V^T D x 72 bf16 = 27 KB (D=32) .. 53 KB
 * (D=128). Row pads make the 32-bit fragment loads conflict-free (row stride = 4 banks
 * mod 32, so the 8 groups x 4 lanes hit 32 distinct banks).
 * Not yet: cp.async double buffering, ldmatrix, wgmma/TMA (sm_90a). */
#include "attention_internal.cuh"
#include "mma_bf16.cuh"

#define MM_BQ   64
#define MM_BK   64
#define MM_LDVT (MM_BK + 8)

template <int D> struct mm_layout {
    static constexpr int    ldt   = D + 8;
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = q_off + (size_t)MM_BQ * ldt * 2;
    static constexpr size_t v_off = k_off + (size_t)MM_BK * ldt * 2;
    static constexpr size_t total = v_off + (size_t)D * MM_LDVT * 2;
};

__device__ __forceinline__ uint32_t ld_s32(const __nv_bfloat16 * p) {
    return *(const uint32_t *)p; /* callers pass even element offsets: 4-byte aligned */
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); /* .x = lo = low 16 bits */
    return *(uint32_t *)&h;
}

template <int D>
__global__ void __launch_bounds__(128) k_attn_mma(attn_p p) {
    using L = mm_layout<D>;
    constexpr int LDT = L::ldt, KS = D / 16, DT = D / 8, NT = MM_BK / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 * sQ  = (__nv_bfloat16 *)(smem + L::q_off);
    __nv_bfloat16 * sK  = (__nv_bfloat16 *)(smem + L::k_off);
    __nv_bfloat16 * sVt = (__nv_bfloat16 *)(smem + L::v_off);

    const int     warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int     g = lane >> 2, t = lane & 3;
    const int     head = blockIdx.y;
    const int64_t i0 = (int64_t)blockIdx.x * MM_BQ;
    const int64_t q0 = i0 + warp * 16 + g, q1 = q0 + 8; /* this lane's two query rows */

    attn_load_rows<D, MM_BQ>(sQ, p, p.q, p.q, INT64_MAX, i0, p.nq, head);
    __syncthreads();
    uint32_t qf[KS][4];
    {
        const __nv_bfloat16 * r0 = sQ + (warp * 16 + g) * LDT + 2 * t;
        const __nv_bfloat16 * r1 = r0 + 8 * LDT;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            qf[kk][0] = ld_s32(r0 + kk * 16);
            qf[kk][1] = ld_s32(r1 + kk * 16);
            qf[kk][2] = ld_s32(r0 + kk * 16 + 8);
            qf[kk][3] = ld_s32(r1 + kk * 16 + 8);
        }
    }

    float o[DT][4];
#pragma unroll
    for (int dt = 0; dt < DT; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    const float * b0row = (p.bias && q0 < p.nq) ? p.bias + ((int64_t)head * p.nq + q0) * p.nk : nullptr;
    const float * b1row = (p.bias && q1 < p.nq) ? p.bias + ((int64_t)head * p.nq + q1) * p.nk : nullptr;

    for (int64_t j0 = 0; j0 < p.nk; j0 += MM_BK) {
        __syncthreads(); /* every warp is done with the previous K / V^T tile */
        attn_load_rows<D, MM_BK>(sK, p, p.k0, p.k1, p.n0, j0, p.nk, head);
        /* V transposed: consecutive threads take consecutive keys of one 8-wide d slice,
         * so the 2-byte shared stores of a warp fall in distinct banks. */
        for (int v = threadIdx.x; v < MM_BK * (D / 8); v += blockDim.x) {
            const int     r = v % MM_BK, c = (v / MM_BK) * 8;
            const int64_t j = j0 + r;
            uint4 val = make_uint4(0, 0, 0, 0);
            if (j < p.nk) val = *(const uint4 *)((const __nv_bfloat16 *)(j < p.n0 ? p.v0 : p.v1) +
                                                 seg_offset(p, j, head) + c);
            const __nv_bfloat16 * e = (const __nv_bfloat16 *)&val;
#pragma unroll
            for (int k = 0; k < 8; k++) sVt[(c + k) * MM_LDVT + r] = e[k];
        }
        __syncthreads();

        /* S = Q K^T for this warp's 16 rows x 64 keys */
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            const __nv_bfloat16 * kr = sK + (nt * 8 + g) * LDT + 2 * t;
#pragma unroll
            for (int kk = 0; kk < KS; kk++) cu_mma_bf16_16816(s[nt], qf[kk], ld_s32(kr + kk * 16), ld_s32(kr + kk * 16 + 8));
        }

        /* scale, bias, mask; row maxima over the 4 lanes of the group */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int64_t j = j0 + nt * 8 + 2 * t + (e & 1);
                const float * br = e < 2 ? b0row : b1row;
                float v = -INFINITY;
                if (j < p.nk) v = s[nt][e] * p.scale_log2 + (br ? br[j] * ATTN_LOG2E : 0.0f);
                s[nt][e] = v;
                if (e < 2) mx0 = fmaxf(mx0, v); else mx1 = fmaxf(mx1, v);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
        const bool  e0 = n0 == -INFINITY, e1 = n1 == -INFINITY; /* all scores masked so far */
        const float a0 = e0 ? 1.0f : exp2f(m0 - n0), a1 = e1 ? 1.0f : exp2f(m1 - n1);
        float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = e0 ? 0.0f : exp2f(s[nt][0] - n0);
            s[nt][1] = e0 ? 0.0f : exp2f(s[nt][1] - n0);
            s[nt][2] = e1 ? 0.0f : exp2f(s[nt][2] - n1);
            s[nt][3] = e1 ? 0.0f : exp2f(s[nt][3] - n1);
            ps0 += s[nt][0] + s[nt][1];
            ps1 += s[nt][2] + s[nt][3];
        }
        l0 = l0 * a0 + ps0; /* per-lane partial sums; reduced once at the end */
        l1 = l1 * a1 + ps1;
        if (!e0) m0 = n0;
        if (!e1) m1 = n1;
#pragma unroll
        for (int dt = 0; dt < DT; dt++) {
            o[dt][0] *= a0; o[dt][1] *= a0;
            o[dt][2] *= a1; o[dt][3] *= a1;
        }

        /* O += P V: P's A fragment for key step kb is S of n-tiles 2kb, 2kb+1 */
#pragma unroll
        for (int kb = 0; kb < MM_BK / 16; kb++) {
            uint32_t pa[4];
            pa[0] = pack_bf16x2(s[2 * kb][0], s[2 * kb][1]);
            pa[1] = pack_bf16x2(s[2 * kb][2], s[2 * kb][3]);
            pa[2] = pack_bf16x2(s[2 * kb + 1][0], s[2 * kb + 1][1]);
            pa[3] = pack_bf16x2(s[2 * kb + 1][2], s[2 * kb + 1][3]);
            const __nv_bfloat16 * vr = sVt + g * MM_LDVT + kb * 16 + 2 * t;
#pragma unroll
            for (int dt = 0; dt < DT; dt++)
                cu_mma_bf16_16816(o[dt], pa, ld_s32(vr + dt * 8 * MM_LDVT), ld_s32(vr + dt * 8 * MM_LDVT + 8));
        }
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int dt = 0; dt < DT; dt++) {
        const int c = head * D + dt * 8 + 2 * t;
        if (q0 < p.nq) {
            cu_store(p.out, p.od, q0 * p.hd + c, o[dt][0] * inv0);
            cu_store(p.out, p.od, q0 * p.hd + c + 1, o[dt][1] * inv0);
        }
        if (q1 < p.nq) {
            cu_store(p.out, p.od, q1 * p.hd + c, o[dt][2] * inv1);
            cu_store(p.out, p.od, q1 * p.hd + c + 1, o[dt][3] * inv1);
        }
    }
}

template <int D>
static enum infvsr_status launch_mma(struct cuda_ctx * c, const attn_p & p, bool * launched,
                                     struct infvsr_err * err) {
    const size_t smem = mm_layout<D>::total;
    *launched = false;
    if (smem > c->prop.sharedMemPerBlockOptin) return INFVSR_OK;
    if ((p.nq + MM_BQ - 1) / MM_BQ > 0x7fffffffLL) return INFVSR_OK;
    CU_CHECK(c, err, cudaFuncSetAttribute(k_attn_mma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)smem));
    dim3 grid((unsigned)((p.nq + MM_BQ - 1) / MM_BQ), (unsigned)p.h);
    CU_LAUNCH(grid, 128, smem, c->stream, k_attn_mma<D>)(p);
    CU_CHECK_LAUNCH(c, err);
    *launched = true;
    return INFVSR_OK;
}

enum infvsr_status cu_attention_mma(struct cuda_ctx * c, const attn_p & p, bool * launched,
                                    struct infvsr_err * err) {
    *launched = false;
    switch (p.d) {
    case 32:  return launch_mma<32>(c, p, launched, err);
    case 64:  return launch_mma<64>(c, p, launched, err);
    case 128: return launch_mma<128>(c, p, launched, err);
    default:  return INFVSR_OK;
    }
}
