/* The InfVSR causal Wan2.1 DiT (MODEL-SPEC.md §4): one denoising step per chunk of latent
 * frames, with a rolling self-attention KV cache of the previous chunk.
 *
 * Three objects, three lifetimes (STYLE D):
 *   struct infvsr_dit          the model: the checkpoint's weights imported into the
 *                              backend once (engine/core/weight_set: views into the mapping
 *                              on the CPU, one device allocation elsewhere) plus the
 *                              constants hoisted once per model (time embedding e,
 *                              per-block modulation + t_mod, head modulation).
 *   struct infvsr_dit_context  per visual reference: the embedded context c and every
 *                              block's cross-attention K/V. Allocated once, refilled when
 *                              the reference frame changes.
 *   struct infvsr_dit_session  per video: the KV cache (named slots, one K and one V per
 *                              layer), the activation arena and the RoPE tables, all sized
 *                              at open from a maximum chunk size; a step never allocates.
 *
 * Every tensor these functions take or return lives in the DiT's backend memory
 * (infvsr_backend_tensor_alloc / infvsr_backend_upload); programs that hold host tensors
 * upload them first and download results with infvsr_backend_download_f32. Like every op,
 * the functions only queue work: results are ready after infvsr_backend_synchronize.
 *
 * Precision: activations, the KV cache, the cross-attention K/V and the hoisted constants
 * use the backend's activation dtype (infvsr_backend_get_caps: f32 on the CPU, bf16 on
 * CUDA, either on devsim). In bf16 this follows the official pipeline (MODEL-SPEC §4.3,
 * §4.8), which runs the whole WanModel in bf16: the residual stream x, the modulation sums
 * (a bf16 add there) and every op output are rounded to bf16. Only what the reference
 * keeps wider stays wider: the RoPE angles and rotation (float64 tables, float64 math in
 * the rope op), the timestep sinusoid (float64 on the host, rounded once), and the
 * statistics of LayerNorm/RMSNorm, the softmax and every GEMM accumulation (f32 inside
 * the kernels). Weights stay in the checkpoint's dtype (bf16 for InfVSR.ckpt). On the CPU
 * (f32) the path matches an f32 PyTorch run of the same bf16-valued weights to ~1e-6. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "infvsr/model_config.h"
#include "infvsr/status.h"
#include "infvsr/tensor.h"
#include "infvsr/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_backend;
struct infvsr_dit;
struct infvsr_dit_context;
struct infvsr_dit_session;

/* bf16(399): the timestep the pipeline passes (MODEL-SPEC §2.5). */
#define INFVSR_DIT_TIMESTEP 400.0
/* Effective sigma of the official GPU pipeline, bf16(0.4008152485) (MODEL-SPEC §2.5):
 * restored = latents - INFVSR_DIT_SIGMA * pred. */
#define INFVSR_DIT_SIGMA 0.400390625f

/* Validates the checkpoint strictly against `cfg` (every key present with the expected
 * shape and a float dtype the backend reads: f32/bf16/f16; no unexpected keys), imports
 * the weights into `be` and computes the hoisted constants there. Errors are
 * INFVSR_ERR_MODEL naming the key (the first problem, plus how many more were found).
 * `w` and `be` must outlive the model. */
enum infvsr_status infvsr_dit_load(const struct infvsr_dit_config * cfg, const struct infvsr_weights * w,
                                   struct infvsr_backend * be, struct infvsr_dit ** out,
                                   struct infvsr_err * err);
void               infvsr_dit_free(struct infvsr_dit * dit);

const struct infvsr_dit_config * infvsr_dit_config_of(const struct infvsr_dit * dit);
/* The activation dtype the model computes in (the backend's caps.act_dtype). */
enum infvsr_dtype                infvsr_dit_act_dtype(const struct infvsr_dit * dit);
/* Backend bytes the model holds: imported weights (0 on a host-visible backend, where they
 * stay views into the mapped file) + the hoisted constants. */
size_t                           infvsr_dit_resident_bytes(const struct infvsr_dit * dit);

/* A context for `n_ctx` visual tokens (145 for InfVSR), allocated on the backend; its
 * values are set by infvsr_dit_context_set before the first step. */
enum infvsr_status infvsr_dit_context_alloc(struct infvsr_dit * dit, int64_t n_ctx,
                                            struct infvsr_dit_context ** out, struct infvsr_err * err);
/* ctx: backend tensor [n_ctx, text_dim] or [1, n_ctx, text_dim], f32/bf16/f16 (the visual
 * tokens). Recomputes c and every block's cross K/V in place (no allocation). */
enum infvsr_status infvsr_dit_context_set(struct infvsr_dit_context * c, const struct infvsr_tensor * ctx,
                                          struct infvsr_err * err);
/* alloc + set in one call. */
enum infvsr_status infvsr_dit_context_init(struct infvsr_dit * dit, const struct infvsr_tensor * ctx,
                                           struct infvsr_dit_context ** out, struct infvsr_err * err);
void               infvsr_dit_context_free(struct infvsr_dit_context * c);
size_t             infvsr_dit_context_nbytes(const struct infvsr_dit_context * c);

/* Opens a session for chunks of at most `max_tokens` patch tokens (T * h/2 * w/2; 3 latent
 * frames of the largest grid). The cache holds one previous chunk, so it is sized from the
 * same bound. */
enum infvsr_status infvsr_dit_session_open(struct infvsr_dit * dit, int64_t max_tokens,
                                           struct infvsr_dit_session ** out, struct infvsr_err * err);
void               infvsr_dit_session_close(struct infvsr_dit_session * s);

/* Cancellation: infvsr_dit_step polls `should_abort` before each block and stops with
 * INFVSR_ERR_CANCELLED, the cache reset as after any failed step. NULL: never. */
void    infvsr_dit_session_set_abort(struct infvsr_dit_session * s, infvsr_abort_cb should_abort, void * user);

/* Scene cut: the next chunk attends only to itself and starts at latent frame 0. */
void    infvsr_dit_session_reset(struct infvsr_dit_session * s);
/* Scene-relative latent index of the next chunk's first frame (sum of T since the reset). */
int64_t infvsr_dit_session_position(const struct infvsr_dit_session * s);
/* Number of tokens held in the KV cache (0 after open or reset). */
int64_t infvsr_dit_session_cached_tokens(const struct infvsr_dit_session * s);
/* Backend bytes held by the session (cache + arena + RoPE tables), for memory accounting. */
size_t  infvsr_dit_session_nbytes(const struct infvsr_dit_session * s);

/* One chunk: pred = DiT(latents, t = 400, context, cache, start_frame).
 * latents: backend tensor [in_dim, T, h, w] (or [1, in_dim, T, h, w]), f32/bf16/f16, h and
 * w even. pred: backend tensor, f32/bf16/f16, with the same numel (any shape of that size),
 * written (converted from the activation dtype). start_frame < 0 means "the session's
 * position" (the usual streaming case). Afterwards the cache holds this chunk's post-RoPE
 * K/V and the position advances by T. A chunk whose grid differs from the cached chunk's
 * grid is rejected (INFVSR_ERR_INVALID_ARG); reset first. */
enum infvsr_status infvsr_dit_step(struct infvsr_dit_session * s, const struct infvsr_dit_context * c,
                                   const struct infvsr_tensor * latents, int64_t start_frame,
                                   struct infvsr_tensor * pred, struct infvsr_err * err);

/* restored = latents + bf16/f32(-INFVSR_DIT_SIGMA * pred) (MODEL-SPEC §2.4 step 7: the
 * product is rounded to the output dtype, then the sum). Backend tensors of `be` with
 * equal numel, any of f32/bf16/f16; `restored` must not overlap the others. */
enum infvsr_status infvsr_dit_restore(struct infvsr_backend * be, const struct infvsr_tensor * latents,
                                      const struct infvsr_tensor * pred, struct infvsr_tensor * restored,
                                      struct infvsr_err * err);

/* Multiply-accumulates x2 of one chunk (linears + attention QK^T and AV), for GFLOP/s. */
double infvsr_dit_chunk_flops(const struct infvsr_dit_config * cfg, int64_t n_tokens, int64_t n_cached,
                              int64_t n_ctx);

#ifdef __cplusplus
}
#endif
