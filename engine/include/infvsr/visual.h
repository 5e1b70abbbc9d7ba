/* The visual encoder (MODEL-SPEC.md section 6): RAM Swin-L with the DAPE LoRA merged into q and
 * v, plus image_proj, and the reference-frame preparation of sections 2.1 and 3.2.
 *
 *   struct infvsr_visual * v;
 *   infvsr_visual_load(ram, dape, &cfg.visual, be, &v, &err);      // once
 *   infvsr_visual_prepare_reference(v, &frame_u8, &image, &err);    // [H, W, 3] u8 -> [3, 384, 384]
 *   infvsr_visual_encode(v, &image, NULL, &context, &err);          // -> [145, 512]
 *   infvsr_visual_free(v);
 *
 * Weights. `ram` is ram_swin_large_14m.pth (its "model" entry; a flat file without the "model."
 * prefix is accepted too). Only visual_encoder.* and image_proj.* keys are used, minus keys ending
 * in relative_position_index or attn_mask (those are recomputed); the load is strict for the rest:
 * a missing, unexpected or wrong-shape key is INFVSR_ERR_MODEL naming the key. `dape` is DAPE.pth:
 * the lora_A (2r, C) / lora_B (2C, r) pair of every block's attn.qkv, r = cfg->lora_rank; other keys
 * are ignored; a missing half of a pair or a wrong shape is INFVSR_ERR_MODEL naming the key. `dape`
 * may be NULL (no LoRA: qkv is used as stored).
 *
 * Precision. The merge W_qkv + [B_q A_q; 0; B_v A_v] / r is computed in f32 at load (products
 * accumulated in double, then rounded to f32) and the merged qkv weight is stored as bf16
 * (round-to-nearest-even), as the official pipeline does; the model owns that memory. Every other
 * weight is read in place from the checkpoint in its stored dtype (f32 in the official file).
 * Activations are f32; the reference rounds the normalised image and every op to bf16, this
 * engine does not (the PyTorch reference in tests/reference/visual_ref.py is f32 with the same
 * bf16-rounded merged qkv, so parity is f32 vs f32).
 *
 * Compute goes through the backend op table; the model's activations and scratch (reserved at
 * load, no allocation during encode) live in host memory, so `be` must be the CPU backend.
 * Thread-safety: a model encodes one image at a time (shared scratch); use one model per thread. */
#pragma once

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

/* Loads the encoder. `ram`, `dape` and `be` must outlive the model (weights are views). */
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

/* frame: host U8 [H, W, 3] RGB; image: caller-allocated host F32 [3, img, img].
 * x = u8/255*2-1, then x/2+0.5 (fp32, this op order), antialiased bilinear resize to img x img
 * (the backend's INFVSR_RESIZE_BILINEAR_AA; aspect ratio not kept), then (x - mean_c) / std_c with
 * the ImageNet constants. Allocates (and frees) one f32 [3, H, W] temporary per call: this runs
 * once per scene or context refresh, and H, W are not known at load. */
enum infvsr_status infvsr_visual_prepare_reference(struct infvsr_visual * v, const struct infvsr_tensor * frame,
                                                   struct infvsr_tensor * image, struct infvsr_err * err);

/* image: host F32 [3, img, img] (normalised); context: caller-allocated host F32 [n_tokens, out_dim];
 * tokens (optional, NULL to skip): host F32 [n_tokens, token_dim], the Swin output before image_proj
 * (row 0 = mean of the normalised final tokens, rows 1.. = the final grid row-major). */
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
 * merged, the checkpoint's view otherwise), or NULL when out of range. For tests. */
const struct infvsr_tensor * infvsr_visual_qkv_weight(const struct infvsr_visual * v, int stage, int block);

#ifdef __cplusplus
}
#endif
