/* Implicit-GEMM 3-D convolution on bf16 tensor cores (inline mma.sync m16n8k16, sm_80+):
 * y[co, p] = sum_k W[co, k] . X(k, p), k = (ci, dt, dh, dw), p = (to, ho, wo), without
 * materialising the column matrix X (the im2col path writes and re-reads 27x the
 * input for a 3x3x3 kernel; here X is gathered into shared memory tile by tile).
 *
 * Thread/block split: grid (ceil(P/128), ceil(Cout/64)), 128 threads = 4 warps in a
 * 2 x 2 arrangement, each warp a 32 (Cout) x 64 (positions) sub-tile = 2 x 8 mma tiles,
 * 64 fp32 accumulators per thread. K advances 32 at a time:
 *   - the 64 x 32 weight tile (bf16, row-major [Cout, K]) goes to sA[m][k];
 *   - the 128 x 32 input tile is gathered to sB[n][k] (k contiguous, so a B fragment is
 *     two 32-bit loads): thread n owns output position n of the tile (consecutive
 *     threads = consecutive wo = consecutive x addresses when stride_w is 1) and walks the
 *     32 k of the step using a per-step table of (offset, dh, dw) in shared memory;
 *     spatial zero padding is a bounds test, T needs none (To counts valid frames only).
 * Fragment layouts as in attention_mma.cu. Rows padded by 8 bf16 (16 B) against bank
 * conflicts. No cp.async pipelining yet: two barriers per K step.
 * Used for bf16 activations when selected (infvsr_cuda_backend_set_conv_kernel); the
 * default stays im2col + cuBLASLt until this kernel has been measured on a GPU. */
#include "cuda_common.cuh"
#include "mma_bf16.cuh"

#define IG_BM  64
#define IG_BN  128
#define IG_BK  32
#define IG_LDA (IG_BK + 8)
#define IG_LDB (IG_BK + 8)

struct ig_geom {
    int64_t cin, t, h, w, cout;
    int64_t kt, kh, kw, kc;
    int64_t to, ho, wo, P;
    int     st, sh, sw, pt, pl;
};

__device__ __forceinline__ uint32_t ig_ld32(const __nv_bfloat16 * p) { return *(const uint32_t *)p; }

__global__ void __launch_bounds__(128) k_conv3d_implicit(const __nv_bfloat16 * __restrict__ x,
                                                         const __nv_bfloat16 * __restrict__ wt,
                                                         const void * bias, int bias_dtype, void * y,
                                                         int y_dtype, ig_geom g) {
    __shared__ __align__(16) __nv_bfloat16 sA[IG_BM * IG_LDA];
    __shared__ __align__(16) __nv_bfloat16 sB[IG_BN * IG_LDB];
    __shared__ int64_t kofs[IG_BK];
    __shared__ int     kdh[IG_BK], kdw[IG_BK];

    const int tid = threadIdx.x, warp = tid / 32, lane = tid & 31;
    const int gq = lane >> 2, tq = lane & 3;
    const int wm = warp & 1, wn = warp >> 1; /* warp's 32 x 64 sub-tile */
    const int64_t p0 = (int64_t)blockIdx.x * IG_BN;
    const int64_t co0 = (int64_t)blockIdx.y * IG_BM;
    const int64_t hw = g.h * g.w;

    /* this thread's output position (for the gather) */
    const int64_t pn = p0 + tid;
    const bool    pvalid = pn < g.P;
    int64_t xbase = 0;
    int     hi0 = 0, wi0 = 0;
    if (pvalid) {
        const int64_t wo = pn % g.wo, ho = (pn / g.wo) % g.ho, to = pn / (g.wo * g.ho);
        hi0 = (int)(ho * g.sh - g.pt);
        wi0 = (int)(wo * g.sw - g.pl);
        xbase = to * g.st * hw + (int64_t)hi0 * g.w + wi0;
    }

    float acc[2][8][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;

    for (int64_t k0 = 0; k0 < g.kc; k0 += IG_BK) {
        __syncthreads(); /* previous step's fragments are read */
        if (tid < IG_BK) {
            const int64_t k = k0 + tid;
            int64_t off = 0;
            int dh = -1000000, dw = -1000000; /* k past Kc: forces the bounds test to fail */
            if (k < g.kc) {
                dw = (int)(k % g.kw);
                dh = (int)((k / g.kw) % g.kh);
                const int64_t dt = (k / (g.kw * g.kh)) % g.kt, ci = k / (g.kw * g.kh * g.kt);
                off = ci * g.t * hw + dt * hw + (int64_t)dh * g.w + dw;
            }
            kofs[tid] = off;
            kdh[tid] = dh;
            kdw[tid] = dw;
        }
        /* weight tile: 64 x 32, element e -> (m = e / 32, k = e % 32), coalesced along k */
        for (int e = tid; e < IG_BM * IG_BK; e += 128) {
            const int m = e / IG_BK, kk = e % IG_BK;
            const int64_t co = co0 + m, k = k0 + kk;
            sA[m * IG_LDA + kk] = (co < g.cout && k < g.kc) ? wt[co * g.kc + k] : __float2bfloat16_rn(0.0f);
        }
        __syncthreads(); /* k table ready */
        /* input tile: row tid of sB, 32 k values, stored as 16 bf16 pairs */
#pragma unroll 4
        for (int kk = 0; kk < IG_BK; kk += 2) {
            __nv_bfloat16 v[2];
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int hh = hi0 + kdh[kk + u], ww = wi0 + kdw[kk + u];
                v[u] = (pvalid && hh >= 0 && hh < g.h && ww >= 0 && ww < g.w)
                           ? x[xbase + kofs[kk + u]]
                           : __float2bfloat16_rn(0.0f);
            }
            __nv_bfloat162 pr;
            pr.x = v[0];
            pr.y = v[1];
            *(__nv_bfloat162 *)&sB[tid * IG_LDB + kk] = pr;
        }
        __syncthreads();

#pragma unroll
        for (int ks = 0; ks < IG_BK / 16; ks++) {
            uint32_t a[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const __nv_bfloat16 * ar = sA + (wm * 32 + mt * 16 + gq) * IG_LDA + ks * 16 + 2 * tq;
                a[mt][0] = ig_ld32(ar);
                a[mt][1] = ig_ld32(ar + 8 * IG_LDA);
                a[mt][2] = ig_ld32(ar + 8);
                a[mt][3] = ig_ld32(ar + 8 * IG_LDA + 8);
            }
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const __nv_bfloat16 * br = sB + (wn * 64 + nt * 8 + gq) * IG_LDB + ks * 16 + 2 * tq;
                const uint32_t b0 = ig_ld32(br), b1 = ig_ld32(br + 8);
                cu_mma_bf16_16816(acc[0][nt], a[0], b0, b1);
                cu_mma_bf16_16816(acc[1][nt], a[1], b0, b1);
            }
        }
    }

    /* epilogue: rows co = .. + gq (+8), columns p = .. + 2tq (+1); bias per output channel */
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int64_t co = co0 + wm * 32 + mt * 16 + gq + hr * 8;
            if (co >= g.cout) continue;
            const float bv = bias ? cu_load(bias, bias_dtype, co) : 0.0f;
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int64_t pp = p0 + wn * 64 + nt * 8 + 2 * tq + u;
                    if (pp < g.P) cu_store(y, y_dtype, co * g.P + pp, acc[mt][nt][hr * 2 + u] + bv);
                }
            }
        }
    }
}

/* x, w: bf16 device pointers (w already converted); y: bf16 or f32. */
enum infvsr_status cu_conv3d_implicit(struct cuda_ctx * c, const void * x, const void * w,
                                      const void * bias, int bias_dtype, void * y, int y_dtype,
                                      const int64_t * xs, const int64_t * ws, const int64_t * ys,
                                      const int * stride, int pad_top, int pad_left,
                                      struct infvsr_err * err) {
    ig_geom g;
    g.cin = xs[0]; g.t = xs[1]; g.h = xs[2]; g.w = xs[3];
    g.cout = ws[0]; g.kt = ws[2]; g.kh = ws[3]; g.kw = ws[4];
    g.kc = g.cin * g.kt * g.kh * g.kw;
    g.to = ys[1]; g.ho = ys[2]; g.wo = ys[3];
    g.P = g.to * g.ho * g.wo;
    g.st = stride[0]; g.sh = stride[1]; g.sw = stride[2];
    g.pt = pad_top; g.pl = pad_left;
    const int64_t gx = (g.P + IG_BN - 1) / IG_BN, gy = (g.cout + IG_BM - 1) / IG_BM;
    if (gx > 0x7fffffffLL || gy > 65535)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d (implicit): grid too large");
    CU_LAUNCH(dim3((unsigned)gx, (unsigned)gy), 128, 0, c->stream, k_conv3d_implicit)(
        (const __nv_bfloat16 *)x, (const __nv_bfloat16 *)w, bias, bias_dtype, y, y_dtype, g);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}
