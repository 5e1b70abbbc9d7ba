/* The CUDA kernels of kernels/cuda, compiled as host C++ and run by the kernel emulator
 * (kernels/cuda/emu), against the CPU backend on small shapes: every op goes through the
 * CUDA backend's own entry point (cu_attention, cu_layer_norm, ...: argument checks,
 * kernel choice, launch configuration, kernel), on "device" tensors that are host memory
 * filled with NaN before the op, so an element a kernel forgets to write fails.
 *
 *   test_cuda_emu [--only mma] [--expect-layout-failure] [-v]
 *
 * --only mma               just the cases that issue mma.sync (attention mma, implicit conv)
 * --expect-layout-failure  for the build with EMU_PLANT_LAYOUT_SWAP: exit 0 only when every
 *                          mma case FAILS its comparison (and nothing else goes wrong), i.e.
 *                          the tests notice a wrong fragment layout
 *
 * Activations of the tensor-core paths are bf16 (inputs rounded to bf16 first; the CPU
 * reference computes in f32 on the same rounded values); outputs are compared as relative
 * L2 error against per-case tolerances (bf16 P in attention: 1e-2; f32 paths 1e-5). */
#include "cuda_common.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

extern "C" {
#include "ops.h"
}

namespace {

bool g_verbose = false;
int  g_failed = 0, g_passed = 0, g_emu_errors = 0;

uint64_t g_rng = 0x9e3779b97f4a7c15ull;
float    frand(float lo, float hi) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

/* A tensor on both sides: the emulated device copy (dtype as asked) and the CPU
 * backend's f32 copy holding the same values. */
struct pair_t {
    infvsr_tensor dev{}, host{};
    ~pair_t() {
        free(dev.data);
        infvsr_tensor_release(&host);
    }
};

void setup_dev(infvsr_tensor & t, const char * name, infvsr_dtype dt, int ndim, const int64_t * shape) {
    infvsr_tensor_setup(&t, name, dt, ndim, shape);
    size_t nb = infvsr_tensor_nbytes(&t);
    if (posix_memalign(&t.data, 256, nb ? nb : 1) != 0) abort();
    memset(t.data, 0xff, nb ? nb : 1); /* NaN in f32/bf16 until a kernel writes it */
    t.mem = INFVSR_MEM_DEVICE;
}

/* Input: random values in [lo, hi), rounded to dt, the same values on the host side. */
typedef std::vector<int64_t> shape_t;
void make_in(pair_t & p, const char * name, infvsr_dtype dt, const shape_t & shape, float lo = -1, float hi = 1,
             infvsr_dtype host_dt = INFVSR_TYPE_F32) {
    const int ndim = (int)shape.size();
    setup_dev(p.dev, name, dt, ndim, shape.data());
    if (infvsr_tensor_alloc(&p.host, name, host_dt, ndim, shape.data()) != INFVSR_OK) abort();
    const int64_t n = infvsr_tensor_numel(&p.dev);
    std::vector<float> v((size_t)n);
    for (float & x : v) x = frand(lo, hi);
    infvsr_convert_from_f32(p.dev.data, dt, v.data(), (size_t)n);
    infvsr_convert_to_f32(v.data(), p.dev.data, dt, (size_t)n); /* the values as stored */
    infvsr_convert_from_f32(p.host.data, host_dt, v.data(), (size_t)n);
}
void make_out(pair_t & p, const char * name, infvsr_dtype dt, const shape_t & shape) {
    const int ndim = (int)shape.size();
    setup_dev(p.dev, name, dt, ndim, shape.data());
    if (infvsr_tensor_alloc(&p.host, name, INFVSR_TYPE_F32, ndim, shape.data()) != INFVSR_OK) abort();
}

double rel_l2(const infvsr_tensor & dev, const infvsr_tensor & host, int64_t * bad_at) {
    const size_t       n = (size_t)infvsr_tensor_numel(&dev);
    std::vector<float> a(n);
    infvsr_convert_to_f32(a.data(), dev.data, dev.dtype, n);
    const float * b = (const float *)host.data;
    double        num = 0, den = 0;
    *bad_at = -1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) && *bad_at < 0) *bad_at = (int64_t)i;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (*bad_at >= 0) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

struct emu_dev {
    cuda_ctx       ctx{};
    infvsr_backend be{};
    emu_dev() {
        ctx.prop.sharedMemPerBlockOptin = 227 * 1024; /* sm_90 */
        snprintf(ctx.name, sizeof ctx.name, "cuda-emu");
        ctx.last_attn_kernel = "";
        ctx.act_dtype = INFVSR_TYPE_BF16;
        be.context = &ctx;
        be.mem = INFVSR_MEM_DEVICE;
        emu::set_smem_optin(227 * 1024);
    }
};

/* Records one case: the emulated op's status, the reference's, and the comparison. */
bool finish(const char * name, infvsr_status st, const infvsr_err & err, infvsr_status rst, const infvsr_err & rerr,
            emu_dev & d, const infvsr_tensor & dev_out, const infvsr_tensor & ref_out, double tol,
            const char * want_kernel = nullptr) {
    const char * emu_err = emu::last_launch_error();
    std::string  why;
    double       e = 0;
    if (st != INFVSR_OK || d.ctx.failed) {
        why = std::string("emulated op failed: ") + err.msg + (emu_err[0] ? std::string(" [") + emu_err + "]" : "");
        g_emu_errors++;
    } else if (rst != INFVSR_OK) {
        why = std::string("reference op failed: ") + rerr.msg;
        g_emu_errors++;
    } else if (want_kernel && strcmp(d.ctx.last_attn_kernel, want_kernel) != 0) {
        why = std::string("ran kernel '") + d.ctx.last_attn_kernel + "', expected '" + want_kernel + "'";
        g_emu_errors++;
    } else {
        int64_t bad = -1;
        e = rel_l2(dev_out, ref_out, &bad);
        if (bad >= 0) why = "non-finite output at element " + std::to_string(bad) + " (unwritten?)";
        else if (!(e <= tol)) why = "relative L2 error " + std::to_string(e) + " > " + std::to_string(tol);
    }
    if (!why.empty()) {
        g_failed++;
        printf("FAIL %-60s %s\n", name, why.c_str());
        d.ctx.failed = false; /* next case starts healthy */
        d.ctx.first_error[0] = 0;
        return false;
    }
    g_passed++;
    if (g_verbose) printf("ok   %-60s rel_l2 %.3g (tol %.1g)\n", name, e, tol);
    return true;
}

/* ---------------------------------------------------------------- attention */

struct attn_case {
    int     kernel; /* INFVSR_CUDA_ATTN_* */
    int     h, d;
    int64_t nq, n0, n1;
    bool    bias;
    size_t  optin;  /* emulated device's opt-in shared memory */
    const char * want;
};

void run_attention(infvsr_backend * cpu, const attn_case & k) {
    emu_dev dv;
    dv.ctx.prop.sharedMemPerBlockOptin = k.optin;
    emu::set_smem_optin(k.optin);
    dv.ctx.attn_kernel = k.kernel;
    const int64_t hd = (int64_t)k.h * k.d, nk = k.n0 + k.n1;
    const infvsr_dtype act = k.kernel == INFVSR_CUDA_ATTN_SIMT && k.d % 8 ? INFVSR_TYPE_F32 : INFVSR_TYPE_BF16;
    pair_t q, k0, v0, k1, v1, bias, out;
    make_in(q, "q", act, { k.nq, hd });
    make_in(k0, "k0", act, { k.n0, hd });
    make_in(v0, "v0", act, { k.n0, hd });
    if (k.n1) {
        make_in(k1, "k1", act, { k.n1, hd });
        make_in(v1, "v1", act, { k.n1, hd });
    }
    if (k.bias) make_in(bias, "bias", INFVSR_TYPE_F32, { k.h, k.nq, nk }, -2, 2);
    make_out(out, "out", INFVSR_TYPE_F32, { k.nq, hd });
    const float scale = 1.0f / sqrtf((float)k.d) * 2.0f; /* sharper than softmax(1/sqrt(d)): more contrast */
    infvsr_attn_args a{ &q.dev, &k0.dev, &v0.dev, k.n1 ? &k1.dev : nullptr, k.n1 ? &v1.dev : nullptr,
                        k.bias ? &bias.dev : nullptr, k.h, scale, &out.dev };
    infvsr_attn_args r{ &q.host, &k0.host, &v0.host, k.n1 ? &k1.host : nullptr, k.n1 ? &v1.host : nullptr,
                        k.bias ? &bias.host : nullptr, k.h, scale, &out.host };
    infvsr_err err{}, rerr{};
    infvsr_status st = cu_attention(&dv.be, &a, &err);
    infvsr_status rst = infvsr_op_attention(cpu, &r, &rerr);
    static const char * kn[] = { "auto", "mma", "wmma", "simt" };
    char name[160];
    snprintf(name, sizeof name, "attention %s H=%d D=%d nq=%lld keys=%lld+%lld%s smem=%zuK", kn[k.kernel], k.h, k.d,
             (long long)k.nq, (long long)k.n0, (long long)k.n1, k.bias ? " bias" : "", k.optin / 1024);
    const double tol = act == INFVSR_TYPE_F32 ? 1e-5 : (strcmp(k.want, "simt") == 0 ? 1e-5 : 5e-3);
    finish(name, st, err, rst, rerr, dv, out.dev, out.host, tol, k.want);
}

/* ---------------------------------------------------------------- implicit conv */

void run_conv(infvsr_backend * cpu, int cin, int t, int h, int w, int cout, int kt, int kh, int kw, int st_t,
              int st_h, int st_w, int pad, bool bias, infvsr_dtype yd) {
    emu_dev dv;
    const int to = (t - kt) / st_t + 1, ho = (h + 2 * pad - kh) / st_h + 1, wo = (w + 2 * pad - kw) / st_w + 1;
    pair_t x, wt, b, y;
    make_in(x, "x", INFVSR_TYPE_BF16, { cin, t, h, w });
    make_in(wt, "w", INFVSR_TYPE_BF16, { cout, cin, kt, kh, kw }, -0.3f, 0.3f);
    if (bias) make_in(b, "b", INFVSR_TYPE_F32, { cout });
    make_out(y, "y", yd, { cout, to, ho, wo });
    const int     stride[3] = { st_t, st_h, st_w };
    infvsr_err    err{}, rerr{};
    infvsr_status st = cu_conv3d_implicit(&dv.ctx, x.dev.data, wt.dev.data, bias ? b.dev.data : nullptr,
                                          INFVSR_TYPE_F32, y.dev.data, yd, x.dev.shape, wt.dev.shape, y.dev.shape,
                                          stride, pad, pad, &err);
    if (st == INFVSR_OK && cudaGetLastError() != cudaSuccess)
        st = infvsr_err_set(&err, INFVSR_ERR_DEVICE, "launch failed");
    infvsr_conv3d_args r{ &x.host, &wt.host, bias ? &b.host : nullptr, st_t, st_h, st_w, pad, pad, pad, pad, &y.host };
    infvsr_status rst = infvsr_op_conv3d(cpu, &r, &rerr);
    char name[160];
    snprintf(name, sizeof name, "conv3d implicit x[%d,%d,%d,%d] w[%d,%d,%d,%d,%d] s%d,%d,%d p%d%s -> %s", cin, t, h,
             w, cout, cin, kt, kh, kw, st_t, st_h, st_w, pad, bias ? " bias" : "", infvsr_dtype_name(yd));
    finish(name, st, err, rst, rerr, dv, y.dev, y.host, yd == INFVSR_TYPE_F32 ? 1e-5 : 5e-3);
}

/* The implicit kernel's epilogue adds the bias in fp32 and rounds a bf16 output once.
 * 257 ones times weights of one is 257 (exact in fp32, not in bf16: it rounds to 256);
 * with a bias of +0.75 the one rounding gives bf16(257.75) = 258 where rounding the
 * convolution first gives bf16(256 + 0.75) = 256; with -0.75, 256 against 255. Every
 * input and every channel's bias are equal, so a fragment-layout mistake cannot change
 * the result (this case checks the epilogue, the mma cases check the layouts). */
void run_conv_bias_rounding(float bias, float expect) {
    emu_dev dv;
    const int64_t xs[4] = { 257, 1, 3, 5 }, ws[5] = { 2, 257, 1, 1, 1 }, bs[1] = { 2 }, ys[4] = { 2, 1, 3, 5 };
    infvsr_tensor x{}, w{}, b{}, y{};
    setup_dev(x, "x", INFVSR_TYPE_BF16, 4, xs);
    setup_dev(w, "w", INFVSR_TYPE_BF16, 5, ws);
    setup_dev(b, "b", INFVSR_TYPE_F32, 1, bs);
    setup_dev(y, "y", INFVSR_TYPE_BF16, 4, ys);
    std::vector<float> ones((size_t)infvsr_tensor_numel(&x), 1.0f), bv(2, bias), out(30);
    infvsr_convert_from_f32(x.data, INFVSR_TYPE_BF16, ones.data(), ones.size());
    infvsr_convert_from_f32(w.data, INFVSR_TYPE_BF16, ones.data(), (size_t)infvsr_tensor_numel(&w));
    memcpy(b.data, bv.data(), 2 * sizeof(float));
    const int     stride[3] = { 1, 1, 1 };
    infvsr_err    err{};
    infvsr_status st = cu_conv3d_implicit(&dv.ctx, x.data, w.data, b.data, INFVSR_TYPE_F32, y.data, INFVSR_TYPE_BF16,
                                          xs, ws, ys, stride, 0, 0, &err);
    char name[96];
    snprintf(name, sizeof name, "conv3d implicit bias %+.2f: bf16 output rounded once", bias);
    int bad = -1;
    if (st == INFVSR_OK) {
        infvsr_convert_to_f32(out.data(), y.data, INFVSR_TYPE_BF16, out.size());
        for (int i = 0; i < 30 && bad < 0; i++)
            if (out[(size_t)i] != expect) bad = i;
    }
    if (st != INFVSR_OK || bad >= 0) {
        g_failed++;
        if (st != INFVSR_OK) g_emu_errors++;
        printf("FAIL %-60s %s %g, expected %g\n", name, st != INFVSR_OK ? err.msg : "got",
               bad >= 0 ? (double)out[(size_t)bad] : 0.0, (double)expect);
    } else {
        g_passed++;
        if (g_verbose) printf("ok   %-60s %g\n", name, (double)expect);
    }
    for (infvsr_tensor * t : { &x, &w, &b, &y }) free(t->data);
}

/* ---------------------------------------------------------------- the other families */

/* Runs dev(be, err) on the emulated device and ref(cpu, err) on the CPU backend. */
template <class Dev, class Ref>
void check(const char * name, infvsr_backend * cpu, pair_t & out, double tol, Dev dev, Ref ref) {
    emu_dev       dv;
    infvsr_err    err{}, rerr{};
    infvsr_status st = dev(&dv.be, &err);
    infvsr_status rst = ref(cpu, &rerr);
    finish(name, st, err, rst, rerr, dv, out.dev, out.host, tol);
}
#define BOTH(call_dev, call_ref) \
    [&](infvsr_backend * be, infvsr_err * e) { return call_dev; }, [&](infvsr_backend * be, infvsr_err * e) { return call_ref; }

void run_norm_cases(infvsr_backend * cpu) {
    for (infvsr_dtype xd : { INFVSR_TYPE_F32, INFVSR_TYPE_BF16 }) {
        const int64_t rows = 19, cols = 100; /* rows ragged against 8 warps per block */
        pair_t x, w, b, y;
        make_in(x, "x", xd, { rows, cols }, -2, 3);
        make_in(w, "w", INFVSR_TYPE_BF16, { cols });
        make_in(b, "b", INFVSR_TYPE_F32, { cols });
        make_out(y, "y", INFVSR_TYPE_F32, { rows, cols });
        std::string n = std::string("layer_norm x ") + infvsr_dtype_name(xd) + " [19,100] w bf16 b";
        check(n.c_str(), cpu, y, 1e-5,
              BOTH(cu_layer_norm(be, &x.dev, &w.dev, &b.dev, 1e-6f, &y.dev, e),
                   infvsr_op_layer_norm(be, &x.host, &w.host, &b.host, 1e-6f, &y.host, e)));
        n = std::string("rms_norm x ") + infvsr_dtype_name(xd) + " [19,100] w";
        check(n.c_str(), cpu, y, 1e-5,
              BOTH(cu_rms_norm(be, &x.dev, &w.dev, 1e-6f, &y.dev, e),
                   infvsr_op_rms_norm(be, &x.host, &w.host, 1e-6f, &y.host, e)));
    }
    {
        pair_t x, g, y;
        make_in(x, "x", INFVSR_TYPE_F32, { 6, 3, 110 });
        make_in(g, "gamma", INFVSR_TYPE_F32, { 6 });
        make_out(y, "y", INFVSR_TYPE_BF16, { 6, 3, 110 });
        check("channel_rms_norm [6,3,110] -> bf16", cpu, y, 5e-3,
              BOTH(cu_channel_rms_norm(be, &x.dev, &g.dev, &y.dev, e),
                   infvsr_op_channel_rms_norm(be, &x.host, &g.host, &y.host, e)));
    }
    {
        pair_t x, sc, sh, y;
        make_in(x, "x", INFVSR_TYPE_F32, { 19, 40 });
        make_in(sc, "scale", INFVSR_TYPE_F32, { 40 });
        make_in(sh, "shift", INFVSR_TYPE_F16, { 40 });
        make_out(y, "y", INFVSR_TYPE_F32, { 19, 40 });
        check("modulate [19,40] shift f16", cpu, y, 1e-6,
              BOTH(cu_modulate(be, &x.dev, &sc.dev, &sh.dev, &y.dev, e),
                   infvsr_op_modulate(be, &x.host, &sc.host, &sh.host, &y.host, e)));
    }
}

void run_rope_case(infvsr_backend * cpu) {
    pair_t x, f, y;
    make_in(x, "x", INFVSR_TYPE_F32, { 5, 3 * 8 });
    make_in(f, "freqs", INFVSR_TYPE_F64, { 5, 4, 2 }, -1, 1, INFVSR_TYPE_F64);
    make_out(y, "y", INFVSR_TYPE_F32, { 5, 3 * 8 });
    check("rope x [5, 3x8] freqs f64", cpu, y, 1e-7,
          BOTH(cu_rope(be, &x.dev, &f.dev, 3, &y.dev, e), infvsr_op_rope(be, &x.host, &f.host, 3, &y.host, e)));
}

void run_resize_cases(infvsr_backend * cpu) {
    static const char * names[] = { "nearest", "bilinear_aa", "bicubic_aa" };
    for (int m = 0; m < INFVSR_RESIZE_COUNT; m++) {
        pair_t x, y;
        make_in(x, "x", INFVSR_TYPE_F32, { 2, 9, 11 });
        make_out(y, "y", INFVSR_TYPE_F32, { 2, 5, 17 }); /* one axis down, one up */
        std::string n = std::string("resize ") + names[m] + " [2,9,11] -> [2,5,17]";
        /* same tap tables, same summation order, no FMA: bit-identical (tolerance 0) */
        check(n.c_str(), cpu, y, 0.0,
              BOTH(cu_resize(be, (infvsr_resize_mode)m, &x.dev, &y.dev, e),
                   infvsr_op_resize(be, (infvsr_resize_mode)m, &x.host, &y.host, e)));
    }
}

void run_elementwise_cases(infvsr_backend * cpu) {
    static const char * un[] = { "gelu_tanh", "gelu_erf", "silu" };
    for (int op = 0; op < INFVSR_UNARY_COUNT; op++) {
        pair_t x, y;
        make_in(x, "x", INFVSR_TYPE_F32, { 1000 }, -4, 4); /* 4 blocks of 256 */
        make_out(y, "y", INFVSR_TYPE_F32, { 1000 });
        std::string n = std::string("unary ") + un[op] + " [1000]";
        check(n.c_str(), cpu, y, 1e-6,
              BOTH(cu_unary(be, (infvsr_unary_op)op, &x.dev, &y.dev, e),
                   infvsr_op_unary(be, (infvsr_unary_op)op, &x.host, &y.host, e)));
    }
    pair_t a, b, g, y, yb;
    make_in(a, "a", INFVSR_TYPE_F32, { 19, 40 });
    make_in(b, "b", INFVSR_TYPE_BF16, { 19, 40 });
    make_in(g, "gate", INFVSR_TYPE_F32, { 40 });
    make_out(y, "y", INFVSR_TYPE_F32, { 19, 40 });
    make_out(yb, "yb", INFVSR_TYPE_BF16, { 19, 40 });
    check("add f32 + bf16 [19,40]", cpu, y, 0.0,
          BOTH(cu_add(be, &a.dev, &b.dev, &y.dev, e), infvsr_op_add(be, &a.host, &b.host, &y.host, e)));
    check("add_gated [19,40] gate -> bf16", cpu, yb, 5e-3,
          BOTH(cu_add_gated(be, &a.dev, &g.dev, &b.dev, &yb.dev, e),
               infvsr_op_add_gated(be, &a.host, &g.host, &b.host, &yb.host, e)));
    check("affine_clamp [19,40]", cpu, y, 0.0,
          BOTH(cu_affine_clamp(be, &a.dev, 1.5f, -0.2f, -0.5f, 0.7f, &y.dev, e),
               infvsr_op_affine_clamp(be, &a.host, 1.5f, -0.2f, -0.5f, 0.7f, &y.host, e)));
    pair_t s, sy;
    make_in(s, "s", INFVSR_TYPE_F32, { 11, 70 }, -5, 5);
    make_out(sy, "sy", INFVSR_TYPE_F32, { 11, 70 });
    check("softmax [11,70]", cpu, sy, 1e-6,
          BOTH(cu_softmax(be, &s.dev, &sy.dev, e), infvsr_op_softmax(be, &s.host, &sy.host, e)));
}

void run_copy_cases(infvsr_backend * cpu) {
    /* a transposing SET with conversion f32 -> f32 through strides ([6, 4] view of a [4, 6]
     * tensor), then ACCUMULATE y += (alpha x) * m with a broadcast m (stride 0) */
    pair_t x, m, y;
    make_in(x, "x", INFVSR_TYPE_F32, { 4, 6 });
    make_in(m, "m", INFVSR_TYPE_F32, { 6 });
    make_out(y, "y", INFVSR_TYPE_F32, { 6, 4 });
    auto args = [&](bool dev, infvsr_copy_mode mode) {
        infvsr_copy_args a = infvsr_copy_args_init(mode, 2);
        a.extent[0] = 6, a.extent[1] = 4;
        a.x = dev ? &x.dev : &x.host, a.x_stride[0] = 1, a.x_stride[1] = 6;
        a.y = dev ? &y.dev : &y.host, a.y_stride[0] = 4, a.y_stride[1] = 1;
        if (mode == INFVSR_COPY_ACCUMULATE) {
            a.m = dev ? &m.dev : &m.host, a.m_stride[0] = 1, a.m_stride[1] = 0;
            a.alpha = 0.75f;
        }
        return a;
    };
    infvsr_copy_args d0 = args(true, INFVSR_COPY_SET), r0 = args(false, INFVSR_COPY_SET);
    check("copy SET transposed view [4,6] -> [6,4]", cpu, y, 0.0,
          BOTH(cu_copy(be, &d0, e), infvsr_op_copy(be, &r0, e)));
    infvsr_copy_args d1 = args(true, INFVSR_COPY_ACCUMULATE), r1 = args(false, INFVSR_COPY_ACCUMULATE);
    check("copy ACCUMULATE y += (0.75 x) * m (broadcast m)", cpu, y, 0.0,
          BOTH(cu_copy(be, &d1, e), infvsr_op_copy(be, &r1, e)));
}

}  // namespace

void run_mma_cases(infvsr_backend * cpu) {
    /* mma.sync flash kernel: D = 32/64/128, two key segments with a ragged tail (keys
     * not a multiple of the 64-key tile, queries not a multiple of the 64-row block). */
    for (int d : { 32, 64, 128 }) {
        run_attention(cpu, { INFVSR_CUDA_ATTN_MMA, 2, d, 70, 37, 50, false, 227 * 1024, "mma" });
        run_attention(cpu, { INFVSR_CUDA_ATTN_MMA, 2, d, 19, 64, 9, true, 227 * 1024, "mma" });
    }
    run_attention(cpu, { INFVSR_CUDA_ATTN_MMA, 1, 64, 5, 3, 0, true, 227 * 1024, "mma" }); /* one segment */
    /* implicit-GEMM conv: Cout and positions ragged against the 64 x 128 tile, K ragged
     * against 32; stride 2 and 1x1 kernels. */
    run_conv(cpu, 5, 4, 8, 9, 70, 3, 3, 3, 1, 1, 1, 1, true, INFVSR_TYPE_F32);
    run_conv(cpu, 3, 3, 9, 11, 20, 1, 3, 3, 1, 2, 2, 1, false, INFVSR_TYPE_BF16);
    run_conv(cpu, 40, 1, 6, 7, 16, 1, 1, 1, 1, 1, 1, 0, true, INFVSR_TYPE_F32);
    run_conv(cpu, 5, 4, 8, 9, 70, 3, 3, 3, 1, 1, 1, 1, true, INFVSR_TYPE_BF16); /* bias into a bf16 output */
}

void run_other_cases(infvsr_backend * cpu) {
    /* WMMA kernel: D = 32/64/128 (4 warps) and the VAE's 384 (2 warps, 184 KB shared). */
    for (int d : { 32, 64, 128 })
        run_attention(cpu, { INFVSR_CUDA_ATTN_WMMA, 2, d, 40, 30, 45, d == 64, 227 * 1024, "wmma" });
    run_attention(cpu, { INFVSR_CUDA_ATTN_WMMA, 1, 384, 40, 50, 20, true, 227 * 1024, "wmma" });
    /* sm_80 has 163 KB: D = 384 does not fit and falls back to SIMT. */
    run_attention(cpu, { INFVSR_CUDA_ATTN_AUTO, 1, 384, 9, 20, 5, false, 163 * 1024, "simt" });
    /* SIMT: bf16 and f32 (odd head dim 40 -> f32), two segments, bias. */
    run_attention(cpu, { INFVSR_CUDA_ATTN_SIMT, 2, 64, 11, 30, 7, true, 227 * 1024, "simt" });
    run_attention(cpu, { INFVSR_CUDA_ATTN_SIMT, 3, 40, 9, 13, 6, true, 227 * 1024, "simt" });
    /* AUTO picks mma for 128. */
    run_attention(cpu, { INFVSR_CUDA_ATTN_AUTO, 1, 128, 17, 20, 0, false, 227 * 1024, "mma" });
    /* implicit conv with a bf16 output: the bias rounds with the sum, once */
    run_conv_bias_rounding(0.75f, 258.0f);
    run_conv_bias_rounding(-0.75f, 256.0f);
    run_norm_cases(cpu);
    run_rope_case(cpu);
    run_resize_cases(cpu);
    run_elementwise_cases(cpu);
    run_copy_cases(cpu);
}

int main(int argc, char ** argv) {
    bool only_mma = false, expect_fail = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--only") && i + 1 < argc && !strcmp(argv[i + 1], "mma")) only_mma = true, i++;
        else if (!strcmp(argv[i], "--expect-layout-failure")) expect_fail = true;
        else if (!strcmp(argv[i], "-v")) g_verbose = true;
        else {
            fprintf(stderr, "usage: test_cuda_emu [--only mma] [--expect-layout-failure] [-v]\n");
            return 2;
        }
    }
    infvsr_cpu_params cp = infvsr_cpu_default_params();
    cp.n_threads = 1;
    infvsr_backend * cpu = nullptr;
    if (infvsr_cpu_backend_init(&cp, &cpu) != INFVSR_OK) {
        fprintf(stderr, "cannot create the CPU backend\n");
        return 1;
    }
    run_mma_cases(cpu);
    const int mma_failed = g_failed, mma_total = g_failed + g_passed;
    if (!only_mma) run_other_cases(cpu);
    infvsr_backend_free(cpu);
    printf("%d passed, %d failed (%d emulator/op errors)\n", g_passed, g_failed, g_emu_errors);
    if (expect_fail) {
        /* every mma case must fail on its numbers, and nothing may fail otherwise */
        const bool ok = mma_failed == mma_total && g_emu_errors == 0 && g_failed == mma_failed;
        printf("planted fragment-layout swap: %d of %d mma cases failed their comparison -> %s\n", mma_failed,
               mma_total, ok ? "detected" : "NOT detected as expected");
        return ok ? 0 : 1;
    }
    return g_failed ? 1 : 0;
}
