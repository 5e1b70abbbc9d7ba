/* conv3d on cuDNN (graph / "backend" API of cuDNN 9), the default conv3d path of a CUDA
 * build that found cuDNN (INFVSR_HAVE_CUDNN; docs/CUDA.md "Convolutions").
 *
 * Why cuDNN: the VAE convolutions are two thirds of a chunk's FLOPs; NVIDIA tunes cuDNN's
 * bf16 tensor-core convolutions per architecture, which our im2col + cuBLASLt path (27x
 * column traffic for 3x3x3) and the unpipelined implicit-GEMM kernel do not match.
 *
 * Why the graph API and not cudnnConvolutionForward: the legacy API is deprecated in
 * cuDNN 9, takes only symmetric padding (the VAE's downsampling pads bottom/right only),
 * and its bf16 configuration writes bf16 from the convolution, so a bias added after it
 * rounds the output twice. The graph expresses conv (fp32 accumulate) -> virtual fp32
 * tensor -> pointwise add of the bias -> y in y's dtype: one rounding, bias fused, and
 * pre/post paddings given separately.
 *
 * Semantics are the op table's (kernels/ops.h): x [Cin, T, H, W] is the batch-1 NCDHW
 * tensor [1, Cin, T, H, W]; no temporal padding (the causal cache frames are already
 * prepended to x by the caller, so cuDNN sees exactly the frames im2col sees), spatial
 * zero padding (pt, pl) before and (pb, pr) after.
 *
 * Layout: cuDNN tensors carry their layout in their strides. The graph is first built
 * on our NCDHW tensors as they are (no copies). If no engine takes that (tensor-core and
 * runtime-fusion engines prefer channels-last), it is built channels-last (NDHWC) and the
 * call stages x and w into channels-last copies and y back through pooled temporaries
 * (three extra passes over the activations; plain grid-stride transposes). Which of the
 * two is faster, and whether NCDHW is taken at all, has not been measured: no GPU yet.
 *
 * Plans: chosen once per full shape/dtype/stride tuple (heuristics mode A, then the
 * fallback list; the first engine config whose numerical notes keep the op's numerics
 * (infvsr_conv3d_cudnn_engine_ok: no TF32 for f32 data, fp32 accumulation, deterministic)
 * and that finalises with a workspace within CU_CUDNN_WS_MAX) and kept in the backend's LRU plan cache (conv3d_plan.h), which also
 * remembers shapes cuDNN refused so that they go to im2col without asking again.
 * Workspace and staging buffers come from the backend's pool (no cudaMalloc in steady
 * state). One cudnnHandle_t per backend, bound to its stream. */
#include "cuda_common.cuh"

#include <string.h>

#ifdef INFVSR_HAVE_CUDNN

#include <cudnn.h>
#include <dlfcn.h>

#include <new>
#include <vector>

#define CU_CUDNN_WS_MAX   ((int64_t)256 << 20)
#define CU_CUDNN_CACHE    256 /* tiled VAE runs see a few shapes per distinct tile edge */

enum { UID_X = 1, UID_W = 2, UID_B = 3, UID_Y = 4, UID_ACC = 5 };

struct cu_cudnn {
    cudnnHandle_t                   h = nullptr;
    struct infvsr_conv3d_plan_cache cache;
    bool                            logged_refusal = false;
};

namespace {

/* cuDNN is loaded with dlopen, not linked: a CUDA build then starts (and runs conv3d on
 * im2col) on a machine without cuDNN or with a broken install, instead of failing in the
 * dynamic loader, and processes that never create a CUDA backend do not map it. */
struct dn_api_t {
    decltype(&cudnnGetVersion)                GetVersion;
    decltype(&cudnnCreate)                    Create;
    decltype(&cudnnDestroy)                   Destroy;
    decltype(&cudnnSetStream)                 SetStream;
    decltype(&cudnnGetErrorString)            GetErrorString;
    decltype(&cudnnBackendCreateDescriptor)   BackendCreateDescriptor;
    decltype(&cudnnBackendDestroyDescriptor)  BackendDestroyDescriptor;
    decltype(&cudnnBackendSetAttribute)       BackendSetAttribute;
    decltype(&cudnnBackendGetAttribute)       BackendGetAttribute;
    decltype(&cudnnBackendFinalize)           BackendFinalize;
    decltype(&cudnnBackendExecute)            BackendExecute;
};
dn_api_t dn;

/* Loads libcudnn.so.9 once per process (never unloaded); false with *why set when it is
 * missing, lacks a symbol or is older than 9.0 (the graph attributes used here). */
bool dn_load(const char ** why) {
    /* a function-local static: initialised once, thread-safe (no std::call_once, whose
     * thread-local state would add ld-linux.so to the binaries' DT_NEEDED) */
    static char       msg[320];
    static const bool loaded = [] {
        void * lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            snprintf(msg, sizeof msg, "dlopen: %s", dlerror());
            return false;
        }
#define DN_SYM(f)                                                                \
        if (!(dn.f = (decltype(dn.f))dlsym(lib, "cudnn" #f))) {                 \
            snprintf(msg, sizeof msg, "libcudnn.so.9 has no cudnn%s", #f);       \
            return false;                                                        \
        }
        DN_SYM(GetVersion) DN_SYM(Create) DN_SYM(Destroy) DN_SYM(SetStream) DN_SYM(GetErrorString)
        DN_SYM(BackendCreateDescriptor) DN_SYM(BackendDestroyDescriptor) DN_SYM(BackendSetAttribute)
        DN_SYM(BackendGetAttribute) DN_SYM(BackendFinalize) DN_SYM(BackendExecute)
#undef DN_SYM
        const size_t v = dn.GetVersion(); /* major * 10000 + minor * 100 + patch since 9.0 */
        if (v < 90000) {
            snprintf(msg, sizeof msg, "libcudnn.so.9 reports version %zu, 9.0 or newer is needed", v);
            return false;
        }
        return true;
    }();
    *why = msg;
    return loaded;
}

/* Owns one backend descriptor (temporaries: engine queries, rejected plans). */
struct bdesc {
    cudnnBackendDescriptor_t d = nullptr;
    bdesc() = default;
    bdesc(const bdesc &) = delete;
    bdesc & operator=(const bdesc &) = delete;
    ~bdesc() {
        if (d) dn.BackendDestroyDescriptor(d);
    }
    cudnnBackendDescriptor_t release() {
        cudnnBackendDescriptor_t r = d;
        d = nullptr;
        return r;
    }
};

/* Owns every descriptor a plan was built from (tensors, conv, ops, graph, heuristics,
 * engine config, plan), destroyed in reverse order with the plan: a finalised descriptor
 * refers to the ones it was given, so none is destroyed while the plan may run. */
struct dn_owned {
    std::vector<cudnnBackendDescriptor_t> d;
    dn_owned() = default;
    dn_owned(const dn_owned &) = delete;
    dn_owned & operator=(const dn_owned &) = delete;
    ~dn_owned() {
        for (size_t i = d.size(); i-- > 0;) dn.BackendDestroyDescriptor(d[i]);
    }
    cudnnStatus_t make(cudnnBackendDescriptorType_t type, cudnnBackendDescriptor_t * out) {
        *out = nullptr;
        if (d.size() == d.capacity()) {
            try {
                d.reserve(d.size() * 2 + 8);
            } catch (...) {
                return CUDNN_STATUS_ALLOC_FAILED;
            }
        }
        cudnnStatus_t s = dn.BackendCreateDescriptor(type, out);
        if (s == CUDNN_STATUS_SUCCESS) d.push_back(*out);
        return s;
    }
    cudnnStatus_t adopt(bdesc & b) {
        if (d.size() == d.capacity()) {
            try {
                d.reserve(d.size() * 2 + 8);
            } catch (...) {
                return CUDNN_STATUS_ALLOC_FAILED;
            }
        }
        d.push_back(b.release());
        return CUDNN_STATUS_SUCCESS;
    }
};

struct cudnn_plan {
    dn_owned                 owned;
    cudnnBackendDescriptor_t plan = nullptr; /* in owned */
    int64_t                  workspace = 0;
    bool                     channels_last = false;
    bool                     with_bias = false;
};

#define DN_TRY(call)                                \
    do {                                            \
        cudnnStatus_t s_ = (call);                  \
        if (s_ != CUDNN_STATUS_SUCCESS) return s_;  \
    } while (0)

cudnnDataType_t dn_type(int dtype) {
    return dtype == INFVSR_TYPE_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

/* Strides of the logical [n, c, d, h, w] dims for NCDHW or NDHWC storage. */
void dn_strides(const int64_t dims[5], bool channels_last, int64_t s[5]) {
    const int64_t c = dims[1], d = dims[2], h = dims[3], w = dims[4];
    if (!channels_last) {
        s[4] = 1; s[3] = w; s[2] = h * w; s[1] = d * h * w; s[0] = c * d * h * w;
    } else {
        s[1] = 1; s[4] = c; s[3] = w * c; s[2] = h * w * c; s[0] = d * h * w * c;
    }
}

cudnnStatus_t dn_tensor(dn_owned & o, cudnnBackendDescriptor_t * t, int64_t uid, int dtype, const int64_t dims[5],
                        bool channels_last, bool virt) {
    int64_t strides[5];
    dn_strides(dims, channels_last, strides);
    cudnnDataType_t dt    = dtype < 0 ? CUDNN_DATA_FLOAT : dn_type(dtype);
    int64_t         align = INFVSR_CONV3D_CUDNN_ALIGN;
    bool            v     = virt;
    DN_TRY(o.make(CUDNN_BACKEND_TENSOR_DESCRIPTOR, t));
    DN_TRY(dn.BackendSetAttribute(*t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
    DN_TRY(dn.BackendSetAttribute(*t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 5, dims));
    DN_TRY(dn.BackendSetAttribute(*t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 5, strides));
    DN_TRY(dn.BackendSetAttribute(*t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    DN_TRY(dn.BackendSetAttribute(*t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align));
    DN_TRY(dn.BackendSetAttribute(*t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v));
    return dn.BackendFinalize(*t);
}

/* The operations: conv -> y, or conv -> fp32 virtual -> (add bias | identity) -> y when
 * there is a bias or y's dtype differs from x's (one rounding into y either way).
 * Host-only (no handle): cuDNN's shape inference runs at each finalize, so
 * cu_cudnn_check_ops can run this without a GPU. */
cudnnStatus_t dn_ops(dn_owned & o, const struct infvsr_conv3d_geom * g, bool channels_last,
                     cudnnBackendDescriptor_t ops[2], int64_t * nops) {
    const int64_t xd[5] = { 1, g->cin, g->t, g->h, g->w };
    const int64_t wd[5] = { g->cout, g->cin, g->kt, g->kh, g->kw };
    const int64_t yd[5] = { 1, g->cout, g->to, g->ho, g->wo };
    const int64_t bd[5] = { 1, g->cout, 1, 1, 1 };
    const bool    pw    = g->has_bias || g->y_dtype != g->x_dtype;
    cudnnBackendDescriptor_t tx, tw, ty, tacc = nullptr, tb = nullptr, conv, op_conv;
    DN_TRY(dn_tensor(o, &tx, UID_X, g->x_dtype, xd, channels_last, false));
    DN_TRY(dn_tensor(o, &tw, UID_W, g->x_dtype, wd, channels_last, false)); /* w converted to x's dtype */
    DN_TRY(dn_tensor(o, &ty, UID_Y, g->y_dtype, yd, channels_last, false));
    if (pw) DN_TRY(dn_tensor(o, &tacc, UID_ACC, -1, yd, channels_last, true));
    if (g->has_bias) DN_TRY(dn_tensor(o, &tb, UID_B, -1, bd, channels_last, false)); /* bias converted to f32 */

    const int64_t          nsp = 3, dil[3] = { 1, 1, 1 };
    const int64_t          stride[3] = { g->st, g->sh, g->sw };
    const int64_t          pre[3] = { 0, g->pt, g->pl }, post[3] = { 0, g->pb, g->pr };
    cudnnDataType_t        comp = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION; /* PyTorch's conv: no kernel flip */
    DN_TRY(o.make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &conv));
    DN_TRY(dn.BackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp));
    DN_TRY(dn.BackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
    DN_TRY(dn.BackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nsp));
    DN_TRY(dn.BackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dil));
    DN_TRY(dn.BackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, stride));
    DN_TRY(dn.BackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, pre));
    DN_TRY(dn.BackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, post));
    DN_TRY(dn.BackendFinalize(conv));

    float alpha = 1.0f, beta = 0.0f;
    DN_TRY(o.make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, &op_conv));
    DN_TRY(dn.BackendSetAttribute(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                  &tx));
    DN_TRY(dn.BackendSetAttribute(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                  &tw));
    DN_TRY(dn.BackendSetAttribute(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                  pw ? &tacc : &ty));
    DN_TRY(dn.BackendSetAttribute(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                                  CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv));
    DN_TRY(dn.BackendSetAttribute(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1,
                                  &alpha));
    DN_TRY(dn.BackendSetAttribute(op_conv, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
    DN_TRY(dn.BackendFinalize(op_conv));
    ops[0] = op_conv;
    *nops  = 1;
    if (!pw) return CUDNN_STATUS_SUCCESS;

    cudnnBackendDescriptor_t pwd, op_pw;
    cudnnPointwiseMode_t     pm = g->has_bias ? CUDNN_POINTWISE_ADD : CUDNN_POINTWISE_IDENTITY;
    DN_TRY(o.make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pwd));
    DN_TRY(dn.BackendSetAttribute(pwd, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &pm));
    DN_TRY(dn.BackendSetAttribute(pwd, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &comp));
    DN_TRY(dn.BackendFinalize(pwd));
    DN_TRY(o.make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, &op_pw));
    DN_TRY(dn.BackendSetAttribute(op_pw, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                  &pwd));
    DN_TRY(dn.BackendSetAttribute(op_pw, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tacc));
    if (g->has_bias)
        DN_TRY(dn.BackendSetAttribute(op_pw, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                      &tb));
    DN_TRY(dn.BackendSetAttribute(op_pw, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ty));
    DN_TRY(dn.BackendFinalize(op_pw));
    ops[1] = op_pw;
    *nops  = 2;
    return CUDNN_STATUS_SUCCESS;
}

/* The operation graph of dn_ops on the handle. */
cudnnStatus_t dn_graph(dn_owned & o, cudnnHandle_t h, const struct infvsr_conv3d_geom * g, bool channels_last,
                       cudnnBackendDescriptor_t * graph) {
    cudnnBackendDescriptor_t ops[2] = { nullptr, nullptr };
    int64_t                  nops = 0;
    DN_TRY(dn_ops(o, g, channels_last, ops, &nops));
    DN_TRY(o.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, graph));
    DN_TRY(dn.BackendSetAttribute(*graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops));
    DN_TRY(dn.BackendSetAttribute(*graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h));
    return dn.BackendFinalize(*graph);
}

/* Reads an engine config's numerical notes (TF32, down-conversion, reduced-precision
 * reduction, non-determinism); false when they cannot be read. */
bool dn_notes(cudnnBackendDescriptor_t cfg, struct infvsr_conv3d_engine_notes * out) {
    bdesc eng;
    int64_t cnt = 0;
    if (dn.BackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng.d) != CUDNN_STATUS_SUCCESS ||
        dn.BackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt, &eng.d) !=
            CUDNN_STATUS_SUCCESS)
        return false;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    cnt = 0;
    if (dn.BackendGetAttribute(eng.d, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &cnt, notes) != CUDNN_STATUS_SUCCESS)
        return false;
    *out = {};
    for (int64_t i = 0; i < cnt && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; i++) {
        switch (notes[i]) {
        case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:                 out->tensor_core = true; break;
        case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:         out->down_convert = true; break;
        case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION: out->reduced_reduction = true; break;
        case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC:            out->nondeterministic = true; break;
        default:                                               break;
        }
    }
    return true;
}

/* The first engine config (heuristics A, then the fallback list) that keeps the op's
 * numerics (infvsr_conv3d_cudnn_engine_ok: no TF32 for f32, fp32 accumulation,
 * deterministic) and whose execution plan finalises with a workspace of at most
 * CU_CUDNN_WS_MAX. Notes that cannot be read count as unacceptable for f32 only. The
 * chosen heuristics, config and plan descriptors join o (with the graph). */
cudnnStatus_t dn_plan(dn_owned & o, cudnnHandle_t h, const struct infvsr_conv3d_geom * g,
                      cudnnBackendDescriptor_t graph, cudnnBackendDescriptor_t * plan, int64_t * workspace) {
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    const cudnnBackendHeurMode_t modes[2] = { CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK };
    for (cudnnBackendHeurMode_t m : modes) {
        bdesc heur;
        DN_TRY(dn.BackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur.d));
        DN_TRY(dn.BackendSetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                      &graph));
        DN_TRY(dn.BackendSetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &m));
        if ((last = dn.BackendFinalize(heur.d)) != CUDNN_STATUS_SUCCESS) continue;
        int64_t n = 0;
        if ((last = dn.BackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n,
                                           nullptr)) != CUDNN_STATUS_SUCCESS ||
            n <= 0)
            continue;
        std::vector<bdesc>                    cfg((size_t)n);
        std::vector<cudnnBackendDescriptor_t> raw((size_t)n);
        for (int64_t i = 0; i < n; i++) {
            DN_TRY(dn.BackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg[(size_t)i].d));
            raw[(size_t)i] = cfg[(size_t)i].d;
        }
        int64_t got = 0;
        if ((last = dn.BackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got,
                                           raw.data())) != CUDNN_STATUS_SUCCESS)
            continue;
        for (int64_t i = 0; i < got && i < n; i++) {
            struct infvsr_conv3d_engine_notes notes = {};
            const bool known = dn_notes(raw[(size_t)i], &notes);
            if ((!known && g->x_dtype == INFVSR_TYPE_F32) || !infvsr_conv3d_cudnn_engine_ok(g->x_dtype, &notes)) {
                last = CUDNN_STATUS_NOT_SUPPORTED;
                continue;
            }
            bdesc p;
            if ((last = dn.BackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p.d)) !=
                CUDNN_STATUS_SUCCESS)
                return last;
            if ((last = dn.BackendSetAttribute(p.d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h)) !=
                    CUDNN_STATUS_SUCCESS ||
                (last = dn.BackendSetAttribute(p.d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                               CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw[(size_t)i])) !=
                    CUDNN_STATUS_SUCCESS ||
                (last = dn.BackendFinalize(p.d)) != CUDNN_STATUS_SUCCESS)
                continue; /* this engine does not take the graph */
            int64_t ws = 0, cnt = 0;
            if ((last = dn.BackendGetAttribute(p.d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt,
                                               &ws)) != CUDNN_STATUS_SUCCESS)
                continue;
            if (ws < 0 || ws > CU_CUDNN_WS_MAX) {
                last = CUDNN_STATUS_NOT_SUPPORTED;
                continue;
            }
            *plan      = p.d;
            *workspace = ws;
            DN_TRY(o.adopt(heur));
            DN_TRY(o.adopt(cfg[(size_t)i]));
            return o.adopt(p);
        }
    }
    return last == CUDNN_STATUS_SUCCESS ? CUDNN_STATUS_NOT_SUPPORTED : last;
}

void dn_plan_destroy(void * payload, void * ud) {
    (void)ud;
    delete (cudnn_plan *)payload; /* its dn_owned destroys every descriptor */
}

/* dst[b][c][r] = src[b][r][c] with a dtype conversion (rounded once, into dst's dtype):
 * NCDHW <-> NDHWC for x, y (b = 1) and w (b = Cout, r = Cin, c = kt*kh*kw).
 * Plain grid-stride loop: writes coalesced, reads strided (not tuned; see the header). */
__global__ void k_dn_transpose(const void * src, int sd, void * dst, int dd, int64_t nb, int64_t nr, int64_t nc) {
    const int64_t n = nb * nr * nc;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i % nr, c = (i / nr) % nc, b = i / (nr * nc); /* i indexes dst [b][c][r] */
        cu_store(dst, dd, i, cu_load(src, sd, (b * nr + r) * nc + c));
    }
}

enum infvsr_status dn_transpose(cuda_ctx * c, const void * src, int sd, void * dst, int dd, int64_t nb, int64_t nr,
                                int64_t nc, struct infvsr_err * err) {
    CU_LAUNCH(cu_grid_for(nb * nr * nc, 256), 256, 0, c->stream, k_dn_transpose)(src, sd, dst, dd, nb, nr, nc);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

struct dn_scratch {
    cuda_ctx * c;
    void *     p[5] = { nullptr, nullptr, nullptr, nullptr, nullptr };
    explicit dn_scratch(cuda_ctx * ctx) : c(ctx) {}
    ~dn_scratch() {
        for (void * q : p)
            if (q) cu_scratch_free(c, q);
    }
};

enum infvsr_status dn_refuse(cuda_ctx * c, const struct infvsr_conv3d_geom * g, const struct infvsr_conv3d_plan_key * k,
                             cudnnStatus_t s) {
    cu_cudnn * d = c->cudnn;
    infvsr_conv3d_plan_cache_put(&d->cache, k, nullptr);
    if (!d->logged_refusal) { /* once per backend: shapes are few, and each is remembered */
        d->logged_refusal = true;
        fprintf(stderr, "infvsr: %s: cuDNN has no engine for conv3d x[%lld,%lld,%lld,%lld] k[%lld,%lld,%lld] "
                        "(%s); such shapes use im2col\n", c->name, (long long)g->cin, (long long)g->t,
                (long long)g->h, (long long)g->w, (long long)g->kt, (long long)g->kh, (long long)g->kw,
                dn.GetErrorString(s));
    }
    return INFVSR_ERR_UNSUPPORTED;
}

}  // namespace

extern "C" int infvsr_cuda_cudnn_check_conv_ops(const struct infvsr_conv3d_geom * g, bool channels_last,
                                               const char ** status) {
    const char * why = "";
    if (!dn_load(&why)) {
        *status = why;
        return -1;
    }
    dn_owned                 o;
    cudnnBackendDescriptor_t ops[2] = { nullptr, nullptr };
    int64_t                  nops = 0;
    const cudnnStatus_t      s = dn_ops(o, g, channels_last, ops, &nops);
    *status = dn.GetErrorString(s);
    return s == CUDNN_STATUS_SUCCESS ? 0 : 1;
}

bool cu_cudnn_init(struct cuda_ctx * c) {
    const char * why = "";
    if (!dn_load(&why)) {
        fprintf(stderr, "infvsr: %s: cuDNN unavailable (%s); conv3d uses im2col + cuBLASLt\n", c->name, why);
        return false;
    }
    cu_cudnn * d = new (std::nothrow) cu_cudnn();
    if (!d) return false;
    cudnnStatus_t s = dn.Create(&d->h);
    if (s == CUDNN_STATUS_SUCCESS) s = dn.SetStream(d->h, c->stream);
    if (s != CUDNN_STATUS_SUCCESS || !infvsr_conv3d_plan_cache_init(&d->cache, CU_CUDNN_CACHE, dn_plan_destroy, d)) {
        /* a missing or mismatched libcudnn sub-library, or no memory: conv3d falls back */
        fprintf(stderr, "infvsr: %s: cuDNN unavailable (%s); conv3d uses im2col + cuBLASLt\n", c->name,
                s != CUDNN_STATUS_SUCCESS ? dn.GetErrorString(s) : "out of host memory");
        if (d->h) dn.Destroy(d->h);
        delete d;
        return false;
    }
    c->cudnn = d;
    return true;
}

void cu_cudnn_destroy(struct cuda_ctx * c) {
    if (!c->cudnn) return;
    infvsr_conv3d_plan_cache_free(&c->cudnn->cache);
    dn.Destroy(c->cudnn->h);
    delete c->cudnn;
    c->cudnn = nullptr;
}

bool cu_cudnn_ready(const struct cuda_ctx * c) {
    return c->cudnn != nullptr;
}

bool cu_cudnn_refused(struct cuda_ctx * c, const struct infvsr_conv3d_geom * g) {
    if (!c->cudnn) return true;
    struct infvsr_conv3d_plan_key k;
    infvsr_conv3d_plan_key_make(g, &k);
    /* a peek: not counted as a hit or miss (cu_conv3d_cudnn looks the plan up again) */
    for (int i = 0; i < c->cudnn->cache.n; i++)
        if (memcmp(c->cudnn->cache.e[i].key.v, k.v, sizeof k.v) == 0) return c->cudnn->cache.e[i].payload == nullptr;
    return false;
}

void cu_cudnn_cache_stats(const struct cuda_ctx * c, struct infvsr_cuda_conv_plan_stats * out) {
    memset(out, 0, sizeof *out);
    if (!c->cudnn) return;
    const struct infvsr_conv3d_plan_cache * pc = &c->cudnn->cache;
    out->hits = pc->hits;
    out->misses = pc->misses;
    out->evictions = pc->evictions;
    for (int i = 0; i < pc->n; i++) {
        if (pc->e[i].payload) out->plans++;
        else out->refused++;
    }
}

enum infvsr_status cu_conv3d_cudnn(struct cuda_ctx * c, const struct infvsr_conv3d_geom * g, const void * x,
                                   const void * w, const void * b, void * y, struct infvsr_err * err) {
    cu_cudnn * d = c->cudnn;
    if (!d) return INFVSR_ERR_UNSUPPORTED;
    struct infvsr_conv3d_plan_key k;
    infvsr_conv3d_plan_key_make(g, &k);
    bool         found = false;
    cudnn_plan * p     = (cudnn_plan *)infvsr_conv3d_plan_cache_get(&d->cache, &k, &found);
    if (found && !p) return INFVSR_ERR_UNSUPPORTED;
    if (!found) {
        cudnnStatus_t s = CUDNN_STATUS_NOT_SUPPORTED;
        for (int cl = 0; cl < 2 && !p; cl++) {
            cudnn_plan * q = new (std::nothrow) cudnn_plan();
            if (!q) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "conv3d (cuDNN): out of host memory");
            cudnnBackendDescriptor_t graph = nullptr;
            if ((s = dn_graph(q->owned, d->h, g, cl == 1, &graph)) == CUDNN_STATUS_SUCCESS &&
                (s = dn_plan(q->owned, d->h, g, graph, &q->plan, &q->workspace)) == CUDNN_STATUS_SUCCESS) {
                q->channels_last = cl == 1;
                q->with_bias     = g->has_bias;
                p                = q;
            } else {
                delete q;
            }
        }
        if (!p) return dn_refuse(c, g, &k, s);
        infvsr_conv3d_plan_cache_put(&d->cache, &k, p);
    }

    /* operands as the plan wants them: w in x's dtype, bias in f32, channels-last copies */
    dn_scratch    s(c);
    const size_t  xes = infvsr_dtype_size(g->x_dtype), yes = infvsr_dtype_size(g->y_dtype);
    const int64_t nx = g->cin * g->t * g->h * g->w, nw = g->cout * g->kc, ny = g->cout * g->positions;
    const void *  xp = x, * wp = w, * bp = b;
    void *        yp = y;
    if (p->channels_last) {
        INFVSR_TRY(cu_scratch(c, (size_t)nx * xes, &s.p[0], err));
        INFVSR_TRY(dn_transpose(c, x, g->x_dtype, s.p[0], g->x_dtype, 1, g->cin, nx / (g->cin ? g->cin : 1), err));
        xp = s.p[0];
        INFVSR_TRY(cu_scratch(c, (size_t)nw * xes, &s.p[1], err));
        INFVSR_TRY(dn_transpose(c, w, g->w_dtype, s.p[1], g->x_dtype, g->cout, g->cin, g->kt * g->kh * g->kw, err));
        wp = s.p[1];
        INFVSR_TRY(cu_scratch(c, (size_t)ny * yes, &s.p[2], err));
        yp = s.p[2];
    } else if ((int)g->w_dtype != (int)g->x_dtype) {
        INFVSR_TRY(cu_scratch(c, (size_t)nw * xes, &s.p[1], err));
        INFVSR_TRY(cu_convert(c, w, g->w_dtype, s.p[1], g->x_dtype, nw, err));
        wp = s.p[1];
    }
    if (p->with_bias && g->b_dtype != INFVSR_TYPE_F32) {
        INFVSR_TRY(cu_scratch(c, (size_t)g->cout * sizeof(float), &s.p[3], err));
        INFVSR_TRY(cu_convert(c, b, g->b_dtype, s.p[3], INFVSR_TYPE_F32, g->cout, err));
        bp = s.p[3];
    }
    if (p->workspace > 0) INFVSR_TRY(cu_scratch(c, (size_t)p->workspace, &s.p[4], err));

    int64_t uids[4] = { UID_X, UID_W, UID_Y, UID_B };
    void *  ptrs[4] = { (void *)xp, (void *)wp, yp, (void *)bp };
    const int64_t n = p->with_bias ? 4 : 3;
    void *  wsp     = s.p[4];
    bdesc   vp;
    cudnnStatus_t st = dn.BackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp.d);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dn.BackendSetAttribute(vp.d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dn.BackendSetAttribute(vp.d, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (st == CUDNN_STATUS_SUCCESS)
        st = dn.BackendSetAttribute(vp.d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &wsp);
    if (st == CUDNN_STATUS_SUCCESS) st = dn.BackendFinalize(vp.d);
    if (st == CUDNN_STATUS_SUCCESS) st = dn.BackendExecute(d->h, p->plan, vp.d);
    if (st != CUDNN_STATUS_SUCCESS) {
        const cudnnStatus_t cat = (cudnnStatus_t)CUDNN_STATUS_CATEGORY(st);
        /* an engine that finalised but refuses at run time: remember, and fall back. The
         * staging writes above touched only temporaries, so y is untouched. */
        if (cat == CUDNN_STATUS_NOT_SUPPORTED || cat == CUDNN_STATUS_BAD_PARAM) return dn_refuse(c, g, &k, st);
        return cu_fail(c, err, "cudnnBackendExecute (conv3d)", __FILE__, __LINE__, dn.GetErrorString(st));
    }
    if (p->channels_last) /* y [To*Ho*Wo, Cout] -> [Cout, To*Ho*Wo], same dtype: exact */
        INFVSR_TRY(dn_transpose(c, yp, g->y_dtype, y, g->y_dtype, 1, g->positions, g->cout, err));
    return INFVSR_OK;
}

#else /* built without cuDNN: the path is compiled out and never selected */

extern "C" int infvsr_cuda_cudnn_check_conv_ops(const struct infvsr_conv3d_geom * g, bool channels_last,
                                               const char ** status) {
    (void)g, (void)channels_last;
    *status = "this build has no cuDNN (INFVSR_CUDNN=OFF or not found at configure time)";
    return -1;
}

bool cu_cudnn_init(struct cuda_ctx * c) {
    (void)c;
    return false;
}
void cu_cudnn_destroy(struct cuda_ctx * c) {
    (void)c;
}
bool cu_cudnn_ready(const struct cuda_ctx * c) {
    (void)c;
    return false;
}
bool cu_cudnn_refused(struct cuda_ctx * c, const struct infvsr_conv3d_geom * g) {
    (void)c;
    (void)g;
    return true;
}
void cu_cudnn_cache_stats(const struct cuda_ctx * c, struct infvsr_cuda_conv_plan_stats * out) {
    (void)c;
    memset(out, 0, sizeof *out);
}
enum infvsr_status cu_conv3d_cudnn(struct cuda_ctx * c, const struct infvsr_conv3d_geom * g, const void * x,
                                   const void * w, const void * b, void * y, struct infvsr_err * err) {
    (void)c, (void)g, (void)x, (void)w, (void)b, (void)y, (void)err;
    return INFVSR_ERR_UNSUPPORTED;
}

#endif
