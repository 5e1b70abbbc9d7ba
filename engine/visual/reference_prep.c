/* Reference-frame preparation (MODEL-SPEC.md sections 2.1 and 3.2): u8 RGB [H, W, 3] ->
 * normalised f32 [3, img, img].
 *
 *   x = u8 / 255 * 2 - 1          the model range of the chunk (three fp32 ops, this order)
 *   x = x / 2 + 0.5               back to [0, 1] for the reference frame
 *   resize to img x img           antialiased bilinear (torchvision Resize, antialias=True)
 *   x = (x - mean_c) / std_c      ImageNet constants, fp32
 *
 * The official pipeline then casts to bf16; this engine keeps f32 (see infvsr/visual.h). */
#include <stdlib.h>

#include "visual_impl.h"

static const float imagenet_mean[3] = { 0.485f, 0.456f, 0.406f };
static const float imagenet_std[3]  = { 0.229f, 0.224f, 0.225f };

/* [H, W, 3] u8 -> [3, H, W] f32 in [0, 1], with the exact fp32 op order of the pipeline. */
static void frame_to_unit(float * dst, const uint8_t * src, int64_t h, int64_t w) {
    for (int64_t i = 0; i < h * w; i++) {
        for (int ch = 0; ch < 3; ch++) {
            volatile float x = (float)src[i * 3 + ch]; /* volatile: no contraction/reassociation */
            x = x / 255.0f;
            x = x * 2.0f;
            x = x - 1.0f;
            x = x / 2.0f;
            x = x + 0.5f;
            dst[(int64_t)ch * h * w + i] = x;
        }
    }
}

enum infvsr_status infvsr_visual_prepare_reference(struct infvsr_visual * v, const struct infvsr_tensor * frame,
                                                   struct infvsr_tensor * image, struct infvsr_err * err) {
    const int64_t img = v->cfg.img_size;
    if (!frame || frame->dtype != INFVSR_TYPE_U8 || frame->ndim != 3 || frame->shape[2] != 3 ||
        frame->shape[0] <= 0 || frame->shape[1] <= 0 || frame->mem != INFVSR_MEM_HOST) {
        char got[96];
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual: reference frame must be a host U8 [H, W, 3] "
                              "tensor, got %s %s", frame ? infvsr_dtype_name(frame->dtype) : "NULL",
                              frame ? infvsr_shape_str(frame->ndim, frame->shape, got, sizeof got) : "");
    }
    if (!image || image->dtype != INFVSR_TYPE_F32 || image->ndim != 3 || image->shape[0] != 3 ||
        image->shape[1] != img || image->shape[2] != img || image->mem != INFVSR_MEM_HOST) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual: image must be a host F32 [3, %lld, %lld] tensor",
                              (long long)img, (long long)img);
    }
    const int64_t h = frame->shape[0], w = frame->shape[1];
    struct infvsr_tensor unit = { 0 };
    int64_t us[3] = { 3, h, w };
    if (infvsr_tensor_alloc(&unit, "reference_unit", INFVSR_TYPE_F32, 3, us) != INFVSR_OK) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "visual: out of memory for a %lldx%lld reference frame",
                              (long long)h, (long long)w);
    }
    frame_to_unit(unit.data, frame->data, h, w);
    enum infvsr_status r = infvsr_op_resize(v->be, INFVSR_RESIZE_BILINEAR_AA, &unit, image, err);
    infvsr_tensor_release(&unit);
    if (r != INFVSR_OK) return r;
    float * x = image->data;
    for (int ch = 0; ch < 3; ch++) {
        for (int64_t i = 0; i < img * img; i++) {
            float * p = &x[ch * img * img + i];
            *p = (*p - imagenet_mean[ch]) / imagenet_std[ch];
        }
    }
    return INFVSR_OK;
}
