/* The Wan 2.1 causal video VAE (MODEL-SPEC.md section 5): model loading and the streaming
 * encode/decode session with optional spatial tiling, on any backend.
 *
 *   infvsr_vae_load()            weights from Wan2.1_VAE.pth (flat state dict or under
 *                                "model_state."), strict: missing, extra or wrong-shape keys
 *                                are INFVSR_ERR_MODEL naming the key. Imported once through
 *                                the weight set: on a host-memory backend (cpu) views into
 *                                the checkpoint (F32, BF16 or F16 as stored), never copied;
 *                                on a device backend one upload, F32 converted to BF16 when
 *                                the backend computes in bf16 (infvsr_vae_resident_bytes).
 *   infvsr_vae_session_open()    one scene stream for a padded frame size H' x W' (multiples
 *                                of 16). Tiled iff H' > tile_threshold_px (default 1024,
 *                                tiles of 128 latents with stride 110, section 5.8). All cache
 *                                slots, the scratch arena and (tiled) the blend masks are
 *                                allocated on the backend here; encode and decode calls
 *                                allocate nothing.
 *   infvsr_vae_encode_chunk()    frames [3, L', H', W'] -> normalised latents [16, T, H'/8, W'/8]
 *                                (first chunk of a scene: L' = 1 mod 4, T = 1 + (L'-1)/4, encoded
 *                                as frame 0 alone then groups of 4; later chunks: L' = 0 mod 4,
 *                                T = L'/4).
 *   infvsr_vae_decode_chunk()    latents [16, T, H'/8, W'/8] -> frames [3, T_px, H', W'] clamped
 *                                to [-1, 1], one latent frame per decoder call (T_px = 4T - 3 for
 *                                the first decoded chunk of a scene, 4T afterwards).
 *
 * Tensors in and out are backend tensors: allocated by the caller in the memory of the
 * VAE's backend (infvsr_backend_tensor_alloc, or host tensors on the cpu backend), never
 * read by the host here. Inputs may be F32, BF16 or F16 (converted into the activation
 * dtype as they are read); outputs are F32 or the backend's activation dtype. Activations
 * are [C, T, H, W]. Calls are asynchronous like every op: outputs are ready after
 * infvsr_backend_synchronize.
 *
 * Precision. Activations, the temporal caches and the scratch arena use the backend's
 * activation dtype (caps.act_dtype): f32 on cpu (and devsim by default), bf16 on cuda and on
 * devsim opened with precision bf16, as the reference runs the module after .to(bfloat16)
 * (section 5.10). Kept in f32 whatever the mode: the RMS-norm statistics and every op's
 * internal math (inside the kernels; outputs are rounded to the activation dtype), the
 * latent constants offset = bf16(mean) and inv_std = bf16(1/std) (exact bf16 values applied
 * in f32; decode multiplies by the f32 reciprocal of inv_std where the reference divides),
 * and the tiled blend: masks are bf16-rounded values held in f32, the mask sums (weights)
 * are summed in f32, and tiles accumulate into the caller's output, so an F32 output
 * accumulates in f32 (the reference accumulates in bf16 on the CPU; f32 is the more
 * accurate choice and the cpu numerics of earlier releases). */
#pragma once

#include <stdbool.h>
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
struct infvsr_vae;
struct infvsr_vae_session;

#define INFVSR_VAE_Z_DIM 16

/* Loads the VAE described by `cfg` (dim 96 for the real model) from `w`; the weights must
 * outlive the model. `be` must outlive it too. */
enum infvsr_status infvsr_vae_load(const struct infvsr_weights * w, const struct infvsr_vae_config * cfg,
                                   struct infvsr_backend * be, struct infvsr_vae ** out,
                                   struct infvsr_err * err);
void               infvsr_vae_free(struct infvsr_vae * vae);
/* Bytes of weights the model holds in its backend's memory (0 on a host-memory backend,
 * where the weights stay views into the checkpoint). */
size_t             infvsr_vae_resident_bytes(const struct infvsr_vae * vae);

/* Number of cached convolutions (named slots) of the encoder + decoder, and a slot's name
 * ("vae.enc.downsamples.3.residual.2", "vae.dec.upsamples.3.time_conv", ...). */
int          infvsr_vae_n_slots(const struct infvsr_vae * vae);
const char * infvsr_vae_slot_name(const struct infvsr_vae * vae, int slot);

struct infvsr_vae_session_params {
    int height, width;        /* padded frame size H', W' (pixels, multiples of 16)      */
    int tile_threshold_px;    /* tiled iff height > this (default 1024)                 */
    int tile_latent;          /* tile size in latent units (default 128)                */
    int stride_latent;        /* tile stride in latent units (default 110)              */
};

struct infvsr_vae_session_params infvsr_vae_session_default_params(void);

enum infvsr_status infvsr_vae_session_open(struct infvsr_vae * vae, const struct infvsr_vae_session_params * p,
                                           struct infvsr_vae_session ** out, struct infvsr_err * err);
void               infvsr_vae_session_close(struct infvsr_vae_session * s);

/* Cancellation: encode/decode poll `should_abort` before every encoder/decoder call and
 * layer and stop with INFVSR_ERR_CANCELLED. The caches are then left mid-chunk: start the
 * next chunk as a new scene (or reset) or close the session. NULL: never. */
void infvsr_vae_session_set_abort(struct infvsr_vae_session * s, infvsr_abort_cb should_abort, void * user);

/* Scene cut: every cache back to the stream-start state (zeroed on the backend by the next
 * encode or decode call). encode_chunk(first_of_scene = true) does this too (the previous
 * scene's decode must be finished by then). */
void infvsr_vae_session_reset(struct infvsr_vae_session * s);

int    infvsr_vae_session_n_tiles(const struct infvsr_vae_session * s);
/* Bytes held by the per-tile temporal caches (all slots of all tiles). */
size_t infvsr_vae_session_cache_bytes(const struct infvsr_vae_session * s);
/* Bytes of the scratch arena reserved at open (largest single encoder/decoder call). */
size_t infvsr_vae_session_scratch_bytes(const struct infvsr_vae_session * s);
/* Every byte the session holds in backend memory: caches + scratch + (tiled) blend masks. */
size_t infvsr_vae_session_bytes(const struct infvsr_vae_session * s);

/* Output frame counts for a chunk: latents for L' frames, frames for T latents (depends
 * on whether this session has decoded since the last reset). -1 when L' is invalid. */
int64_t infvsr_vae_encode_n_latents(int64_t n_frames, bool first_of_scene);
int64_t infvsr_vae_decode_n_frames(const struct infvsr_vae_session * s, int64_t n_latents);

/* frames: [3, L', H', W'] F32, BF16 or F16; latents: caller-allocated [16, T, H'/8, W'/8], F32
 * or the activation dtype. Both backend tensors (see above). */
enum infvsr_status infvsr_vae_encode_chunk(struct infvsr_vae_session * s, const struct infvsr_tensor * frames,
                                           bool first_of_scene, struct infvsr_tensor * latents,
                                           struct infvsr_err * err);
/* latents: [16, T, H'/8, W'/8] F32, BF16 or F16; frames: caller-allocated
 * [3, infvsr_vae_decode_n_frames(s, T), H', W'], F32 or the activation dtype. Both backend
 * tensors (see above). */
enum infvsr_status infvsr_vae_decode_chunk(struct infvsr_vae_session * s, const struct infvsr_tensor * latents,
                                           struct infvsr_tensor * frames, struct infvsr_err * err);

#ifdef __cplusplus
}
#endif
