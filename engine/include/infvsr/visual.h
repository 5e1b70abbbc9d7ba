/* The visual encoder (MODEL-SPEC.md section 6): RAM Swin-L with the DAPE LoRA merged into q and
 * v, plus image_proj, and the reference-frame preparation of sections 2.1 and 3.2, on any
 * backend (cpu, cuda, devsim).
 *
 *   struct infvsr_visual * v;
 *   infvsr_visual_load(ram, dape, &cfg.visual, be, &v, &err);      // once
 *   infvsr_visual_prepare_reference(v, &frame_u8, &image, &err);    // [H, W, 3] u8 -> [3, 384, 384]
 *   infvsr_visual_encode(v, &image, NULL, &context, &err);          // -> [145, 512]
 *   infvsr_visual_free(v);
 *
 * Every tensor argument of prepare_reference and encode is a backend tensor: it lives in the
 * memory of the model's backend (allocated with infvsr_backend_tensor_alloc or uploaded with
 * infvsr_backend_upload; views into such a tensor are fine) and is produced/consumed by ops,
 * asynchronously on a device backend: read results with infvsr_backend_tensor_get +
 * infvsr_backend_synchronize (or infvsr_backend_download_f32).
 *
 * Weights. `ram` is ram_swin_large_14m.pth (its "model" entry; a flat file without the "model."
 * prefix is accepted too). Only visual_encoder.* and image_proj.* keys are used, minus keys ending
 * in relative_position_index or attn_mask (those are recomputed); the load is strict for the rest:
 * a missing, unexpected or wrong-shape key is INFVSR_ERR_MODEL naming the key. `dape` is DAPE.pth:
 * the lora_A (2r, C) / lora_B (2C, r) pair of every block's attn.qkv, r = cfg->lora_rank; other keys
 * are ignored; a missing half of a pair or a wrong shape is INFVSR_ERR_MODEL naming the key. `dape`
 * may be NULL (no LoRA: qkv is used as stored). The weights, the merged qkv and the tables the
 * model derives at load (window/merge index tables, shift masks) go through one weight import:
 * on a host backend the checkpoint's tensors stay views into the mapping; on a device backend
 * everything is uploaded once (f32 weights as bf16 when the backend computes in bf16).
 *
 * Precision (activation dtype = the backend's caps.act_dtype). The merge W_qkv + [B_q A_q; 0;
 * B_v A_v] / r is computed in f32 at load (products accumulated in double, then rounded to f32)
 * and the merged qkv weight is stored as bf16 (round-to-nearest-even), as the official pipeline
 * does. f32 backends (cpu, devsim f32): every activation f32, attention fused per window with
 * an f32 bias; the PyTorch reference in tests/reference/visual_ref.py is f32 with the same
 * bf16-rounded merged qkv (parity f32 vs f32). bf16 backends (cuda, devsim bf16): activations,
 * weights, bias tables and masks bf16 and the attention in explicit bf16 ops (matmul, add,
 * softmax, matmul), as the official pipeline runs the encoder; the image preparation stays f32
 * (the reference resizes and normalises in fp32 and casts the result to bf16).
 *
 * Compute goes through the backend op table; the scratch (activations of the largest stage,
 * reserved on the backend at load, no allocation during encode) is per model, so a model
 * encodes one image at a time: models are bound to one backend, which one thread drives.
 * prepare_reference allocates (and frees) one f32 [3, H, W] temporary on the backend per call. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "infvsr/model_config.h"
#include "infvsr/status.h"
#include "infvsr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_backend;
struct infvsr_weights;
struct infvsr_visual;

/* Loads the encoder. `ram`, `dape` and `be` must outlive the model (on a host backend the
 * weights are views into the mapped files). */
enum infvsr_status infvsr_visual_load(const struct infvsr_weights * ram, const struct infvsr_weights * dape,
                                      const struct infvsr_visual_config * cfg, struct infvsr_backend * be,
                                      struct infvsr_visual ** out, struct infvsr_err * err);
void               infvsr_visual_free(struct infvsr_visual * v);

/* Output sizes: tokens = 1 + (img/patch/8)^2 (145 for the real model), token_dim = 8 * embed_dim
 * (1536), out_dim = cfg->out_dim (512). */
int infvsr_visual_n_tokens(const struct infvsr_visual * v);
int infvsr_visual_token_dim(const struct infvsr_visual * v);
int infvsr_visual_out_dim(const struct infvsr_visual * v);
int infvsr_visual_img_size(const struct infvsr_visual * v);

/* Bytes the model holds beyond the mapped checkpoint: on a device backend the imported weights
 * and tables plus the encode scratch; on a host backend the constants it computed at load
 * (merged qkv, index tables, masks) plus the scratch (the checkpoint's own tensors are views). */
size_t infvsr_visual_resident_bytes(const struct infvsr_visual * v);

/* frame: U8 [H, W, 3] RGB; image: caller-allocated float (F32, BF16 or F16) [3, img, img]; both
 * backend tensors. x = u8/255*2-1, then x/2+0.5 (fp32, this op order), antialiased bilinear
 * resize to img x img (the backend's INFVSR_RESIZE_BILINEAR_AA; aspect ratio not kept), then
 * (x - mean_c) / std_c with the ImageNet constants, all f32, rounded once into image's dtype. */
enum infvsr_status infvsr_visual_prepare_reference(struct infvsr_visual * v, const struct infvsr_tensor * frame,
                                                   struct infvsr_tensor * image, struct infvsr_err * err);

/* image: float [3, img, img] (normalised; converted to the activation dtype on entry);
 * context: caller-allocated [n_tokens, out_dim]; tokens (optional, NULL to skip):
 * [n_tokens, token_dim], the Swin output before image_proj (row 0 = mean of the normalised final
 * tokens, rows 1.. = the final grid row-major). All backend tensors; context and tokens are F32
 * or the activation dtype (an F32 output of a bf16 backend holds the bf16 values, widened). */
enum infvsr_status infvsr_visual_encode(struct infvsr_visual * v, const struct infvsr_tensor * image,
                                        struct infvsr_tensor * tokens, struct infvsr_tensor * context,
                                        struct infvsr_err * err);

/* The DAPE merge of one block in f32, before the bf16 rounding: out = w_qkv with rows [0, C) +=
 * B[0:C] A[0:r] / r and rows [2C, 3C) += B[C:2C] A[r:2r] / r (K rows copied unchanged).
 * w_qkv [3C, C], lora_a [2r, C], lora_b [2C, r] (any float dtype, host); out: host F32 [3C, C]
 * (caller-allocated). Shapes are checked (INFVSR_ERR_MODEL naming the tensor). */
enum infvsr_status infvsr_visual_lora_merge_f32(const struct infvsr_tensor * w_qkv,
                                                const struct infvsr_tensor * lora_a,
                                                const struct infvsr_tensor * lora_b, int rank,
                                                struct infvsr_tensor * out, struct infvsr_err * err);

/* The qkv weight the model computes with for block `block` of stage `stage` (BF16 [3C, C] when
 * merged, the checkpoint's tensor otherwise; a backend tensor: on a device backend read it with
 * infvsr_backend_tensor_get), or NULL when out of range. For tests. */
const struct infvsr_tensor * infvsr_visual_qkv_weight(const struct infvsr_visual * v, int stage, int block);

#ifdef __cplusplus
}
#endif
