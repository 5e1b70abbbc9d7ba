/* The InfVSR causal Wan2.1 DiT (MODEL-SPEC.md §4): one denoising step per chunk of latent
 * frames, with a rolling self-attention KV cache of the previous chunk.
 *
 * Three objects, three lifetimes (STYLE D):
 *   struct infvsr_dit          the model: weight views into the checkpoint (read in place,
 *                              never copied) plus the constants hoisted once per model
 *                              (time embedding e, per-block modulation + t_mod, head mod).
 *   struct infvsr_dit_context  per visual reference: the embedded context c and every
 *                              block's cross-attention K/V. Recompute when the reference
 *                              frame changes.
 *   struct infvsr_dit_session  per video: the KV cache (named slots, one K and one V per
 *                              layer) and the activation arena, both sized at open from a
 *                              maximum chunk size; a step never allocates.
 *
 * Precision: activations are f32 on the CPU backend; weights stay in the file's dtype (bf16
 * for InfVSR.ckpt) and are widened on the fly by the backend's linear op. The official GPU
 * reference instead rounds every op's output to bf16 (MODEL-SPEC §4.8); this path does not,
 * so it matches an f32 PyTorch run of the same (bf16-valued) weights to ~1e-6 and the bf16
 * GPU reference only to bf16 tolerance. */
#pragma once

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
 * shape and a float dtype the backend reads: f32/bf16/f16; no unexpected keys) and computes
 * the hoisted constants. Errors are INFVSR_ERR_MODEL naming the key (the first problem,
 * plus how many more were found). `w` and `be` must outlive the model. */
enum infvsr_status infvsr_dit_load(const struct infvsr_dit_config * cfg, const struct infvsr_weights * w,
                                   struct infvsr_backend * be, struct infvsr_dit ** out,
                                   struct infvsr_err * err);
void               infvsr_dit_free(struct infvsr_dit * dit);

const struct infvsr_dit_config * infvsr_dit_config_of(const struct infvsr_dit * dit);

/* ctx: host tensor [n_ctx, text_dim] or [1, n_ctx, text_dim], f32/bf16/f16 (the visual
 * tokens, 145 x 512 for InfVSR). */
enum infvsr_status infvsr_dit_context_init(struct infvsr_dit * dit, const struct infvsr_tensor * ctx,
                                           struct infvsr_dit_context ** out, struct infvsr_err * err);
void               infvsr_dit_context_free(struct infvsr_dit_context * c);

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
/* Bytes held by the session (cache + arena + staging), for memory accounting. */
size_t  infvsr_dit_session_nbytes(const struct infvsr_dit_session * s);

/* One chunk: pred = DiT(latents, t = 400, context, cache, start_frame).
 * latents: host tensor [in_dim, T, h, w] (or [1, in_dim, T, h, w]), f32/bf16/f16, h and w
 * even. pred: host f32 tensor with the same numel (any shape of that size), filled.
 * start_frame < 0 means "the session's position" (the usual streaming case). Afterwards
 * the cache holds this chunk's post-RoPE K/V and the position advances by T. A chunk whose
 * grid differs from the cached chunk's grid is rejected (INFVSR_ERR_INVALID_ARG); reset
 * first. */
enum infvsr_status infvsr_dit_step(struct infvsr_dit_session * s, const struct infvsr_dit_context * c,
                                   const struct infvsr_tensor * latents, int64_t start_frame,
                                   struct infvsr_tensor * pred, struct infvsr_err * err);

/* restored = latents - INFVSR_DIT_SIGMA * pred, in f32 (MODEL-SPEC §2.5). Host tensors of
 * equal numel; latents f32/bf16/f16, pred and restored f32. */
enum infvsr_status infvsr_dit_restore(const struct infvsr_tensor * latents, const struct infvsr_tensor * pred,
                                      struct infvsr_tensor * restored, struct infvsr_err * err);

/* Multiply-accumulates x2 of one chunk (linears + attention QK^T and AV), for GFLOP/s. */
double infvsr_dit_chunk_flops(const struct infvsr_dit_config * cfg, int64_t n_tokens, int64_t n_cached,
                              int64_t n_ctx);

#ifdef __cplusplus
}
#endif
