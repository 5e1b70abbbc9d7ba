/* The streaming session's state, shared by vae_session.c (open/close/reset, planning) and
 * vae_stream.c (encode/decode of chunks). Not a public header.
 *
 * Backend memory held by a session (all allocated at open, nothing per chunk):
 *   cache   one tensor of the activation dtype: every slot of every tile at cache_off[]
 *   arena   one tensor of the activation dtype: the scratch of the largest single call
 *   blend   tiled sessions only, F32 constants computed on the host at open and uploaded
 *           once: every tile's encode and decode blend mask, and the per-pixel sums of the
 *           masks (the weights the blended output is divided by)
 * Everything else here (tile grid, offsets, "started" flags) is host bookkeeping. */
#pragma once

#include "vae/vae_internal.h"

struct vae_tile {
    int       r0, r1, c0, c1;     /* latent rows/columns [r0, r1) x [c0, c1)              */
    int64_t * cache_off;          /* per slot (n_slots entries): element offset in cache   */
    uint8_t * started;            /* per slot                                              */
    int64_t   enc_mask;           /* [(r1-r0) x (c1-c0)] blend mask: offset in blend       */
    int64_t   dec_mask;           /* [8(r1-r0) x 8(c1-c0)]                                 */
};

struct infvsr_vae_session {
    struct infvsr_vae *              m;
    struct infvsr_vae_session_params p;
    int                              h, w;          /* latent size                          */
    bool                             tiled;
    int                              n_tiles;
    struct vae_tile *                tiles;
    int64_t *                        cache_offs;    /* n_tiles * n_slots                    */
    uint8_t *                        started;       /* n_tiles * n_slots                    */
    struct infvsr_tensor             cache;
    struct infvsr_tensor             arena;
    struct infvsr_tensor             blend;         /* tiled only                           */
    int64_t                          enc_weight;    /* [h x w] sum of masks: offset in blend */
    int64_t                          dec_weight;    /* [8h x 8w]                            */
    bool                             zero_caches;   /* a reset is pending (see reset)       */
    bool                             enc_started, dec_started;
    infvsr_abort_cb                  should_abort;  /* polled between calls and layers */
    void *                           abort_user;
};

/* Runs one encoder call on tile `tl`: frames [t0, t0+n) of `frames` (NULL in dry mode) ->
 * the normalised mean latent [16, 1, th, tw] left at the arena bottom in `out`. */
enum infvsr_status vae_encode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * frames, int t0, int n, struct vae_act * out);
/* One decoder call on tile `tl`: latent frame t of `latents` -> [3, 1 or 4, 8th, 8tw]. */
enum infvsr_status vae_decode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * latents, int t, struct vae_act * out);
/* Zeroes every cache if a reset is pending (the first op of an encode or decode). */
enum infvsr_status vae_session_apply_reset(struct infvsr_vae_session * s, struct infvsr_err * err);
