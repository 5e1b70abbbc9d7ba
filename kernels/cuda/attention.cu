/* Multi-head softmax attention (kernels/ops.h infvsr_attn_args): flash-style, never
 * materialising the [Nq, Nk] score matrix, keys/values in up to two segments (the DiT's
 * KV cache + the new chunk), optional additive f32 bias [H, Nq, Nk].
 *
 * Three kernels; the dispatch (cu_attention, at the end) picks the first that applies:
 *
 * 0. k_attn_mma<D> (attention_mma.cu): FlashAttention-2 style, S/P/O in registers,
 *    inline mma.sync m16n8k16; bf16, D in {32, 64, 128}. The default fast path.
 *
 * 1. k_attn_wmma<D, WARPS> (tensor cores; bf16 q/k/v, D in {32, 64, 128} with 4 warps,
 *    D = 384 (the VAE's single head) with 2 warps; sm_80+):
 *    grid (ceil(Nq/BQ), H), BQ = 16 x WARPS query rows per block, each warp owns 16. Per 64-key tile: all threads stage K and V (bf16, 16-byte
 *    loads) in shared memory; each warp computes S = Q_w K^T (16x64, fp32 accumulate,
 *    WMMA m16n16k16), spills S to its shared slice, runs the online softmax in fp32
 *    (2 lanes per row, 32 columns each; running max m and sum l in registers), writes
 *    P as bf16, rescales its fp32 O accumulator (kept in shared memory, since WMMA
 *    fragments have no defined element order) by exp2(m_old - m_new) and adds P V.
 *    Shared memory per block: Q, K, V tiles (64 x (D+8) bf16 each; +8 pads rows by 16
 *    bytes against bank conflicts and keeps WMMA's 32-byte alignment), S (W x 16 x 68 f32),
 *    P (W x 16 x 72 bf16), O (W x 16 x (D+4) f32): 50 KB (D=32) .. 110 KB (D=128),
 *    184 KB (D=384, 2 warps: fits sm_90's 227 KB, not sm_80's 163 KB, where D=384 falls
 *    back to the SIMT kernel); opted in with cudaFuncSetAttribute, checked against
 *    sharedMemPerBlockOptin at launch.
 *    Mirrors FlashAttention-2's math (fp32 softmax statistics, bf16 P for the second
 *    product); not its speed: S and O round-trip through shared memory, no wgmma, no
 *    TMA, no warp specialisation (see docs/CUDA.md, "performance gaps").
 *
 * 2. k_attn_simt (fp32 CUDA cores; any dtype, any D <= 512, e.g. the VAE's 384, and
 *    every f32 call): grid (ceil(Nq/4), H), one warp per query row; lane l holds
 *    q[l + 32t] and the output accumulator for those channels; per key a warp-reduced
 *    dot product and an exact online-softmax update. Correct to fp32 rounding, slow
 *    (~1 key per 10 warp instructions): a reference path, and the f32 test path.
 */
#include "attention_internal.cuh"

#include <mma.h>

using namespace nvcuda;

/* ------------------------------------------------------------------ SIMT path */

#define SIMT_WARPS   4
#define SIMT_MAX_VPL 16 /* values per lane: D <= 512 */

__global__ void __launch_bounds__(SIMT_WARPS * 32) k_attn_simt(attn_p p) {
    const int     lane = threadIdx.x & 31;
    const int64_t qi   = blockIdx.x * (int64_t)SIMT_WARPS + threadIdx.x / 32;
    const int     head = blockIdx.y;
    if (qi >= p.nq) return; /* no block-level barriers below */
    float q[SIMT_MAX_VPL], acc[SIMT_MAX_VPL];
#pragma unroll
    for (int t = 0; t < SIMT_MAX_VPL; t++) {
        const int d = lane + 32 * t;
        q[t]   = d < p.d ? cu_load(p.q, p.qd, qi * p.hd + (int64_t)head * p.d + d) : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const float * brow = p.bias ? p.bias + ((int64_t)head * p.nq + qi) * p.nk : nullptr;
    for (int64_t j = 0; j < p.nk; j++) {
        const void *  kp  = j < p.n0 ? p.k0 : p.k1;
        const void *  vp  = j < p.n0 ? p.v0 : p.v1;
        const int64_t off = seg_offset(p, j, head);
        float dot = 0.0f;
#pragma unroll
        for (int t = 0; t < SIMT_MAX_VPL; t++) {
            const int d = lane + 32 * t;
            if (d < p.d) dot += q[t] * cu_load(kp, p.kd, off + d);
        }
        for (int o = 16; o; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        float s = dot * p.scale_log2 + (brow ? brow[j] * ATTN_LOG2E : 0.0f); /* base-2 score */
        const float m_new = fmaxf(m, s);
        if (m_new == -INFINITY) continue; /* every score so far is -inf: nothing to add */
        const float corr = exp2f(m - m_new), pj = exp2f(s - m_new);
        l = l * corr + pj;
        m = m_new;
#pragma unroll
        for (int t = 0; t < SIMT_MAX_VPL; t++) {
            const int d = lane + 32 * t;
            if (d < p.d) acc[t] = acc[t] * corr + pj * cu_load(vp, p.vd, off + d);
        }
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int t = 0; t < SIMT_MAX_VPL; t++) {
        const int d = lane + 32 * t;
        if (d < p.d) cu_store(p.out, p.od, qi * p.hd + (int64_t)head * p.d + d, acc[t] * inv);
    }
}

/* ------------------------------------------------------------------ WMMA path */

#define WM_BK    64
#define WM_LDS   (WM_BK + 4) /* S row stride (floats)  */
#define WM_LDP   (WM_BK + 8) /* P row stride (bf16)    */

/* WARPS warps per block, 16 query rows each (BQ = 16 * WARPS): 4 for D <= 128; 2 for
 * D = 384 so that Q, K, V and the fp32 O slices fit in Hopper's 227 KB. */
template <int D, int WARPS> struct wm_layout {
    static constexpr int bq  = 16 * WARPS;
    static constexpr int ldt = D + 8; /* Q/K/V row stride (bf16) */
    static constexpr int ldo = D + 4; /* O row stride (floats)   */
    static constexpr size_t q_bytes = (size_t)bq * ldt * 2;
    static constexpr size_t k_bytes = (size_t)WM_BK * ldt * 2;
    static constexpr size_t s_bytes = (size_t)WARPS * 16 * WM_LDS * 4;
    static constexpr size_t p_bytes = (size_t)WARPS * 16 * WM_LDP * 2;
    static constexpr size_t o_bytes = (size_t)WARPS * 16 * ldo * 4;
    static constexpr size_t off_k = q_bytes;
    static constexpr size_t off_v = off_k + k_bytes;
    static constexpr size_t off_s = off_v + k_bytes;
    static constexpr size_t off_p = off_s + s_bytes;
    static constexpr size_t off_o = off_p + p_bytes;
    static constexpr size_t total = off_o + o_bytes;
    /* Every region and every 16-row fragment offset must stay 32-byte aligned (WMMA). */
    static_assert(q_bytes % 128 == 0 && k_bytes % 128 == 0 && s_bytes % 128 == 0 &&
                  p_bytes % 128 == 0 && o_bytes % 128 == 0, "shared regions misaligned");
};

template <int D, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) k_attn_wmma(attn_p p) {
    using L = wm_layout<D, WARPS>;
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 * sQ = (__nv_bfloat16 *)smem;
    __nv_bfloat16 * sK = (__nv_bfloat16 *)(smem + L::off_k);
    __nv_bfloat16 * sV = (__nv_bfloat16 *)(smem + L::off_v);
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    float *         sS = (float *)(smem + L::off_s) + warp * 16 * WM_LDS;
    __nv_bfloat16 * sP = (__nv_bfloat16 *)(smem + L::off_p) + warp * 16 * WM_LDP;
    float *         sO = (float *)(smem + L::off_o) + warp * 16 * L::ldo;

    const int     head = blockIdx.y;
    const int64_t i0   = (int64_t)blockIdx.x * L::bq;

    /* Q tile (rows past nq are zero; their outputs are never stored). */
    attn_load_rows<D, L::bq>(sQ, p, p.q, p.q, INT64_MAX, i0, p.nq, head);
    for (int e = lane; e < 16 * L::ldo; e += 32) sO[e] = 0.0f;

    /* Softmax bookkeeping: lane handles row r = lane/2 of the warp's 16, columns
     * [half*32, half*32+32) of S and [half*D/2, (half+1)*D/2) of O. */
    const int     r = lane >> 1, half = lane & 1;
    const int64_t qi = i0 + warp * 16 + r;
    float m_i = -INFINITY, l_i = 0.0f;

    for (int64_t j0 = 0; j0 < p.nk; j0 += WM_BK) {
        __syncthreads(); /* previous tile's K/V reads are done (and Q is staged) */
        attn_load_rows<D, WM_BK>(sK, p, p.k0, p.k1, p.n0, j0, p.nk, head);
        attn_load_rows<D, WM_BK>(sV, p, p.v0, p.v1, p.n0, j0, p.nk, head);
        __syncthreads();

        /* S = Q_w . K^T */
#pragma unroll
        for (int nb = 0; nb < WM_BK / 16; nb++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
                wmma::load_matrix_sync(a, sQ + (warp * 16) * L::ldt + kk * 16, L::ldt);
                wmma::load_matrix_sync(b, sK + (nb * 16) * L::ldt + kk * 16, L::ldt);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(sS + nb * 16, acc, WM_LDS, wmma::mem_row_major);
        }
        __syncwarp();

        /* Online softmax over this tile's 64 columns. */
        float s[32];
        float tmax = -INFINITY;
        const float * brow = (p.bias && qi < p.nq) ? p.bias + ((int64_t)head * p.nq + qi) * p.nk : nullptr;
#pragma unroll
        for (int t = 0; t < 32; t++) {
            const int     col = half * 32 + t;
            const int64_t j   = j0 + col;
            float v = -INFINITY;
            if (j < p.nk) v = sS[r * WM_LDS + col] * p.scale_log2 + (brow ? brow[j] * ATTN_LOG2E : 0.0f);
            s[t] = v;
            tmax = fmaxf(tmax, v);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        const float m_new = fmaxf(m_i, tmax);
        const bool  empty = (m_new == -INFINITY); /* every score so far masked */
        const float alpha = empty ? 1.0f : exp2f(m_i - m_new);
        float psum = 0.0f;
#pragma unroll
        for (int t = 0; t < 32; t++) {
            const float pv = empty ? 0.0f : exp2f(s[t] - m_new);
            psum += pv;
            sP[r * WM_LDP + half * 32 + t] = __float2bfloat16_rn(pv);
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        l_i = l_i * alpha + psum;
        m_i = empty ? m_i : m_new;
        for (int c = half * (D / 2); c < (half + 1) * (D / 2); c++) sO[r * L::ldo + c] *= alpha;
        __syncwarp();

        /* O_w += P_w . V */
#pragma unroll
        for (int db = 0; db < D / 16; db++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, sO + db * 16, L::ldo, wmma::mem_row_major);
#pragma unroll
            for (int kb = 0; kb < WM_BK / 16; kb++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
                wmma::load_matrix_sync(a, sP + kb * 16, WM_LDP);
                wmma::load_matrix_sync(b, sV + (kb * 16) * L::ldt + db * 16, L::ldt);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(sO + db * 16, acc, L::ldo, wmma::mem_row_major);
        }
        __syncwarp();
    }

    if (qi < p.nq) {
        const float inv = l_i > 0.0f ? 1.0f / l_i : 0.0f;
        const int64_t base = qi * p.hd + (int64_t)head * D;
        for (int c = half * (D / 2); c < (half + 1) * (D / 2); c++)
            cu_store(p.out, p.od, base + c, sO[r * L::ldo + c] * inv);
    }
}

/* ------------------------------------------------------------------ host side */

template <int D, int WARPS>
static enum infvsr_status launch_wmma(struct cuda_ctx * c, const attn_p & p, bool * launched,
                                      struct infvsr_err * err) {
    using L = wm_layout<D, WARPS>;
    const size_t smem = L::total;
    *launched = false;
    if (smem > c->prop.sharedMemPerBlockOptin) return INFVSR_OK; /* caller uses the SIMT path */
    if ((p.nq + L::bq - 1) / L::bq > 0x7fffffffLL) return INFVSR_OK;
    CU_CHECK(c, err, cudaFuncSetAttribute(k_attn_wmma<D, WARPS>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid((unsigned)((p.nq + L::bq - 1) / L::bq), (unsigned)p.h);
    CU_LAUNCH(grid, WARPS * 32, smem, c->stream, k_attn_wmma<D, WARPS>)(p);
    CU_CHECK_LAUNCH(c, err);
    *launched = true;
    return INFVSR_OK;
}

static bool aligned16(const void * ptr) { return ((uintptr_t)ptr & 15u) == 0; }

static enum infvsr_status check_seq(const struct infvsr_tensor * t, int64_t hd, const char * role,
                                    int64_t * n, struct infvsr_err * err) {
    INFVSR_TRY(cu_check_tensor(t, "attention", role, false, err));
    if (cu_last_dim(t) != hd)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: %s ('%s') last dim %lld != q's %lld",
                      role, t->name, (long long)cu_last_dim(t), (long long)hd);
    *n = hd ? infvsr_tensor_numel(t) / hd : 0;
    return INFVSR_OK;
}

enum infvsr_status cu_attention(struct infvsr_backend * be, const struct infvsr_attn_args * a,
                                struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: args is NULL");
    INFVSR_TRY(cu_check_tensor(a->q, "attention", "q", false, err));
    INFVSR_TRY(cu_check_tensor(a->out, "attention", "out", false, err));
    const int64_t hd = cu_last_dim(a->q);
    if (a->n_heads <= 0 || hd <= 0 || hd % a->n_heads != 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: q last dim %lld is not a multiple of "
                      "n_heads %d", (long long)hd, a->n_heads);
    const int     D  = (int)(hd / a->n_heads);
    const int64_t nq = infvsr_tensor_numel(a->q) / hd;
    if (!infvsr_tensor_same_shape_cu(a->q, a->out))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: out ('%s') must have q's shape",
                      a->out->name);
    int64_t n0 = 0, n0v = 0, n1 = 0, n1v = 0;
    INFVSR_TRY(check_seq(a->k0, hd, "k0", &n0, err));
    INFVSR_TRY(check_seq(a->v0, hd, "v0", &n0v, err));
    if ((a->k1 == nullptr) != (a->v1 == nullptr))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: k1 and v1 must both be set or both NULL");
    if (a->k1) {
        INFVSR_TRY(check_seq(a->k1, hd, "k1", &n1, err));
        INFVSR_TRY(check_seq(a->v1, hd, "v1", &n1v, err));
        if (a->k1->dtype != a->k0->dtype || a->v1->dtype != a->v0->dtype)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: both key (value) segments must "
                          "share a dtype");
    }
    if (n0 != n0v || n1 != n1v)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: keys and values differ in length "
                      "(%lld+%lld vs %lld+%lld)", (long long)n0, (long long)n1, (long long)n0v,
                      (long long)n1v);
    const int64_t nk = n0 + n1;
    if (a->bias) {
        const struct infvsr_tensor * b = a->bias;
        if (b->mem != INFVSR_MEM_DEVICE || !b->data || b->dtype != INFVSR_TYPE_F32 ||
            infvsr_tensor_numel(b) != (int64_t)a->n_heads * nq * nk)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: bias must be an f32 device tensor "
                          "[%d, %lld, %lld]", a->n_heads, (long long)nq, (long long)nk);
    }
    /* The kernels read q, every key/value row and the bias while writing out: no input
     * may share its memory (the second segment k1/v1 included, the DiT's new chunk). */
    const struct {
        const char *                 role;
        const struct infvsr_tensor * t;
    } ins[] = { { "q", a->q }, { "k0", a->k0 }, { "v0", a->v0 }, { "k1", a->k1 }, { "v1", a->v1 },
                { "bias", a->bias } };
    for (const auto & in : ins)
        if (in.t && in.t->data == a->out->data)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: out ('%s') must not alias %s ('%s')",
                                  a->out->name, in.role, in.t->name);
    if (nq == 0) return INFVSR_OK;
    if (nk == 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: no keys");
    if (a->n_heads > 65535)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "attention: %d heads exceed the grid limit",
                      a->n_heads);

    attn_p p;
    p.q = a->q->data;   p.qd = a->q->dtype;
    p.k0 = a->k0->data; p.k1 = a->k1 ? a->k1->data : nullptr; p.kd = a->k0->dtype;
    p.v0 = a->v0->data; p.v1 = a->v1 ? a->v1->data : nullptr; p.vd = a->v0->dtype;
    p.bias = a->bias ? (const float *)a->bias->data : nullptr;
    p.out = a->out->data; p.od = a->out->dtype;
    p.nq = nq; p.n0 = n0; p.nk = nk;
    p.h = a->n_heads; p.d = D; p.hd = hd;
    p.scale_log2 = a->scale * ATTN_LOG2E;

    const bool bf16 = p.qd == INFVSR_TYPE_BF16 && p.kd == INFVSR_TYPE_BF16 && p.vd == INFVSR_TYPE_BF16;
    const bool aligned = hd % 8 == 0 && aligned16(p.q) && aligned16(p.k0) && aligned16(p.v0) &&
                         (!p.k1 || (aligned16(p.k1) && aligned16(p.v1)));
    /* AUTO: mma.sync kernel for D = 32/64/128, WMMA for D = 384, SIMT otherwise. A
     * forced kernel (tests, benchmarks) that does not apply falls back to SIMT. */
    const int want = c->attn_kernel;
    bool launched = false;
    if (bf16 && aligned && (want == INFVSR_CUDA_ATTN_AUTO || want == INFVSR_CUDA_ATTN_MMA)) {
        INFVSR_TRY(cu_attention_mma(c, p, &launched, err));
        if (launched) { c->last_attn_kernel = "mma"; return INFVSR_OK; }
    }
    if (bf16 && aligned && (want == INFVSR_CUDA_ATTN_AUTO || want == INFVSR_CUDA_ATTN_WMMA)) {
        switch (D) {
        case 32:  INFVSR_TRY((launch_wmma<32, 4>(c, p, &launched, err))); break;
        case 64:  INFVSR_TRY((launch_wmma<64, 4>(c, p, &launched, err))); break;
        case 128: INFVSR_TRY((launch_wmma<128, 4>(c, p, &launched, err))); break;
        case 384: INFVSR_TRY((launch_wmma<384, 2>(c, p, &launched, err))); break; /* VAE mid-block */
        default: break;
        }
        if (launched) { c->last_attn_kernel = "wmma"; return INFVSR_OK; }
    }
    if (D > 32 * SIMT_MAX_VPL)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "attention: head dim %d > %d is not supported", D,
                      32 * SIMT_MAX_VPL);
    if ((nq + SIMT_WARPS - 1) / SIMT_WARPS > 0x7fffffffLL)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "attention: too many queries");
    dim3 grid((unsigned)((nq + SIMT_WARPS - 1) / SIMT_WARPS), (unsigned)a->n_heads);
    CU_LAUNCH(grid, SIMT_WARPS * 32, 0, c->stream, k_attn_simt)(p);
    CU_CHECK_LAUNCH(c, err);
    c->last_attn_kernel = "simt";
    return INFVSR_OK;
}
