/* Reference-frame preparation (MODEL-SPEC.md sections 2.1 and 3.2) on the backend: u8 RGB
 * [H, W, 3] -> normalised [3, img, img], four kinds of op:
 *
 *   x = ((u8 / 255 * 2 - 1) / 2 + 0.5)   copy U8_TO_UNIT, HWC -> CHW strides (the model range of
 *                                        the chunk and back, fp32, the pipeline's op order)
 *   resize to img x img                  antialiased bilinear (torchvision Resize, antialias=True)
 *   x = x - mean_c                       affine_clamp(x, 1, -mean_c) per channel: exact in f32
 *   x = x / std_c                        copy DIVIDE by the model's f32 std [3] (stride-0 broadcast)
 *
 * All f32, as the reference computes it (on the GPU in fp32); the official pipeline then casts
 * the image to bf16, which the encoder's patch gather does when its activations are bf16. */
#include <math.h>

#include "visual_impl.h"

const float infvsr__imagenet_mean[3] = { 0.485f, 0.456f, 0.406f };
const float infvsr__imagenet_std[3]  = { 0.229f, 0.224f, 0.225f };

static enum infvsr_status check_args(const struct infvsr_visual * v, const struct infvsr_tensor * frame,
                                     const struct infvsr_tensor * image, struct infvsr_err * err) {
    const int64_t img = v->cfg.img_size;
    if (!frame || frame->dtype != INFVSR_TYPE_U8 || frame->ndim != 3 || frame->shape[2] != 3 ||
        frame->shape[0] <= 0 || frame->shape[1] <= 0 || !frame->data || frame->mem != v->be->mem) {
        char got[96];
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual: reference frame must be a U8 [H, W, 3] tensor in "
                              "the memory of backend %s, got %s %s%s", v->caps.name,
                              frame ? infvsr_dtype_name(frame->dtype) : "NULL",
                              frame ? infvsr_shape_str(frame->ndim, frame->shape, got, sizeof got) : "",
                              frame && frame->mem != v->be->mem ? " in other memory" : "");
    }
    bool dt_ok = image && (image->dtype == INFVSR_TYPE_F32 || image->dtype == INFVSR_TYPE_BF16 ||
                           image->dtype == INFVSR_TYPE_F16);
    if (!dt_ok || image->ndim != 3 || image->shape[0] != 3 || image->shape[1] != img || image->shape[2] != img ||
        !image->data || image->mem != v->be->mem) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual: image must be a float [3, %lld, %lld] tensor in "
                              "the memory of backend %s", (long long)img, (long long)img, v->caps.name);
    }
    return INFVSR_OK;
}

/* unit [3, H, W] f32 -> image, through `r` ([3, img, img] f32: the image itself when it is
 * f32, else a temporary the last op converts from). */
static enum infvsr_status resize_normalise(struct infvsr_visual * v, const struct infvsr_tensor * unit,
                                           struct infvsr_tensor * r, struct infvsr_tensor * image,
                                           struct infvsr_err * err) {
    const int64_t img = v->cfg.img_size, plane = img * img;
    INFVSR_TRY(infvsr_op_resize(v->be, INFVSR_RESIZE_BILINEAR_AA, unit, r, err));
    for (int ch = 0; ch < 3; ch++) {
        struct infvsr_tensor c;
        infvsr__view(&c, r, INFVSR_TYPE_F32, ch * plane, 1, &plane);
        INFVSR_TRY(infvsr_op_affine_clamp(v->be, &c, 1.0f, -infvsr__imagenet_mean[ch], -INFINITY, INFINITY, &c, err));
    }
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_DIVIDE, 2);
    a.extent[0] = 3, a.extent[1] = plane;
    a.x = r, a.x_stride[0] = plane, a.x_stride[1] = 1;
    a.m = &v->imagenet_std, a.m_stride[0] = 1;                       /* std_c for every pixel */
    a.y = image, a.y_stride[0] = plane, a.y_stride[1] = 1;
    return infvsr_op_copy(v->be, &a, err);
}

enum infvsr_status infvsr_visual_prepare_reference(struct infvsr_visual * v, const struct infvsr_tensor * frame,
                                                   struct infvsr_tensor * image, struct infvsr_err * err) {
    INFVSR_TRY(check_args(v, frame, image, err));
    const int64_t h = frame->shape[0], w = frame->shape[1], img = v->cfg.img_size;
    const bool    direct = image->dtype == INFVSR_TYPE_F32;
    /* One f32 temporary per call: this runs once per scene or context refresh, and H, W are
     * not known at load. Freed right after queuing: backends reuse memory in stream order. */
    int64_t n = 3 * h * w + (direct ? 0 : 3 * img * img);
    struct infvsr_tensor tmp = { 0 }, unit, resized;
    infvsr_tensor_setup(&tmp, "visual.reference_tmp", INFVSR_TYPE_F32, 1, &n);
    enum infvsr_status st = infvsr_backend_tensor_alloc(v->be, &tmp, err);
    if (st != INFVSR_OK) {
        infvsr_err_prefix(err, "visual: a %lldx%lld reference frame", (long long)h, (long long)w);
        return st;
    }
    const int64_t us[3] = { 3, h, w }, rs[3] = { 3, img, img };
    infvsr__view(&unit, &tmp, INFVSR_TYPE_F32, 0, 3, us);
    infvsr__view(&resized, &tmp, INFVSR_TYPE_F32, 3 * h * w, 3, rs);
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_U8_TO_UNIT, 2); /* [H, W, 3] -> [3, H, W] */
    a.extent[0] = 3, a.extent[1] = h * w;
    a.x = frame, a.x_stride[0] = 1, a.x_stride[1] = 3;
    a.y = &unit, a.y_stride[0] = h * w, a.y_stride[1] = 1;
    st = infvsr_op_copy(v->be, &a, err);
    if (st == INFVSR_OK) st = resize_normalise(v, &unit, direct ? image : &resized, image, err);
    infvsr_backend_tensor_free(v->be, &tmp);
    return st;
}
